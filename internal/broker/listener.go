package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Transport is the kind of a broker listener.
type Transport string

// The four transports every broker offers.
const (
	TCP Transport = "tcp" // MQTT over TCP
	TLS Transport = "tls" // MQTT over TLS
	WS  Transport = "ws"  // MQTT over WebSocket
	WSS Transport = "wss" // MQTT over WebSocket over TLS
)

// Listen binds one listener of a broker. An empty addr returns (nil, nil):
// that listener is off. TLS and WSS need tlsConfig.
//
// Binding happens here, not when the broker starts, so that port 0 resolves
// to a real port before the onboarding answer has to advertise it (mochi's own
// listeners bind late and cannot tell).
func Listen(t Transport, addr string, tlsConfig *tls.Config) (*Listener, error) {
	if addr == "" {
		return nil, nil
	}
	if (t == TLS || t == WSS) && tlsConfig == nil {
		return nil, fmt.Errorf("listen %s %s: no TLS configuration", t, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", t, err)
	}
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone() // the HTTP server below edits its copy
	}
	return &Listener{transport: t, ln: ln, tls: tlsConfig, conns: make(map[net.Conn]struct{})}, nil
}

// Listener is a pre-bound broker listener that implements mochi's
// listeners.Listener. Every accepted connection must send its CONNECT within
// ConnectTimeout; after that mochi's keep-alive deadline takes over.
type Listener struct {
	transport Transport
	ln        net.Listener
	tls       *tls.Config
	log       *slog.Logger
	// connectTimeout bounds the time from accept to a complete CONNECT.
	connectTimeout time.Duration
	// writeTimeout bounds every write (see writeDeadlineConn).
	writeTimeout time.Duration
	// perAddr counts connections per source address, shared by the
	// broker's listeners.
	perAddr *addrCounter
	// srv is the mochi server the listener serves; Close disconnects its
	// clients of this listener (disconnectClients).
	srv *mqtt.Server

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted, not yet finished
	closed bool
	http   *http.Server
}

var _ listeners.Listener = (*Listener)(nil)

// Port returns the TCP port the listener is bound to.
func (l *Listener) Port() int {
	if l == nil {
		return 0
	}
	return l.ln.Addr().(*net.TCPAddr).Port
}

// Addr returns the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Transport returns the listener's transport.
func (l *Listener) Transport() Transport { return l.transport }

// ID implements listeners.Listener.
func (l *Listener) ID() string { return string(l.transport) }

// Address implements listeners.Listener.
func (l *Listener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *Listener) Protocol() string { return string(l.transport) }

// Init implements listeners.Listener.
func (l *Listener) Init(log *slog.Logger) error {
	l.log = log
	return nil
}

// Serve implements listeners.Listener: it accepts connections until Close.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	switch l.transport {
	case WS, WSS:
		l.serveWebSocket(establish)
	default:
		l.serveStream(establish)
	}
}

func (l *Listener) serveStream(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("accept", "error", err)
			}
			return
		}
		if l.transport == TLS {
			c = tls.Server(c, l.tls)
		}
		go l.handle(c, establish)
	}
}

// handle runs one connection through mochi, tracking it so that Close can
// end connections that never finished their CONNECT.
func (l *Listener) handle(c net.Conn, establish listeners.EstablishFn) {
	if !l.track(c) {
		c.Close()
		return
	}
	defer l.untrack(c)
	key, ok := l.perAddr.acquire(c.RemoteAddr())
	if !ok {
		l.log.Debug("too many connections from one address", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	defer l.perAddr.release(key)
	c = &writeDeadlineConn{Conn: c, timeout: l.writeTimeout}
	_ = c.SetDeadline(time.Now().Add(l.connectTimeout))
	err := establish(l.ID(), c)
	if err != nil && !errors.Is(err, io.EOF) {
		l.log.Debug("connection ended", "remote", c.RemoteAddr().String(), "error", err)
	}
	c.Close()
}

func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// wsUpgrader accepts the MQTT WebSocket subprotocols of MQTT 3.1 ("mqttv3.1")
// and later ("mqtt"), and any origin: devices are not browsers, and the MQTT
// CONNECT authenticates.
var wsUpgrader = websocket.Upgrader{
	Subprotocols:    []string{"mqtt", "mqttv3.1"},
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
}

func (l *Listener) serveWebSocket(establish listeners.EstablishFn) {
	srv := &http.Server{
		// Any path: PROTOCOL.md §1 (clients use /mqtt, others exist).
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := wsUpgrader.Upgrade(w, r, nil)
			if err != nil {
				return // the upgrader has answered
			}
			l.handle(&wsConn{Conn: ws.UnderlyingConn(), ws: ws}, establish)
		}),
		ReadHeaderTimeout: l.connectTimeout,
		// WebSocket upgrades are HTTP/1.1: never offer h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.http = srv
	l.mu.Unlock()
	var err error
	if l.transport == WSS {
		srv.TLSConfig = l.tls
		err = srv.ServeTLS(l.ln, "", "")
	} else {
		err = srv.Serve(l.ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		l.log.Warn("serve websocket", "error", err)
	}
}

// Close implements listeners.Listener: it stops accepting, ends connections
// still in their CONNECT phase, and disconnects the clients it served
// (disconnectClients, not mochi's CloseFn).
func (l *Listener) Close(listeners.CloseFn) {
	l.mu.Lock()
	l.closed = true
	srv := l.http
	pending := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		pending = append(pending, c)
	}
	l.mu.Unlock()

	l.ln.Close()
	if srv != nil {
		srv.Close() // hijacked WebSocket connections are not closed by this
	}
	if l.srv != nil { // set by attach, which adds every Listener
		disconnectClients(l.srv, l.ID())
	}
	for _, c := range pending {
		c.Close()
	}
}

// disconnectClients disconnects the clients of one listener, as mochi's own
// closeListenerClients (the CloseFn it hands Close) does, but without its
// Clients.GetByListener: that holds the clients' read lock and takes it
// again (Clients.Len), so a client leaving at that moment (Clients.Delete
// waiting for the write lock) blocks the second read lock, and shutdown
// hangs for good with every leaving client. TestNoCrossThingLeaks's server
// Close hung so. GetAll takes the read lock once.
func disconnectClients(srv *mqtt.Server, listenerID string) {
	for _, cl := range srv.Clients.GetAll() {
		if cl.Net.Listener == listenerID && !cl.Closed() {
			_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// wsConn adapts a WebSocket connection to the byte stream mochi reads: each
// binary message carries part of the MQTT stream, and one write is one
// message.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, or nil
}

// errTextFrame is returned for a WebSocket text message: MQTT over WebSocket
// uses binary messages only.
var errTextFrame = errors.New("websocket: text message where MQTT needs binary")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errTextFrame
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
