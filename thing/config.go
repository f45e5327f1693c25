package thing

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
)

// Default values of Config fields left zero.
const (
	// DefaultKeepAlive is the default Config.KeepAlive, as Kii's samples
	// use.
	DefaultKeepAlive = 60 * time.Second
	// DefaultConnectTimeout is the default Config.ConnectTimeout.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultCallTimeout is the default Config.CallTimeout.
	DefaultCallTimeout = 30 * time.Second
	// DefaultReonboardAfter is the default Config.ReonboardAfter: long
	// enough that a broker restarting does not send every thing to
	// onboarding, short enough that a dead node's things move within a
	// minute.
	DefaultReonboardAfter = 60 * time.Second
)

// Backoff returns how long to wait before connection attempt number
// attempt (0 for the first attempt, which should not wait).
type Backoff = autopaho.Backoff

// ExponentialBackoff returns autopaho's exponential backoff with jitter: a
// random delay between minDelay and a ceiling that starts at twice minDelay
// and doubles with every attempt up to maxDelay. minDelay must be positive
// and maxDelay at least twice minDelay.
func ExponentialBackoff(minDelay, maxDelay time.Duration) Backoff {
	return autopaho.NewExponentialBackoff(minDelay, maxDelay, 2*minDelay, 2)
}

// DefaultBackoff is the Backoff used when Config.Backoff is nil: 1 s to 2
// minutes, exponential, with jitter.
func DefaultBackoff() Backoff { return ExponentialBackoff(time.Second, 2*time.Minute) }

// Config configures a Client, and Onboard. Server, AppID, AppKey, Password
// and one of VendorThingID and ThingID are required; every other field has
// a working zero value.
type Config struct {
	// Server is the URL of the onboarding broker: tcp://host:1883,
	// ssl://host:8883 (or tls://), ws://host:12470/mqtt or
	// wss://host:12473/mqtt. The API broker is reached with the same
	// transport, at the host and port the onboarding answer names; a
	// WebSocket path is kept.
	Server string
	// AppID and AppKey are the app's credentials.
	AppID, AppKey string

	// VendorThingID names the thing by the maker's own ID; the first
	// onboarding registers it with Password. Set it or ThingID.
	VendorThingID string
	// ThingID names an already registered thing ("th.…"). Set it or
	// VendorThingID.
	ThingID string
	// Password is the thing's password.
	Password string
	// ThingType, FirmwareVersion, LayoutPosition ("STANDALONE", "GATEWAY",
	// "ENDNODE"), ThingProperties and DataGroupingInterval ("15_MINUTES",
	// …) are sent with the onboarding request when set.
	ThingType            string
	FirmwareVersion      string
	LayoutPosition       string
	ThingProperties      map[string]any
	DataGroupingInterval string

	// TLSConfig is used for ssl, tls and wss URLs. If nil, the system
	// roots verify the server.
	TLSConfig *tls.Config

	// Store keeps the credentials between runs. If nil, they are kept in
	// memory only, and every new Client onboards.
	Store Store

	// OnCommand handles each command pushed to the thing and returns one
	// Result per action, in the order of cmd.Actions; missing results are
	// sent as failures. It runs on one goroutine, one command at a time;
	// ctx ends when the client stops. If nil, every action is answered as
	// failed with "no command handler".
	OnCommand func(ctx context.Context, cmd *Command) []Result

	// KeepAlive is the MQTT keep-alive. If zero, DefaultKeepAlive (60 s).
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt, CONNACK included. If
	// zero, DefaultConnectTimeout (10 s).
	ConnectTimeout time.Duration
	// CallTimeout bounds the calls the client makes by itself (onboarding,
	// sending action results). Calls made through Do and the helpers are
	// bounded by their context only. If zero, DefaultCallTimeout (30 s).
	CallTimeout time.Duration
	// Backoff spaces connection attempts, onboarding included. If nil,
	// DefaultBackoff().
	Backoff Backoff
	// ReonboardAfter: when the API broker has been unreachable this long
	// (every connection attempt failing below MQTT: refused, reset, timed
	// out), the client onboards again and uses the broker the new answer
	// names. With several thingif nodes that is a live node when the
	// thing's own died (docs/scale-out.md). If zero,
	// DefaultReonboardAfter; negative: never.
	ReonboardAfter time.Duration

	// Logger receives the client's logs. If nil, logs are discarded.
	Logger *slog.Logger
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Server == "":
		return errors.New("thing config: Server is required")
	case c.AppID == "" || strings.ContainsAny(c.AppID, "/+#"):
		return errors.New("thing config: AppID is required and may not contain '/', '+' or '#'")
	case c.AppKey == "":
		return errors.New("thing config: AppKey is required")
	case (c.VendorThingID == "") == (c.ThingID == ""):
		return errors.New("thing config: set exactly one of VendorThingID and ThingID")
	case c.Password == "":
		return errors.New("thing config: Password is required")
	case c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second:
		return errors.New("thing config: KeepAlive is out of range")
	case c.ConnectTimeout < 0:
		return errors.New("thing config: ConnectTimeout is negative")
	case c.CallTimeout < 0:
		return errors.New("thing config: CallTimeout is negative")
	}
	if _, err := parseServer(c.Server); err != nil {
		return fmt.Errorf("thing config: Server: %w", err)
	}
	return nil
}

// setDefaults fills in the zero fields.
func (c *Config) setDefaults() {
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff()
	}
	if c.ReonboardAfter == 0 {
		c.ReonboardAfter = DefaultReonboardAfter
	}
	if c.Store == nil {
		c.Store = new(MemoryStore)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// parseServer parses and checks a broker URL.
func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch u.Scheme = strings.ToLower(u.Scheme); u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("%q: scheme must be tcp, ssl, tls, ws or wss", s)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("%q: want scheme://host:port", s)
	}
	return u, nil
}

// apiURL returns the API broker URL for an endpoint, on the transport of
// the onboarding URL.
func apiURL(onboarding *url.URL, ep Endpoint) (*url.URL, error) {
	var port int
	switch onboarding.Scheme {
	case "tcp", "mqtt":
		port = ep.PortTCP
	case "ssl", "tls", "mqtts":
		port = ep.PortSSL
	case "ws":
		port = ep.PortWS
	case "wss":
		port = ep.PortWSS
	}
	if port <= 0 || ep.Host == "" {
		return nil, fmt.Errorf("mqttEndpoint has no %s port or host", onboarding.Scheme)
	}
	u := *onboarding
	u.Host = joinHostPort(ep.Host, port)
	return &u, nil
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}
