// Package broker runs thingif's two MQTT brokers on embedded mochi-mqtt
// servers: the onboarding broker, where devices connect as "anonymous" with
// app credentials and may only onboard, and the API broker, where each thing
// connects with the credentials onboarding issued, receives its commands and
// calls the thing-if API.
//
// Neither broker routes messages between clients. A PUBLISH under a client's
// own request space is decoded with package codec into an *http.Request,
// served by the same http.Handler as the REST API, and the answer is written
// back to that one connection on the request topic. Commands are written by
// the API broker straight to the connection of their thing at the QoS of its
// subscription. Every other PUBLISH or SUBSCRIBE is refused.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/httpapi"
)

// Config holds what both brokers need. Zero values take the defaults
// documented on each field.
type Config struct {
	// Handler serves the requests that arrive as PUBLISHes. Required.
	Handler http.Handler
	// Logger receives the broker's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// ConnectTimeout bounds the time between TCP accept and a complete
	// CONNECT. If zero, 10 seconds.
	ConnectTimeout time.Duration
	// MaxPacketSize is the largest MQTT packet accepted. If zero, 1 MiB +
	// 4 KiB (a REST-sized body plus headers and topic).
	MaxPacketSize uint32
	// Limits bound the HTTP-like requests carried in PUBLISHes.
	Limits codec.Limits
	// HandlerTimeout bounds the time one request may take in the handler.
	// If zero, 30 seconds.
	HandlerTimeout time.Duration
	// WriteTimeout bounds one write to a client: a client that does not read
	// (a slow or stuck subscriber) is disconnected when a write to it cannot
	// finish within it, so it never holds server memory or a push. If zero,
	// 30 seconds.
	WriteTimeout time.Duration
	// MaxConnsPerAddr bounds the connections one source IP address may hold
	// open on this broker (all its listeners together, including those
	// still before their CONNECT); a connection beyond it is closed at once.
	// If zero, DefaultMaxConnsPerAddr; if negative, no bound.
	MaxConnsPerAddr int
	// MaxInflight bounds the QoS 1 and 2 messages in flight per client, in
	// either direction (MQTT 5 Receive Maximum; a client that sends more
	// unacknowledged QoS 2 messages is disconnected). If zero, 256.
	MaxInflight uint16
	// MaxQueued bounds the packets mochi queues per client for writing. If
	// zero, 64.
	MaxQueued int32
	// Tap, if set, receives a description of the packets of interest for
	// the protocol inspector (inspect.go). Both brokers may share one.
	Tap *Tap
}

// DefaultMaxConnsPerAddr is the default of Config.MaxConnsPerAddr: generous,
// because whole fleets may sit behind one NAT address.
const DefaultMaxConnsPerAddr = 1000

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = 1<<20 + 4<<10
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxConnsPerAddr == 0 {
		c.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 256
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = 64
	}
}

func (c *Config) validate() error {
	if c.Handler == nil {
		return errors.New("broker config: Handler is required")
	}
	return nil
}

// newMochi returns a mochi server tuned for thingif: no retained messages, no
// shared subscriptions, no persistent sessions (sessions are forced clean by
// the hooks; pending commands live in the store), small per-client queues
// (the brokers do not fan out), and a packet size limit.
func newMochi(c *Config) *mqtt.Server {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = c.MaxPacketSize
	caps.RetainAvailable = 0
	caps.SharedSubAvailable = 0
	caps.WildcardSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.MaximumSessionExpiryInterval = 0
	caps.MaximumClientWritesPending = c.MaxQueued
	caps.MaximumInflight = c.MaxInflight
	caps.ReceiveMaximum = c.MaxInflight
	caps.TopicAliasMaximum = 0
	caps.MaximumMessageExpiryInterval = math.MaxUint32
	return mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// mochi logs its life cycle at info level; thingif logs its own.
		// Its records carry whole packets, credentials and all: they are
		// redacted (logging.go).
		Logger:                  slog.New(minLevel{redactHandler{c.Logger.Handler()}, slog.LevelWarn}),
		SysTopicResendInterval:  math.MaxInt32, // nobody may subscribe to $SYS
		ClientNetReadBufferSize: 1024,
		// Writes go straight to the socket when nothing is queued; the
		// buffer only batches bursts.
		ClientNetWriteBufferSize: 1024,
	})
}

