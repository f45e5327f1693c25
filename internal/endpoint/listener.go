package endpoint

import (
	"context"
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
)

// Transport is the kind of a listener.
type Transport string

// The four transports every broker offers.
const (
	TCP Transport = "tcp" // MQTT over TCP
	TLS Transport = "tls" // MQTT over TLS
	WS  Transport = "ws"  // MQTT over WebSocket
	WSS Transport = "wss" // MQTT over WebSocket over TLS
)

// Listen binds one listener. An empty addr returns (nil, nil): that
// listener is off. TLS and WSS need tlsConfig.
//
// Binding happens here, not when the server starts, so that port 0
// resolves to a real port before the onboarding answer has to advertise
// it.
func Listen(t Transport, addr string, tlsConfig *tls.Config) (*Listener, error) {
	if addr == "" {
		return nil, nil
	}
	switch t {
	case TCP, WS:
	case TLS, WSS:
		if tlsConfig == nil {
			return nil, fmt.Errorf("listen %s %s: no TLS configuration", t, addr)
		}
		tlsConfig = tlsConfig.Clone() // the HTTP server below edits its copy
	default:
		return nil, fmt.Errorf("listen %s: unknown transport", t)
	}
	ln, err := listenConfig.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", t, err)
	}
	return &Listener{transport: t, ln: ln, tls: tlsConfig}, nil
}

// Listener is a pre-bound listener. A Server serves it from Start until
// Close; a Listener serves one Server.
type Listener struct {
	transport Transport
	ln        net.Listener
	tls       *tls.Config

	mu     sync.Mutex
	closed bool
	http   *http.Server
}

// Port returns the TCP port the listener is bound to (0 for nil).
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

// serve accepts connections until close, handing each to handle on a
// goroutine of its own (for WebSocket, once the HTTP server's has
// upgraded it).
func (l *Listener) serve(log *slog.Logger, connectTimeout time.Duration, handle func(net.Conn)) {
	if l.transport == WS || l.transport == WSS {
		l.serveWebSocket(log, connectTimeout, handle)
		return
	}
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("accept", "listener", string(l.transport), "error", err)
			}
			return
		}
		if l.transport == TLS {
			c = tls.Server(c, l.tls)
		}
		go handle(c)
	}
}

// wsUpgrader accepts the MQTT WebSocket subprotocols of MQTT 3.1
// ("mqttv3.1") and later ("mqtt"), and any origin: devices are not
// browsers, and the MQTT CONNECT authenticates. Its write buffers are
// pooled, so an idle WebSocket connection holds only its 512-byte read
// buffer (a larger frame is read past it, straight from the socket).
var wsUpgrader = websocket.Upgrader{
	Subprotocols:    []string{"mqtt", "mqttv3.1"},
	CheckOrigin:     func(*http.Request) bool { return true },
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: new(sync.Pool),
}

func (l *Listener) serveWebSocket(log *slog.Logger, connectTimeout time.Duration, handle func(net.Conn)) {
	srv := &http.Server{
		// Any path: PROTOCOL.md §1 (clients use /mqtt, others exist).
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := wsUpgrader.Upgrade(w, r, nil)
			if err != nil {
				return // the upgrader has answered
			}
			// A goroutine of its own, and this handler returns: net/http's
			// connection (its 4 KiB read and write buffers, the request)
			// is then garbage, where a connection served on this goroutine
			// would hold it for its whole life.
			go handle(WebSocketConn(ws))
		}),
		ReadHeaderTimeout: connectTimeout,
		// WebSocket upgrades are HTTP/1.1: never offer h2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
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
		log.Warn("serve websocket", "listener", string(l.transport), "error", err)
	}
}

// Close stops accepting; calling it again does nothing. Connections
// already accepted are their server's to end (Server.Close). A server
// closes its listeners itself; Close is for listeners bound but never
// given to a server.
func (l *Listener) Close() {
	l.mu.Lock()
	l.closed = true
	srv := l.http
	l.mu.Unlock()
	l.ln.Close()
	if srv != nil {
		srv.Close()
	}
}

// wsConn adapts a WebSocket connection to the byte stream MQTT is: each
// binary message carries part of the stream, and one write is one
// message.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, or nil
}

// WebSocketConn returns ws as the byte stream MQTT runs on, the server's
// or a client's: binary messages only, one write one message.
func WebSocketConn(ws *websocket.Conn) net.Conn { return &wsConn{Conn: ws.NetConn(), ws: ws} }

// errTextFrame is returned for a WebSocket text message: MQTT over
// WebSocket uses binary messages only.
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

// SetWriteDeadline goes to gorilla's connection, which sets the
// underlying deadline itself before every frame, from its own.
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// SetDeadline sets the read deadline only: the write deadline is the
// writer's (Conn.write, under the connection's write lock).
func (c *wsConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }
