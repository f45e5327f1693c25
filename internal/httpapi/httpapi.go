package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/trigger"
)

// Defaults filled in by New for zero Config fields.
const (
	// DefaultEndpointTTL is what Kii answered as the ttl of an MQTT endpoint.
	DefaultEndpointTTL = 2147483647 * time.Second
	// DefaultAppTokenTTL is the lifetime of app admin and anonymous tokens.
	DefaultAppTokenTTL = 24 * time.Hour
	// DefaultMaxBodyBytes bounds request bodies.
	DefaultMaxBodyBytes = 1 << 20
)

// maxInstallations is how many installations (MQTT endpoints) a thing keeps;
// the oldest beyond it are deleted when a new one is created.
const maxInstallations = 5

// Config configures a Handler.
type Config struct {
	// Store keeps everything. Required.
	Store store.Store
	// Logger receives refusals at debug level and internal errors at error
	// level. If nil, logs are discarded.
	Logger *slog.Logger
	// APIBroker names the API broker a thing is sent to in every issued
	// mqttEndpoint (and the mqtt-endpoint answer). Required. It is called per
	// answer because ports are known only once listeners bind, and because
	// with several nodes it places the thing (internal/cluster).
	APIBroker func(ctx context.Context, appID, thingID string) BrokerAddr
	// Nodes, if set, lists the nodes serving the store for GET …/nodes;
	// if nil, that list is empty.
	Nodes NodesFunc
	// EndpointTTL is the lifetime of issued MQTT endpoints. If zero,
	// DefaultEndpointTTL (what Kii answered).
	EndpointTTL time.Duration
	// ThingTokenTTL is the lifetime of thing tokens. If zero, thing tokens
	// never expire, as Kii's did not.
	ThingTokenTTL time.Duration
	// AppTokenTTL is the lifetime of app admin and anonymous tokens. If zero,
	// DefaultAppTokenTTL.
	AppTokenTTL time.Duration
	// PasswordCost is the argon2id cost of new thing password hashes. If
	// zero, secret.DefaultCost. It is the cost of the private Verifier made
	// when Verifier is nil.
	PasswordCost secret.Cost
	// Verifier checks thing passwords and app keys, remembers successes,
	// makes new thing password hashes and says when a stored hash is below
	// its cost (rehashed at the next success). Share one with the
	// onboarding broker. If nil, a private one at PasswordCost.
	Verifier *secret.Verifier
	// Pusher is told after a command is stored. May be nil.
	Pusher Pusher
	// Revoker is told after an installation's credentials were deleted or
	// replaced, to end the connections logged in with them. If nil, there
	// are none to end (no API broker).
	Revoker Revoker
	// MaxBodyBytes bounds request bodies; larger ones are answered 413. If
	// zero, DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Limiter slows down and then refuses guessing of thing passwords (at
	// onboarding) and app keys (at the token endpoint), answering 429
	// TOO_MANY_REQUESTS. Keys are built by the handler: one per app and
	// thing (wrong thing passwords), one per source address and kind of
	// secret (wrong thing passwords, wrong app keys). If nil, nothing is
	// limited.
	Limiter limit.Guard
	// RegistrationsPerAddr and RegistrationsPerApp limit the first
	// onboardings (registrations of new things) per source address and per
	// app; beyond them, 429 TOO_MANY_REGISTRATIONS. Onboarding a known
	// thing takes nothing from them. If nil, not limited.
	RegistrationsPerAddr, RegistrationsPerApp RateLimiter
	// MaxPendingCommands bounds the commands a thing may have waiting
	// (SENDING); a new one beyond it is answered 429
	// TOO_MANY_PENDING_COMMANDS. If zero, DefaultMaxPendingCommands; if
	// negative, no bound.
	MaxPendingCommands int
	// MaxTriggersPerThing bounds the triggers a thing may have, since every
	// state upload evaluates all of its STATES triggers; a new one beyond it
	// is answered 409 TOO_MANY_TRIGGERS. If zero,
	// DefaultMaxTriggersPerThing; if negative, no bound.
	MaxTriggersPerThing int
	// UserTokenTTL is the lifetime of user tokens. If zero,
	// DefaultUserTokenTTL.
	UserTokenTTL time.Duration
	// Triggers evaluates the triggers of a thing after each state write and
	// is told when triggers change. If nil, triggers are stored but never
	// fire, and server-code triggers are refused.
	Triggers *trigger.Engine
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
}

// BrokerAddr is where an API broker listens, as advertised to things.
type BrokerAddr struct {
	Host    string `json:"host"`
	PortTCP int    `json:"portTCP"`
	PortSSL int    `json:"portSSL"`
	PortWS  int    `json:"portWS"`
	PortWSS int    `json:"portWSS"`
}

// Pusher pushes commands to their things' live MQTT connections. Push is
// called once per command, synchronously after the command is stored; it
// must be fast and must not block on the network.
type Pusher interface {
	Push(ctx context.Context, c store.Command)
}

// Revoker ends the live API broker connections logged in with an
// installation whose credentials are gone: deleted (a thing keeps its
// newest installations) or replaced (a new endpoint password). It is
// called after the store change, must return at once (the connections end
// in the background), and must not end connections of the thing's other
// installations. broker.API is one; a multi-node deployment carries the
// call to every node.
type Revoker interface {
	EndInstallation(ctx context.Context, thingID, installationID string)
}

