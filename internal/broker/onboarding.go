package broker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/endpoint"
	"github.com/thingif/thingif/internal/httpapi"
	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// AnonymousClientID is the client ID every device uses on the onboarding
// broker.
const AnonymousClientID = "anonymous"

// OnboardingConfig configures the onboarding broker.
type OnboardingConfig struct {
	Config
	// Store is where apps are looked up. Required.
	Store store.Store
	// Verifier checks app keys; a key hashed below its cost is rehashed
	// and stored with Store.PutApp. If nil, a private one at
	// secret.DefaultCost is used.
	Verifier *secret.Verifier
	// Limiter slows down app key guessing: wrong app keys and unknown apps
	// count as failures of the source address, and a blocked address is
	// refused with RefuseRateLimited before its credentials are checked. If
	// nil, nothing is limited.
	Limiter limit.Guard
}

// Onboarding is the onboarding broker: devices connect with client ID
// "anonymous" and their app's credentials, and may only publish requests
// under p/anonymous/thing-if/apps/{APP_ID}/ (onboarding, in practice) and
// subscribe to their own onboarding topic.
//
// MQTT says a second connection with a client ID takes the first one's
// session over; here hundreds of devices share the ID "anonymous" at once,
// so the onboarding endpoint runs without takeover, and each connection is
// named "anonymous#N" for logs and the inspector.
type Onboarding struct {
	cfg OnboardingConfig
	srv *endpoint.Server
	seq atomic.Uint64
}

type onboardingSession struct {
	appID  string
	prefix string // p/anonymous/thing-if/apps/{APP_ID}/
}

// NewOnboarding returns an onboarding broker serving on the given listeners
// (nil entries are skipped). Call Start to begin serving.
func NewOnboarding(cfg OnboardingConfig, lns ...*Listener) (*Onboarding, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("onboarding broker config: Store is required")
	}
	if cfg.Verifier == nil {
		cfg.Verifier = new(secret.Verifier)
	}
	b := &Onboarding{cfg: cfg}
	b.cfg.Logger = cfg.Logger.With("broker", "onboarding")
	srv, err := endpoint.New(b.cfg.endpointConfig(false), onboardingHandler{b}, lns...)
	if err != nil {
		return nil, err
	}
	b.srv = srv
	return b, nil
}

// Start starts serving on the listeners.
func (b *Onboarding) Start() error {
	b.srv.Start()
	return nil
}

// Close stops the listeners and disconnects every client. Calling it again
// does nothing.
func (b *Onboarding) Close() error { return b.srv.Close() }

// Connections returns the number of connected clients.
func (b *Onboarding) Connections() int64 { return b.srv.Connections() }

// parseAppCredentials reads the onboarding CONNECT's username
// "type=oauth2&client_id={APP_ID}" and password "client_secret={APP_KEY}".
// Parameters may come in any order; values are taken verbatim (no URL
// unescaping: keys may contain '+').
func parseAppCredentials(username, password []byte) (appID, key string, ok bool) {
	u := params(string(username))
	p := params(string(password))
	if !strings.EqualFold(u["type"], "oauth2") || u["client_id"] == "" {
		return "", "", false
	}
	k, ok := p["client_secret"]
	if !ok {
		return "", "", false
	}
	return u["client_id"], k, true
}

// appKeyLimitKey is the limiter key of app key guesses from a remote
// address ("ip:port"); it is the one the REST token endpoint uses, so that
// guesses over MQTT and REST count together.
func appKeyLimitKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return "app-key|addr|" + host
}

