package bench

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/thingif/thingif/internal/endpoint"
)

// conn is a lean MQTT 3.1.1 client: the load generator shares the cores with
// the server, so it holds no goroutine for an idle connection, allocates its
// read buffer only when it starts reading, and writes each packet with one
// system call.
type conn struct {
	c  net.Conn
	r  *bufio.Reader // nil until readLoop or a synchronous read
	mu sync.Mutex    // serialises writes and nextID
	id uint16
}

// MQTT 3.1.1 packet types (upper nibble of the first byte).
const (
	pktConnect   = 1
	pktConnack   = 2
	pktPublish   = 3
	pktPuback    = 4
	pktSubscribe = 8
	pktSuback    = 9
)

// dialer spreads connections over several loopback source addresses: one
// address has about 28,000 ephemeral ports, and servers bound connections
// per source address.
type dialer struct {
	sources   []net.IP
	timeout   time.Duration
	transport string // of the API broker's or the plain broker's connections
}

func newDialer(sources int, timeout time.Duration, transport string) *dialer {
	if sources < 1 {
		sources = 1
	}
	d := &dialer{timeout: timeout, transport: cmp.Or(transport, "tcp")}
	for i := range sources {
		d.sources = append(d.sources, net.IPv4(127, 0, byte((i+1)/254), byte(1+(i+1)%254)))
	}
	return d
}

// dial connects connection number i over the dialer's transport (see
// dialOver).
func (d *dialer) dial(ctx context.Context, i int, addr, clientID, user, pass string) (*conn, error) {
	return d.dialOver(ctx, d.transport, i, addr, clientID, user, pass)
}

// dialOver connects connection number i from its source address over
// transport ("tcp", "tls", "ws" or "wss") and sends CONNECT. keepAlive 0
// asks the server for no keep-alive deadline, so that idle connections
// need no pings (and no goroutine here). TLS certificates are not
// verified: the generator only targets loopback (Config.Validate), where
// servers run with self-signed certificates.
func (d *dialer) dialOver(ctx context.Context, transport string, i int, addr, clientID, user, pass string) (*conn, error) {
	nd := &net.Dialer{Timeout: d.timeout, LocalAddr: &net.TCPAddr{IP: d.sources[i%len(d.sources)]}}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	tlsConfig := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback only, self-signed servers
	var c net.Conn
	var err error
	switch transport {
	case "tcp":
		c, err = nd.DialContext(ctx, "tcp", addr)
	case "tls":
		c, err = (&tls.Dialer{NetDialer: nd, Config: tlsConfig}).DialContext(ctx, "tcp", addr)
	case "ws", "wss":
		wd := websocket.Dialer{NetDialContext: nd.DialContext, TLSClientConfig: tlsConfig, Subprotocols: []string{"mqtt"},
			HandshakeTimeout: d.timeout, ReadBufferSize: 512, WriteBufferSize: 512}
		var ws *websocket.Conn
		ws, _, err = wd.DialContext(ctx, transport+"://"+addr+"/mqtt", nil)
		if err == nil {
			c = endpoint.WebSocketConn(ws)
		}
	default:
		return nil, fmt.Errorf("unknown transport %q", transport)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", transport, addr, err)
	}
	cn := &conn{c: c}
	if err := cn.write(connectPacket(clientID, user, pass, 0)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(d.timeout))
	var ack [4]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0]>>4 != pktConnack || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connack: % x", ack)
	}
	_ = c.SetReadDeadline(time.Time{})
	return cn, nil
}

// subscribe subscribes to one filter and waits for the SUBACK; it must be
// called before readLoop.
func (c *conn) subscribe(filter string, qos byte, timeout time.Duration) error {
	c.mu.Lock()
	c.id++
	if c.id == 0 {
		c.id = 1
	}
	id := c.id
	c.mu.Unlock()
	b := make([]byte, 0, 16+len(filter))
	b = append(b, pktSubscribe<<4|2)
	b = appendLength(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, id)
	b = appendString(b, filter)
	b = append(b, qos)
	if err := c.write(b); err != nil {
		return err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	defer c.c.SetReadDeadline(time.Time{})
	for {
		first, body, err := c.readPacket()
		if err != nil {
			return fmt.Errorf("suback: %w", err)
		}
		if first>>4 == pktSuback {
			if len(body) < 3 || body[len(body)-1] > 2 {
				return fmt.Errorf("subscribe %s: refused (% x)", filter, body)
			}
			return nil
		}
	}
}

// publish writes a PUBLISH. At QoS 1 the PUBACK is read and dropped by
// readLoop.
func (c *conn) publish(topic string, qos byte, payload []byte) error {
	b := make([]byte, 0, 8+len(topic)+len(payload))
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, pktPublish<<4|qos<<1)
	b = appendLength(b, n)
	b = appendString(b, topic)
	c.mu.Lock()
	defer c.mu.Unlock()
	if qos > 0 {
		c.id++
		if c.id == 0 {
			c.id = 1
		}
		b = binary.BigEndian.AppendUint16(b, c.id)
	}
	b = append(b, payload...)
	_, err := c.c.Write(b)
	return err
}

func (c *conn) write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.c.Write(b)
	return err
}

// readPacket reads one packet; body is valid until the next call.
func (c *conn) readPacket() (first byte, body []byte, err error) {
	if c.r == nil {
		c.r = bufio.NewReaderSize(c.c, 4096)
	}
	first, err = c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&127) * mul
		if b&128 == 0 {
			break
		}
		if mul *= 128; i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	if n <= c.r.Size() {
		body, err = c.r.Peek(n)
		if err == nil {
			_, _ = c.r.Discard(n)
		}
		return first, body, err
	}
	body = make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return first, body, err
}

// readLoop reads until the connection ends, acknowledges QoS 1 PUBLISHes
// and hands each one's topic and payload (valid during the call) to onMsg.
func (c *conn) readLoop(onMsg func(topic string, payload []byte)) error {
	for {
		first, body, err := c.readPacket()
		if err != nil {
			return err
		}
		if first>>4 != pktPublish || len(body) < 2 {
			continue
		}
		tl := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+tl {
			return errors.New("malformed publish")
		}
		topic := body[2 : 2+tl]
		i := 2 + tl
		if qos := (first >> 1) & 3; qos > 0 {
			if len(body) < i+2 {
				return errors.New("malformed publish")
			}
			ack := [4]byte{pktPuback << 4, 2, body[i], body[i+1]}
			i += 2
			if err := c.write(ack[:]); err != nil {
				return err
			}
		}
		onMsg(string(topic), body[i:])
	}
}

func (c *conn) close() error { return c.c.Close() }

func connectPacket(clientID, user, pass string, keepAlive uint16) []byte {
	var flags byte = 2 // clean session
	n := 10 + 2 + len(clientID)
	if user != "" {
		flags |= 0x80
		n += 2 + len(user)
	}
	if pass != "" {
		flags |= 0x40
		n += 2 + len(pass)
	}
	b := make([]byte, 0, n+5)
	b = append(b, pktConnect<<4)
	b = appendLength(b, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	b = appendString(b, clientID)
	if user != "" {
		b = appendString(b, user)
	}
	if pass != "" {
		b = appendString(b, pass)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 128
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}