// attach adds the bound listeners to a mochi server. They share one count
// of connections per source address.
func attach(srv *mqtt.Server, c *Config, lns []*Listener) error {
	perAddr := newAddrCounter(c.MaxConnsPerAddr)
	for _, l := range lns {
		if l == nil {
			continue
		}
		l.connectTimeout = c.ConnectTimeout
		l.writeTimeout = c.WriteTimeout
		l.perAddr = perAddr
		l.srv = srv
		if err := srv.AddListener(l); err != nil {
			return fmt.Errorf("add listener %s: %w", l.ID(), err)
		}
	}
	return nil
}

// prepareSession is called from OnConnect on both brokers: it forces a clean
// session (state that matters lives in the store, and a kept session would
// be memory held for a client that may never return) and drops any will
// message, because mochi publishes wills without an ACL check and a will on
// another thing's topic would be a message injected into it.
func prepareSession(cl *mqtt.Client) {
	cl.Properties.Clean = true
	cl.Properties.Props.SessionExpiryInterval = 0
	cl.Properties.Props.SessionExpiryIntervalFlag = false
	cl.Properties.Will = mqtt.Will{}
}

// serveRequest runs one request PUBLISH through the handler and writes the
// answer to the client that sent it, on the request topic, at QoS 0. MQTT 5
// correlation data is echoed. A QoS 1 request's PUBACK is written here too,
// in one write with the answer, and serveRequest reports true: the caller
// then keeps mochi from acknowledging it again (ErrRejectPacket). QoS 2
// requests are left to mochi's flow.
func serveRequest(c *Config, cl *mqtt.Client, pk packets.Packet, t codec.Topic, caller httpapi.Caller) (acked bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.HandlerTimeout)
	defer cancel()
	ctx = httpapi.WithCaller(ctx, caller)

	w := codec.NewResponseWriter()
	var hw http.ResponseWriter = w
	req, err := codec.NewHTTPRequest(ctx, t, pk.Payload, c.Limits)
	var tr *tapRequest
	if c.Tap.on() {
		tr, hw = startRequest(req, w)
	}
	if err != nil {
		httpapi.WriteMalformedRequest(hw, err)
	} else {
		req.RemoteAddr = cl.Net.Remote
		c.Handler.ServeHTTP(hw, req)
	}
	if tr != nil {
		c.Tap.request(tr.event(tapBroker(caller), caller.AppID, caller.ThingID, cl, pk, req, w.Status()))
	}
	out := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   pk.TopicName,
		Payload:     w.Bytes(),
	}
	if cl.Properties.ProtocolVersion == 5 && len(pk.Properties.CorrelationData) > 0 {
		out.Properties.CorrelationData = pk.Properties.CorrelationData
	}
	conn, _ := cl.Net.Conn.(*writeDeadlineConn)
	if pk.FixedHeader.Qos != 1 || conn == nil {
		if err := cl.WritePacket(out); err != nil {
			c.Logger.Debug("write answer", "client", cl.ID, "topic", pk.TopicName, "error", err)
		}
		return false
	}
	conn.cork()
	err = cl.WritePacket(out)
	if err == nil {
		err = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	if uerr := conn.uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		c.Logger.Debug("write answer", "client", cl.ID, "topic", pk.TopicName, "error", err)
	}
	return true
}

// tapBroker names the broker of a caller for the inspector.
func tapBroker(c httpapi.Caller) string {
	if c.Broker == httpapi.OnboardingBroker {
		return TapOnboarding
	}
	return TapAPI
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
