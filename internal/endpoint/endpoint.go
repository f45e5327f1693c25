// Package endpoint is thingif's MQTT server core: listeners, connections
// and the MQTT 3.1, 3.1.1 and 5.0 protocol flow, with every decision about
// what a client may do left to a Handler. Packets are encoded and decoded
// with mochi-mqtt's packets package; nothing here routes messages between
// clients, because thingif never does: every PUBLISH a client sends is a
// request to the server, and every PUBLISH it receives comes from the
// server.
//
// Each connection is one goroutine in a shallow read loop, with no write
// goroutine: writes happen under the connection's lock, each with the
// write timeout, from whichever goroutine writes (the read loop answering
// a request, a push). Between bursts a connection holds no read buffer
// (buffers are pooled and taken when bytes arrive) and no write buffer,
// so an idle connection costs its goroutine, its socket and a small
// struct.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Config configures a Server. Zero values take the defaults documented on
// each field.
type Config struct {
	// Logger receives the server's logs; it never gets packet contents or
	// credentials. If nil, logs are discarded.
	Logger *slog.Logger
	// ConnectTimeout bounds the time between accept (for WebSocket, the
	// upgrade) and a complete CONNECT, TLS handshake included. If zero,
	// 10 seconds.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to a client: a client that does not
	// read is disconnected when a write to it cannot finish within it. If
	// zero, 30 seconds.
	WriteTimeout time.Duration
	// MaxPacketSize is the largest MQTT packet accepted, advertised to
	// MQTT 5 clients in the CONNACK. If zero, 1 MiB + 4 KiB.
	MaxPacketSize uint32
	// MaxConnsPerAddr bounds the connections one source IP address may
	// hold open (all listeners together, including those still before
	// their CONNECT); a connection beyond it is closed at once. If zero,
	// 1,000; if negative, no bound.
	MaxConnsPerAddr int
	// MaxInflight is the server's Receive Maximum: the QoS 2 requests a
	// client may have awaiting their PUBREL (a client that sends more is
	// disconnected), and the bound of the window a client's pushes use
	// (Conn.ReceiveMaximum). If zero, 256.
	MaxInflight uint16
	// Takeover, if set, makes a CONNECT with the client ID of a connected
	// client end that client's connection (MQTT's session takeover); the
	// ID is the one the Handler leaves (Conn.SetID). If not set, client
	// IDs may repeat and connections never meet.
	Takeover bool
}

// DefaultMaxConnsPerAddr is the default of Config.MaxConnsPerAddr:
// generous, because whole fleets may sit behind one NAT address.
const DefaultMaxConnsPerAddr = 1000

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = 1<<20 + 4<<10
	}
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 256
	}
}

// Handler decides what clients may do. The server calls Connect, Publish,
// Subscribe, Subscribed, Unsubscribe and Puback from the connection's read
// loop, one at a time per connection, and Disconnected once when a
// connection that Connect accepted ends. ctx ends when the server closes.
type Handler interface {
	// Connect decides on a validated CONNECT. Before it returns Accept it
	// may name the connection (SetID) and attach its state (SetSession).
	Connect(ctx context.Context, c *Conn, pk *packets.Packet) Refusal
	// Publish serves a PUBLISH. It returns the packet to write back (nil
	// for none), written in one write with the PUBACK or PUBREC the
	// PUBLISH's QoS calls for; ok = false refuses the PUBLISH, which ends
	// the connection (MQTT 5: DISCONNECT 0x87 first), so that no PUBLISH,
	// QoS 0 included, is ever dropped in silence.
	Publish(ctx context.Context, c *Conn, pk *packets.Packet) (answer *packets.Packet, ok bool)
	// Subscribe decides on one filter of a SUBSCRIBE: ok = false refuses
	// it (SUBACK 0x80, MQTT 5 0x87), else the subscription is granted at
	// sub.Qos.
	Subscribe(c *Conn, sub packets.Subscription) (ok bool)
	// Subscribed is called once the SUBACK is written, with the codes it
	// carried, one per filter.
	Subscribed(c *Conn, pk *packets.Packet, codes []byte)
	// Unsubscribe removes one filter and reports whether it was
	// subscribed.
	Unsubscribe(c *Conn, filter string) (existed bool)
	// Puback hands over a PUBACK the client sent.
	Puback(c *Conn, packetID uint16)
	// Disconnected is called once when an accepted connection ends, with
	// why (nil: the client sent DISCONNECT).
	Disconnected(c *Conn, cause error)
}

// Server serves MQTT on its listeners until Close.
type Server struct {
	cfg     Config
	h       Handler
	lns     []*Listener
	perAddr *addrCounter
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	closing bool
	conns   map[*Conn]struct{} // every connection, from accept
	byID    map[string]*Conn   // accepted connections by client ID (Takeover)
	wg      sync.WaitGroup     // accept loops and connections

	accepted atomic.Int64
}

// New returns a server for the listeners (nil entries are skipped). Call
// Start to begin serving.
func New(cfg Config, h Handler, lns ...*Listener) (*Server, error) {
	if h == nil {
		return nil, errors.New("endpoint: Handler is required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, h: h, perAddr: newAddrCounter(cfg.MaxConnsPerAddr),
		conns: make(map[*Conn]struct{}), byID: make(map[string]*Conn)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, l := range lns {
		if l != nil {
			s.lns = append(s.lns, l)
		}
	}
	return s, nil
}

// Start serves the listeners in the background.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	for _, l := range s.lns {
		s.wg.Go(func() { l.serve(s.cfg.Logger, s.cfg.ConnectTimeout, s.serveConn) })
	}
}

// Connections returns the number of accepted connections.
func (s *Server) Connections() int64 { return s.accepted.Load() }

// OpenFrom returns the number of connections counted for the IP address
// ip (its bound is Config.MaxConnsPerAddr).
func (s *Server) OpenFrom(ip string) int { return s.perAddr.open(ip) }

// Close stops the listeners, ends every connection (MQTT 5 clients get
// DISCONNECT 0x8B first), cancels the handlers' context, and waits for
// the connections' goroutines. It cannot hang on a client: a DISCONNECT
// that cannot be written within a second is given up, and the socket
// closed. Calling it again waits for the first call's work.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range s.lns {
		l.Close()
	}
	s.cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.Disconnect(packets.ErrServerShuttingDown) })
	}
	wg.Wait()
	s.wg.Wait()
	return nil
}

// serveConn runs one connection, from accept to its end, on the goroutine
// the listener started for it. Its frames are kept few and small, and
// everything that goes deeper runs on short-lived goroutines (deep): the
// connection's goroutine then lives in its initial stack.
func (s *Server) serveConn(nc net.Conn) {
	c := s.open(nc)
	if c == nil {
		return
	}
	defer s.end(c)
	c.serve()
}

// open counts and tracks a new connection; nil means it was closed at once
// (the per-address bound, or the server closing).
func (s *Server) open(nc net.Conn) *Conn {
	key, ok := s.perAddr.acquire(nc.RemoteAddr())
	if !ok {
		s.cfg.Logger.Debug("too many connections from one address", "remote", nc.RemoteAddr().String())
		nc.Close()
		return nil
	}
	c := &Conn{srv: s, nc: nc, remote: nc.RemoteAddr().String(), addrKey: key}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		s.perAddr.release(key)
		nc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

// end is deferred by serveConn: it closes and forgets the connection. A
// panic in a Handler (or the codec) ends its connection, not the process;
// what it was about is not logged, as it may hold credentials.
func (s *Server) end(c *Conn) {
	if v := recover(); v != nil {
		s.cfg.Logger.Error("panic serving a connection; connection closed", "client", c.id, "remote", c.remote,
			"panic", fmt.Sprintf("%T", v))
	}
	c.close()
	s.forget(c)
	s.perAddr.release(c.addrKey)
	s.wg.Done()
}

// admit records an accepted connection, ending the older connection of
// its client ID under Takeover.
func (s *Server) admit(c *Conn) {
	s.accepted.Add(1)
	if !s.cfg.Takeover {
		return
	}
	s.mu.Lock()
	old := s.byID[c.id]
	s.byID[c.id] = c
	s.mu.Unlock()
	if old != nil {
		s.cfg.Logger.Debug("session taken over", "client", c.id, "remote", c.remote, "old_remote", old.remote)
		old.Disconnect(packets.ErrSessionTakenOver)
	}
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if c.admitted {
		s.accepted.Add(-1)
		if s.byID[c.id] == c {
			delete(s.byID, c.id)
		}
	}
}