// Validate reports the first field of c that cannot work, wrapped in
// ErrInvalidConfig. Zero values that have defaults are valid.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case c.APIBroker == nil:
		return fmt.Errorf("%w: APIBroker is required", ErrInvalidConfig)
	case c.EndpointTTL < 0:
		return fmt.Errorf("%w: EndpointTTL is negative", ErrInvalidConfig)
	case c.EndpointTTL > 0 && c.EndpointTTL < time.Second:
		return fmt.Errorf("%w: EndpointTTL is under a second", ErrInvalidConfig)
	case c.ThingTokenTTL < 0:
		return fmt.Errorf("%w: ThingTokenTTL is negative", ErrInvalidConfig)
	case c.UserTokenTTL < 0:
		return fmt.Errorf("%w: UserTokenTTL is negative", ErrInvalidConfig)
	case c.AppTokenTTL < 0:
		return fmt.Errorf("%w: AppTokenTTL is negative", ErrInvalidConfig)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("%w: MaxBodyBytes is negative", ErrInvalidConfig)
	}
	return nil
}

// setDefaults fills in the documented defaults of zero fields.
func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.EndpointTTL == 0 {
		c.EndpointTTL = DefaultEndpointTTL
	}
	if c.AppTokenTTL == 0 {
		c.AppTokenTTL = DefaultAppTokenTTL
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.UserTokenTTL == 0 {
		c.UserTokenTTL = DefaultUserTokenTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Handler serves the thing-if API, to REST clients and to requests that
// arrived over MQTT alike (see Caller). It is safe for concurrent use.
type Handler struct {
	cfg   Config
	store store.Store
	log   *slog.Logger
	mux   *http.ServeMux

	// verify checks and makes password hashes (Config.Verifier).
	verify *secret.Verifier
}

// New returns a Handler for cfg, or an error naming the bad field.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &Handler{cfg: cfg, store: cfg.Store, log: cfg.Logger, mux: http.NewServeMux(), verify: cfg.Verifier}
	if h.verify == nil {
		h.verify = secret.NewVerifier(secret.VerifierConfig{Cost: cfg.PasswordCost})
	}
	h.routes()
	return h, nil
}

// handlerFunc is a route handler: it writes the success answer itself and
// returns an error for everything else (see Handler.fail).
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods maps HTTP methods to the handlers of one path.
type methods map[string]handlerFunc

const (
	apiPrefix     = "/api/apps/{app}"
	thingIFPrefix = "/thing-if/apps/{app}"
	targetPrefix  = thingIFPrefix + "/targets/{target}"
	thingPrefix   = thingIFPrefix + "/things/{thing}"
)

func (h *Handler) routes() {
	for _, rt := range h.routeTable() {
		h.handle(rt.pattern, rt.methods)
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, errNotFound)
	})
}

// handle registers the methods of one path. The patterns carry no method so
// that a wrong method is answered here, with a JSON 405, rather than by the
// ServeMux in plain text.
func (h *Handler) handle(pattern string, ms methods) {
	allowed := make([]string, 0, len(ms))
	for m := range ms {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		f, ok := ms[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			h.fail(w, r, errMethodNotAllowed.with("method %s is not allowed here; allowed: %s", r.Method, allow))
			return
		}
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := headerValue(r.Header, headerRequestID); id != "" && validHeaderValue(id) {
		// Set directly: Header().Set would canonicalize the name to
		// X-Kii-Requestid, which devices' case-sensitive searches miss.
		w.Header()[headerRequestID] = []string{id}
	}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("handler panic", keyMethod, r.Method, keyPath, r.URL.Path, keyPanic, fmt.Sprint(v))
			writeError(w, errInternal)
		}
	}()
	// Answer unclean paths ourselves: the ServeMux would redirect them,
	// which means nothing to a client on MQTT.
	if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
		h.fail(w, r, errNotFound)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// Log attribute keys.
const (
	keyMethod = "method"
	keyPath   = "path"
	keyStatus = "status"
	keyCode   = "code"
	keyReason = "reason"
	keyErr    = "error"
	keyPanic  = "panic"
	keyThing  = "thing"
)

// fail answers err: a catalogue error as itself, a body over MaxBodyBytes as
// 413, a store that cannot be reached as 503, anything else as 500 (logged,
// since it is our fault or the store's).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &tooLarge):
		ae = errTooLarge
	case store.IsUnavailable(err):
		ae = errStoreDown
		if r.Context().Err() == nil {
			h.log.Warn("request failed: store unavailable", keyMethod, r.Method, keyPath, r.URL.Path, keyErr, err)
		}
	default:
		ae = errInternal
		if r.Context().Err() == nil {
			h.log.Error("request failed", keyMethod, r.Method, keyPath, r.URL.Path, keyErr, err)
		}
	}
	h.log.Debug("request refused", keyMethod, r.Method, keyPath, r.URL.Path,
		keyStatus, ae.status, keyCode, ae.code, keyReason, ae.message)
	writeError(w, ae)
}