func params(s string) map[string]string {
	m := make(map[string]string, 2)
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// onboardingHandler is the onboarding broker's endpoint.Handler.
type onboardingHandler struct{ b *Onboarding }

func session(cl *endpoint.Conn) *onboardingSession {
	s, _ := cl.Session().(*onboardingSession)
	return s
}

// Connect authenticates the app and gives the connection its unique ID.
func (h onboardingHandler) Connect(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) endpoint.Refusal {
	r := h.connect(ctx, cl, pk)
	if tap := h.b.cfg.Tap; tap.on() {
		appID, _, _ := parseAppCredentials(pk.Connect.Username, pk.Connect.Password)
		tap.connect(TapOnboarding, appID, "", cl, *pk, tapError(r))
	}
	return r
}

func (h onboardingHandler) connect(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) endpoint.Refusal {
	if pk.Connect.ClientIdentifier != AnonymousClientID {
		return endpoint.RefuseClientID
	}
	appID, key, ok := parseAppCredentials(pk.Connect.Username, pk.Connect.Password)
	if !ok {
		return endpoint.RefuseCredentials
	}
	lim, limKey := h.b.cfg.Limiter, appKeyLimitKey(cl.Remote())
	if lim != nil {
		if _, ok := lim.Allow(limKey); !ok {
			h.b.cfg.Logger.Debug("connect rate limited", "remote", cl.Remote())
			return endpoint.RefuseRateLimited
		}
	}
	ctx, cancel := context.WithTimeout(ctx, h.b.cfg.HandlerTimeout)
	defer cancel()
	app, err := h.b.cfg.Store.App(ctx, appID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if lim != nil {
			lim.Fail(limKey)
		}
		return endpoint.RefuseNotAuthorized
	case err != nil:
		h.b.cfg.Logger.Error("look up app", "app", appID, "error", err)
		return endpoint.RefuseUnavailable
	}
	ok, rehash, err := h.b.cfg.Verifier.Check(ctx, app.KeyHash, key)
	switch {
	case err != nil:
		h.b.cfg.Logger.Warn("check app key", "app", appID, "error", err)
		return endpoint.RefuseUnavailable
	case !ok:
		if lim != nil {
			lim.Fail(limKey)
		}
		return endpoint.RefuseCredentials
	case rehash != "":
		app.KeyHash = rehash
		if err := h.b.cfg.Store.PutApp(ctx, app); err != nil {
			// The key is right; the rehash is tried again at the next check.
			h.b.cfg.Logger.Warn("store rehashed app key", "app", appID, "error", err)
		}
	}
	cl.SetID(AnonymousClientID + "#" + strconv.FormatUint(h.b.seq.Add(1), 10))
	cl.SetSession(&onboardingSession{
		appID:  appID,
		prefix: "p/" + AnonymousClientID + "/thing-if/apps/" + appID + "/",
	})
	return endpoint.Accept
}

// Publish serves a request under the app's request space; any other
// publish ends the connection.
func (h onboardingHandler) Publish(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) (*packets.Packet, bool) {
	s := session(cl)
	if !allowPublish(h.b.cfg.Logger, cl, s.prefix, pk.TopicName) {
		return nil, false
	}
	return serveRequest(ctx, &h.b.cfg.Config, cl, pk, httpapi.Caller{Broker: httpapi.OnboardingBroker, AppID: s.appID}), true
}

// Subscribe allows a client its own onboarding topic only.
func (h onboardingHandler) Subscribe(cl *endpoint.Conn, sub packets.Subscription) bool {
	return sub.Filter == session(cl).prefix+"onboardings"
}

func (onboardingHandler) Subscribed(*endpoint.Conn, *packets.Packet, []byte) {}

func (h onboardingHandler) Unsubscribe(cl *endpoint.Conn, filter string) bool {
	return filter == session(cl).prefix+"onboardings"
}

// Puback: nothing is pushed on the onboarding broker.
func (onboardingHandler) Puback(*endpoint.Conn, uint16) {}

func (h onboardingHandler) Disconnected(cl *endpoint.Conn, cause error) {
	if tap := h.b.cfg.Tap; tap.on() {
		tap.disconnect(TapOnboarding, session(cl).appID, "", cl, cause)
	}
}
