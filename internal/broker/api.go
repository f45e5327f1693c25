package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/httpapi"
	"github.com/thingif/thingif/internal/push"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// APIConfig configures the API broker.
type APIConfig struct {
	Config
	// Store holds installations and commands. Required.
	Store store.Store
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
	// OnDelivered, if set, is called after a command was written to its
	// thing and marked DELIVERED (metrics).
	OnDelivered func(c store.Command, at time.Time)
}

// API is the API broker. A thing connects with the username and password of
// one of its installations and the installation's mqttTopic as client ID; it
// may subscribe only to that mqttTopic and publish only requests under
// p/{mqttTopic}/thing-if/apps/{APP_ID}/. Commands are pushed to it on
// mqttTopic by Push.
type API struct {
	cfg      APIConfig
	srv      *mqtt.Server
	sessions sessions[apiSession]
	// push writes the commands to the subscribed connections (package push).
	push *push.Engine

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup

	// logins ends connections with their credentials (lifetime.go).
	logins      *logins
	stopExpiry  chan struct{}
	expiryEnded chan struct{}
}

var (
	_ httpapi.Pusher  = (*API)(nil)
	_ httpapi.Revoker = (*API)(nil)
)

type apiSession struct {
	appID, thingID, installationID string
	mqttTopic                      string
	prefix                         string // p/{mqttTopic}/thing-if/apps/{APP_ID}/
	qos                            atomic.Uint32

	// cl is the connection; expires is when the endpoint it logged in with
	// expires; heapIndex is the session's place in API.logins (-1: not
	// there), guarded by the logins' lock.
	cl        *mqtt.Client
	expires   time.Time
	heapIndex int

	// conn is the session as a push target (push.Conn).
	conn *pushConn

	// subscribed is set by a SUBSCRIBE to mqttTopic and taken when its
	// SUBACK has been written; only then does the connection become a push
	// target. Every push thus follows the SUBACK, as embedded stacks that
	// wait for the SUBACK expect, and as clients that register a message
	// route only on SUBACK (Paho) need to see the push at all.
	subscribed atomic.Bool
}

// NewAPI returns an API broker serving on the given listeners (nil entries
// are skipped). Call Start to begin serving.
func NewAPI(cfg APIConfig, lns ...*Listener) (*API, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("api broker config: Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &API{cfg: cfg, logins: newLogins()}
	b.cfg.Logger = cfg.Logger.With("broker", "api")
	b.push = push.New(push.Config{Store: cfg.Store, Logger: b.cfg.Logger, Now: cfg.Now, OnDelivered: cfg.OnDelivered,
		Timeout: cfg.HandlerTimeout})
	b.srv = newMochi(&b.cfg.Config)
	if err := b.srv.AddHook(&apiHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add hook: %w", err)
	}
	if err := attach(b.srv, &b.cfg.Config, lns); err != nil {
		return nil, err
	}
	return b, nil
}

// Start loads the things with commands waiting and starts serving on the
// listeners.
func (b *API) Start() error {
	// A failure is not fatal: every first SUBSCRIBE scans instead.
	b.push.Start(context.Background())
	b.sessions.startSweeper(sweepInterval, b.gone)
	b.stopExpiry, b.expiryEnded = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.expiryEnded)
		b.logins.run(b.stopExpiry, b.cfg.Now, b.expired)
	}()
	return b.srv.Serve()
}

// gone forgets a connection that ended without OnDisconnect (the sweeper).
func (b *API) gone(cl *mqtt.Client, s *apiSession) {
	b.logins.untrack(s)
	b.push.Detach(s.thingID, s.conn)
}

// Close stops the listeners, disconnects every client and waits for running
// pushes to end.
// Calling it again does nothing.
func (b *API) Close() error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	b.mu.Unlock()
	err := b.srv.Close()
	b.sessions.stopSweeper()
	if b.stopExpiry != nil {
		close(b.stopExpiry)
		<-b.expiryEnded
	}
	b.push.Close()
	b.wg.Wait()
	return err
}

// Connections returns the number of connected clients.
func (b *API) Connections() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// Subscribed returns the number of the thing's connections that commands
// are pushed to.
func (b *API) Subscribed(thingID string) int { return b.push.Subscribed(thingID) }

// Push hands a newly stored command to the push engine, which writes it to
// the thing's subscribed connections; it becomes DELIVERED on the PUBACK
// (QoS 1) or once written (QoS 0). It returns at once.
func (b *API) Push(ctx context.Context, c store.Command) { b.push.Push(ctx, c) }

