package broker

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
)

// addrCounter counts open connections per source IP address, shared by the
// listeners of one broker.
type addrCounter struct {
	max int // <= 0: no bound
	mu  sync.Mutex
	n   map[string]int
}

func newAddrCounter(max int) *addrCounter {
	return &addrCounter{max: max, n: make(map[string]int)}
}

// acquire counts a connection from addr and reports whether it is within
// the bound; a true answer must be followed by release.
func (a *addrCounter) acquire(addr net.Addr) (key string, ok bool) {
	if a == nil || a.max <= 0 {
		return "", true
	}
	key = addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok {
		key = ta.IP.String()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] >= a.max {
		return "", false
	}
	a.n[key]++
	return key, true
}

func (a *addrCounter) release(key string) {
	if a == nil || a.max <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key]--; a.n[key] <= 0 {
		delete(a.n, key)
	}
}

// open returns the number of connections counted for the IP address ip.
func (a *addrCounter) open(ip string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[ip]
}

// writeDeadlineConn is the connection mochi gets. It gives every write a
// deadline (if timeout > 0) and closes the connection when one fails, so
// that a client that stops reading is dropped instead of blocking the
// writer (the push loop, or mochi's write loop) for good. mochi's own
// deadlines (keep-alive) cover reads; it sets the write deadline only
// together with the read deadline, and a keep-alive of 0 means none.
//
// It can also hold writes back (cork) and send them as one (uncork): a
// request's answer and its PUBACK then leave in one segment, one syscall
// here and one wakeup of the thing.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration

	mu     sync.Mutex // writes come from several goroutines
	corked bool
	held   []byte
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.write(p)
}

func (c *writeDeadlineConn) write(p []byte) (int, error) {
	if c.timeout > 0 {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.Conn.Close()
	}
	return n, err
}

// cork holds the writes that follow until uncork.
func (c *writeDeadlineConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what cork held back, in one write.
func (c *writeDeadlineConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.write(c.held)
	c.held = nil // an idle connection keeps no buffer
	return err
}

// SetWriteDeadline on a WebSocket connection goes to gorilla's connection:
// it sets the underlying deadline itself before every frame, from its own.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// SetDeadline sets the read deadline only: mochi calls it from its read
// loop, unsynchronised with writes, and gorilla's write deadline may only
// be set by the writer (writeDeadlineConn, under mochi's client lock).
func (c *wsConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// allowPublish is the publish ACL of both brokers: a client may publish
// only requests under its own request prefix. Anything else ends the
// connection (MQTT 5: DISCONNECT 0x87 first), so that no PUBLISH, QoS 0
// included, is ever dropped in silence.
func allowPublish(srv *mqtt.Server, log *slog.Logger, cl *mqtt.Client, prefix, topic string) bool {
	if len(topic) > len(prefix) && strings.HasPrefix(topic, prefix) && validRequestTopic(topic) {
		return true
	}
	log.Debug("publish refused", "client", cl.ID, "remote", cl.Net.Remote, "topic", topic)
	_ = srv.DisconnectClient(cl, packets.ErrNotAuthorized)
	return false
}

// validRequestTopic reports whether a topic inside a client's request
// space parses as a request topic; one that does not (a "." or ".." level,
// an encoded dot) is refused like a topic outside the space, so that no
// PUBLISH is ever dropped in silence.
func validRequestTopic(topic string) bool {
	_, err := codec.ParseTopic(topic)
	return err == nil
}
