package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/httpapi"
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
	Limiter httpapi.Limiter
}

// Onboarding is the onboarding broker: devices connect with client ID
// "anonymous" and their app's credentials, and may only publish requests
// under p/anonymous/thing-if/apps/{APP_ID}/ (onboarding, in practice) and
// subscribe to their own onboarding topic.
//
// MQTT says a second connection with a client ID takes the first one's
// session over; here hundreds of devices share the ID "anonymous" at once.
// The broker therefore renames every connection to a unique internal ID in
// OnConnect, before mochi's takeover check, so connections never meet.
type Onboarding struct {
	cfg       OnboardingConfig
	srv       *mqtt.Server
	seq       atomic.Uint64
	sessions  sessions[onboardingSession]
	closeOnce sync.Once
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
	b.srv = newMochi(&b.cfg.Config)
	if err := b.srv.AddHook(&onboardingHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	if err := attach(b.srv, &b.cfg.Config, lns); err != nil {
		return nil, err
	}
	return b, nil
}

// Start starts serving on the listeners.
func (b *Onboarding) Start() error {
	b.sessions.startSweeper(sweepInterval, nil)
	return b.srv.Serve()
}

// Close stops the listeners and disconnects every client. Calling it again
// does nothing.
func (b *Onboarding) Close() error {
	var err error
	b.closeOnce.Do(func() {
		err = b.srv.Close()
		b.sessions.stopSweeper()
	})
	return err
}

// Connections returns the number of connected clients.
func (b *Onboarding) Connections() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

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

type onboardingHook struct {
	mqtt.HookBase
	b *Onboarding
}

func (h *onboardingHook) ID() string { return "thingif-onboarding" }

func (h *onboardingHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect, mqtt.OnPacketEncode:
		return true
	}
	return false
}

// OnConnect authenticates the app and gives the connection its unique ID.
func (h *onboardingHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	err := h.connect(cl, pk)
	if tap := h.b.cfg.Tap; tap.on() {
		appID, _, _ := parseAppCredentials(pk.Connect.Username, pk.Connect.Password)
		tap.connect(TapOnboarding, appID, "", cl, pk, err)
	}
	return err
}

func (h *onboardingHook) connect(cl *mqtt.Client, pk packets.Packet) error {
	prepareSession(cl)
	if pk.Connect.ClientIdentifier != AnonymousClientID {
		return refuse(cl, RefuseClientID)
	}
	appID, key, ok := parseAppCredentials(pk.Connect.Username, pk.Connect.Password)
	if !ok {
		return refuse(cl, RefuseCredentials)
	}
	lim, limKey := h.b.cfg.Limiter, appKeyLimitKey(cl.Net.Remote)
	if lim != nil {
		if _, ok := lim.Allow(limKey); !ok {
			h.b.cfg.Logger.Debug("connect rate limited", "remote", cl.Net.Remote)
			return refuse(cl, RefuseRateLimited)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.cfg.HandlerTimeout)
	defer cancel()
	app, err := h.b.cfg.Store.App(ctx, appID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if lim != nil {
			lim.Fail(limKey)
		}
		return refuse(cl, RefuseNotAuthorized)
	case err != nil:
		h.b.cfg.Logger.Error("look up app", "app", appID, "error", err)
		return refuse(cl, RefuseUnavailable)
	}
	ok, rehash, err := h.b.cfg.Verifier.Check(ctx, app.KeyHash, key)
	switch {
	case err != nil:
		h.b.cfg.Logger.Warn("check app key", "app", appID, "error", err)
		return refuse(cl, RefuseUnavailable)
	case !ok:
		if lim != nil {
			lim.Fail(limKey)
		}
		return refuse(cl, RefuseCredentials)
	case rehash != "":
		app.KeyHash = rehash
		if err := h.b.cfg.Store.PutApp(ctx, app); err != nil {
			// The key is right; the rehash is tried again at the next check.
			h.b.cfg.Logger.Warn("store rehashed app key", "app", appID, "error", err)
		}
	}
	cl.ID = AnonymousClientID + "#" + strconv.FormatUint(h.b.seq.Add(1), 10)
	h.b.sessions.put(cl, &onboardingSession{
		appID:  appID,
		prefix: "p/" + AnonymousClientID + "/thing-if/apps/" + appID + "/",
	})
	return nil
}

// OnConnectAuthenticate lets through the connections OnConnect accepted.
func (h *onboardingHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.b.sessions.get(cl) != nil
}

// OnACLCheck allows a client to subscribe to its own onboarding topic and to
// publish under its app's request space; any other publish ends the
// connection.
func (h *onboardingHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := h.b.sessions.get(cl)
	if s == nil {
		return false
	}
	if !write {
		return topic == s.prefix+"onboardings"
	}
	return allowPublish(h.b.srv, h.b.cfg.Logger, cl, s.prefix, topic)
}

// OnPublish serves the request and marks the packet ignored, so mochi
// acknowledges it but delivers it nowhere.
func (h *onboardingHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.b.sessions.get(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	t, err := codec.ParseTopic(pk.TopicName)
	if err != nil {
		return pk, packets.ErrRejectPacket // cannot happen after the ACL check
	}
	if serveRequest(&h.b.cfg.Config, cl, pk, t, httpapi.Caller{Broker: httpapi.OnboardingBroker, AppID: s.appID}) {
		return pk, packets.ErrRejectPacket // acknowledged with the answer
	}
	return pk, packets.CodeSuccessIgnore
}

// OnPacketEncode gives MQTT 3 clients CONNACK codes they know.
func (h *onboardingHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return v3Connack(cl, pk)
}

func (h *onboardingHook) OnDisconnect(cl *mqtt.Client, cause error, _ bool) {
	if s := h.b.sessions.get(cl); s != nil {
		if tap := h.b.cfg.Tap; tap.on() {
			tap.disconnect(TapOnboarding, s.appID, "", cl, cause)
		}
	}
	h.b.sessions.delete(cl)
}