// PushPending writes every SENDING command of the thing that is not already
// awaiting its PUBACK, after a scan of the store.
func (b *API) PushPending(thingID string) { b.push.PushPending(thingID) }

// pushConn is a session as a push target: push.Conn over the mochi client.
type pushConn struct {
	b *API
	s *apiSession
}

var _ push.Conn = (*pushConn)(nil)

// QoS returns the granted QoS of the mqttTopic subscription.
func (p *pushConn) QoS() byte { return byte(p.s.qos.Load()) }

// Window returns the broker's in-flight bound, or the thing's MQTT 5
// Receive Maximum when smaller (mochi caps it at the broker's).
func (p *pushConn) Window() int {
	cl := p.s.cl
	window := int(p.b.srv.Options.Capabilities.MaximumInflight)
	if rm := int(cl.Properties.Props.ReceiveMaximum); cl.Properties.ProtocolVersion == 5 && rm > 0 && rm < window {
		window = rm
	}
	return window
}

// WritePush writes one push. The PUBLISH bypasses mochi's in-flight table
// (the engine numbers pushes itself). If the connection was already dead
// when the write went into its socket, no PUBACK comes and the command
// stays SENDING, pushed again when the thing next subscribes. A failed
// write ends the connection, unless only this packet was refused (larger
// than the client's Maximum Packet Size): the connection is sound, the
// command stays SENDING.
func (p *pushConn) WritePush(c store.Command, payload []byte, qos byte, packetID uint16) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   p.s.mqttTopic,
		Payload:     payload,
		PacketID:    packetID,
		Created:     time.Now().Unix(),
	}
	err := p.s.cl.WritePacket(pk)
	if tap := p.b.cfg.Tap; tap.on() {
		tap.push(p.s.appID, p.s.thingID, p.s.cl, pk, c.ID, err)
	}
	if err != nil && !errors.Is(err, packets.ErrPacketTooLarge) {
		p.s.cl.Stop(fmt.Errorf("push: %w", err))
	}
	return err
}

type apiHook struct {
	mqtt.HookBase
	b *API
}

func (h *apiHook) ID() string { return "thingif-api" }

func (h *apiHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish,
		mqtt.OnSubscribed, mqtt.OnPacketSent, mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnPacketEncode,
		mqtt.OnPacketRead:
		return true
	}
	return false
}

// OnConnect checks the installation credentials, the endpoint's expiry and
// the client ID.
func (h *apiHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	err := h.connect(cl, pk)
	if tap := h.b.cfg.Tap; tap.on() {
		appID, thingID := h.b.sessionThing(cl)
		tap.connect(TapAPI, appID, thingID, cl, pk, err)
	}
	return err
}

func (h *apiHook) connect(cl *mqtt.Client, pk packets.Packet) error {
	prepareSession(cl)
	ctx, cancel := context.WithTimeout(context.Background(), h.b.cfg.HandlerTimeout)
	defer cancel()
	revocations := h.b.logins.revocations()
	in, err := h.b.cfg.Store.InstallationByUsername(ctx, string(pk.Connect.Username))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(cl, RefuseCredentials)
	case err != nil:
		h.b.cfg.Logger.Error("look up installation", "error", err)
		return refuse(cl, RefuseUnavailable)
	}
	if in.PasswordHash == "" || !secret.EqualDigest(in.PasswordHash, secret.HashToken(string(pk.Connect.Password))) {
		return refuse(cl, RefuseCredentials)
	}
	if in.ExpiresAt.IsZero() || !h.b.cfg.Now().Before(in.ExpiresAt) {
		return refuse(cl, RefuseCredentials)
	}
	if pk.Connect.ClientIdentifier != in.MQTTTopic {
		return refuse(cl, RefuseClientID)
	}
	s := &apiSession{
		cl:             cl,
		appID:          in.AppID,
		thingID:        in.ThingID,
		installationID: in.ID,
		expires:        in.ExpiresAt,
		heapIndex:      -1,
		mqttTopic:      in.MQTTTopic,
		prefix:         "p/" + in.MQTTTopic + "/thing-if/apps/" + in.AppID + "/",
	}
	s.conn = &pushConn{b: h.b, s: s}
	h.b.sessions.put(cl, s)
	h.b.logins.track(s)
	if h.b.logins.revocations() == revocations {
		return nil
	}
	// An EndInstallation ran during the lookup above and may have looked
	// for this connection before track; its store change committed before
	// it ran, but perhaps after the lookup. Look again, now that a later
	// EndInstallation is sure to find this connection.
	again, err := h.b.cfg.Store.InstallationByUsername(ctx, string(pk.Connect.Username))
	if err != nil || again.ID != in.ID || again.PasswordHash != in.PasswordHash {
		h.b.logins.untrack(s)
		h.b.sessions.delete(cl)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.b.cfg.Logger.Error("look up installation", "error", err)
			return refuse(cl, RefuseUnavailable)
		}
		return refuse(cl, RefuseCredentials)
	}
	return nil
}

