// Package broker runs thingif's two MQTT brokers on its own MQTT server
// core (package endpoint): the onboarding broker, where devices connect as
// "anonymous" with app credentials and may only onboard, and the API
// broker, where each thing connects with the credentials onboarding
// issued, receives its commands and calls the thing-if API.
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
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/endpoint"
	"github.com/thingif/thingif/internal/httpapi"
)

// Listener, Transport and Listen are the endpoint's: the brokers serve
// pre-bound listeners of the four transports.
type (
	Listener  = endpoint.Listener
	Transport = endpoint.Transport
)

// The four transports every broker offers.
const (
	TCP = endpoint.TCP
	TLS = endpoint.TLS
	WS  = endpoint.WS
	WSS = endpoint.WSS
)

// Listen binds one listener of a broker (endpoint.Listen).
var Listen = endpoint.Listen

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
	// Tap, if set, receives a description of the packets of interest for
	// the protocol inspector (inspect.go). Both brokers may share one.
	Tap *Tap
}

// DefaultMaxConnsPerAddr is the default of Config.MaxConnsPerAddr: generous,
// because whole fleets may sit behind one NAT address.
const DefaultMaxConnsPerAddr = endpoint.DefaultMaxConnsPerAddr

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 256
	}
}

func (c *Config) validate() error {
	if c.Handler == nil {
		return errors.New("broker config: Handler is required")
	}
	return nil
}

// endpointConfig is the server core's configuration for a broker.
func (c *Config) endpointConfig(takeover bool) endpoint.Config {
	return endpoint.Config{
		Logger:          c.Logger,
		ConnectTimeout:  c.ConnectTimeout,
		WriteTimeout:    c.WriteTimeout,
		MaxPacketSize:   c.MaxPacketSize,
		MaxConnsPerAddr: c.MaxConnsPerAddr,
		MaxInflight:     c.MaxInflight,
		Takeover:        takeover,
	}
}

// serveRequest runs one request PUBLISH through the handler and returns
// the answer for the client that sent it, on the request topic, at QoS 0
// (the endpoint writes it in one write with the PUBACK of a QoS 1
// request). MQTT 5 correlation data is echoed.
func serveRequest(ctx context.Context, c *Config, cl *endpoint.Conn, pk *packets.Packet, caller httpapi.Caller) *packets.Packet {
	ctx, cancel := context.WithTimeout(ctx, c.HandlerTimeout)
	defer cancel()
	ctx = httpapi.WithCaller(ctx, caller)

	w := codec.NewResponseWriter()
	var hw http.ResponseWriter = w
	t, err := codec.ParseTopic(pk.TopicName)
	var req *http.Request
	if err == nil {
		req, err = codec.NewHTTPRequest(ctx, t, pk.Payload, c.Limits)
	}
	var tr *tapRequest
	if c.Tap.on() {
		tr, hw = startRequest(req, w)
	}
	if err != nil {
		httpapi.WriteMalformedRequest(hw, err)
	} else {
		req.RemoteAddr = cl.Remote()
		c.Handler.ServeHTTP(hw, req)
	}
	if tr != nil {
		c.Tap.request(tr.event(tapBroker(caller), caller.AppID, caller.ThingID, cl, *pk, req, w.Status()))
	}
	out := &packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   pk.TopicName,
		Payload:     w.Bytes(),
	}
	if cl.Version() == 5 && len(pk.Properties.CorrelationData) > 0 {
		out.Properties.CorrelationData = pk.Properties.CorrelationData
	}
	return out
}

// tapBroker names the broker of a caller for the inspector.
func tapBroker(c httpapi.Caller) string {
	if c.Broker == httpapi.OnboardingBroker {
		return TapOnboarding
	}
	return TapAPI
}

// allowPublish is the publish ACL of both brokers: a client may publish
// only requests under its own request prefix, on a topic that parses as a
// request topic (no "." or ".." level, no encoded dot). The endpoint ends
// the connection of a refused PUBLISH, so that none, QoS 0 included, is
// ever dropped in silence.
func allowPublish(log *slog.Logger, cl *endpoint.Conn, prefix, topic string) bool {
	if len(topic) > len(prefix) && strings.HasPrefix(topic, prefix) {
		if _, err := codec.ParseTopic(topic); err == nil {
			return true
		}
	}
	log.Debug("publish refused", "client", cl.ID(), "remote", cl.Remote(), "topic", topic)
	return false
}

// tapError is the refusal as the inspector's CONNACK detail wants it: nil
// when accepted.
func tapError(r endpoint.Refusal) error {
	if r == endpoint.Accept {
		return nil
	}
	return r
}