// sessionThing returns the app and thing of an accepted connection.
func (b *API) sessionThing(cl *mqtt.Client) (appID, thingID string) {
	if s := b.sessions.get(cl); s != nil {
		return s.appID, s.thingID
	}
	return "", ""
}

// OnConnectAuthenticate lets through the connections OnConnect accepted.
func (h *apiHook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.b.sessions.get(cl) != nil
}

// OnACLCheck: a thing reads only its mqttTopic and writes only under its
// request prefix. A refused publish ends the connection, so that a QoS 0
// publish is not dropped in silence.
func (h *apiHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := h.b.sessions.get(cl)
	if s == nil {
		return false
	}
	if !write {
		return topic == s.mqttTopic
	}
	return allowPublish(h.b.srv, h.b.cfg.Logger, cl, s.prefix, topic)
}

// OnPublish serves the request and marks the packet ignored, so mochi
// acknowledges it but delivers it nowhere.
func (h *apiHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := h.b.sessions.get(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	t, err := codec.ParseTopic(pk.TopicName)
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	if serveRequest(&h.b.cfg.Config, cl, pk, t, httpapi.Caller{Broker: httpapi.APIBroker, AppID: s.appID, ThingID: s.thingID}) {
		return pk, packets.ErrRejectPacket // acknowledged with the answer
	}
	return pk, packets.CodeSuccessIgnore
}

// OnPacketRead hands a PUBACK of a push to the thing's push loop, which
// marks the command DELIVERED and pushes what the window held back. mochi
// drops the PUBACK afterwards: the push is not in its in-flight table.
func (h *apiHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Puback {
		return pk, nil
	}
	if s := h.b.sessions.get(cl); s != nil {
		if tap := h.b.cfg.Tap; tap.on() {
			tap.puback(s.appID, s.thingID, cl, pk)
		}
		h.b.push.Ack(s.thingID, s.conn, pk.PacketID)
	}
	return pk, nil
}

// OnSubscribed notes a granted mqttTopic subscription; OnPacketSent acts on
// it once the SUBACK is written.
func (h *apiHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	s := h.b.sessions.get(cl)
	if s == nil {
		return
	}
	if tap := h.b.cfg.Tap; tap.on() {
		tap.subscribe(TapAPI, s.appID, s.thingID, cl, pk, codes)
	}
	for i, f := range pk.Filters {
		if f.Filter == s.mqttTopic && i < len(codes) && codes[i] <= 2 {
			s.qos.Store(uint32(codes[i]))
			s.subscribed.Store(true)
			return
		}
	}
}

// OnPacketSent makes the connection a push target once the SUBACK of its
// mqttTopic subscription is on the wire, and pushes what is pending.
func (h *apiHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Suback {
		return
	}
	if s := h.b.sessions.get(cl); s != nil && s.subscribed.Swap(false) {
		h.b.push.Attach(s.thingID, s.conn)
	}
}

func (h *apiHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s := h.b.sessions.get(cl)
	if s == nil {
		return
	}
	for _, f := range pk.Filters {
		if f.Filter == s.mqttTopic {
			h.b.push.Detach(s.thingID, s.conn)
		}
	}
}

// OnPacketEncode gives MQTT 3 clients CONNACK codes they know.
func (h *apiHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	return v3Connack(cl, pk)
}

func (h *apiHook) OnDisconnect(cl *mqtt.Client, cause error, _ bool) {
	if s := h.b.sessions.get(cl); s != nil {
		if tap := h.b.cfg.Tap; tap.on() {
			tap.disconnect(TapAPI, s.appID, s.thingID, cl, cause)
		}
		h.b.logins.untrack(s)
		// Acknowledged pushes are marked DELIVERED here, or they would be
		// pushed again on the next connection.
		h.b.push.Detach(s.thingID, s.conn)
	}
	h.b.sessions.delete(cl)
}
