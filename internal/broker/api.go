package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/endpoint"
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
	// Sessions, if set, records each connection in the cluster
	// (internal/cluster) so that a connection with the same client ID on
	// another node takes it over, and commands stored on other nodes
	// reach it.
	Sessions Sessions
}

// Sessions is the cluster's record of which node holds each client ID.
type Sessions interface {
	// Connected records client ID clientID of the thing as session id on
	// this node, before the CONNACK; an error refuses the connection.
	Connected(ctx context.Context, clientID, thingID string, id int64) error
	// Disconnected forgets session id of clientID.
	Disconnected(ctx context.Context, clientID string, id int64) error
}

// SessionInfo is one connection of the API broker, as Sessions lists it.
type SessionInfo struct {
	ClientID, ThingID string
	ID                int64
}

// API is the API broker. A thing connects with the username and password of
// one of its installations and the installation's mqttTopic as client ID; it
// may subscribe only to that mqttTopic and publish only requests under
// p/{mqttTopic}/thing-if/apps/{APP_ID}/. Commands are pushed to it on
// mqttTopic by Push.
type API struct {
	cfg APIConfig
	srv *endpoint.Server
	// push writes the commands to the subscribed connections (package push).
	push *push.Engine

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup

	// local maps each connected client ID to its session (guarded by
	// mu), for EndSession and Sessions.
	local map[string]*apiSession

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
	// id numbers the session in the cluster (APIConfig.Sessions).
	id                             int64
	appID, thingID, installationID string
	mqttTopic                      string
	prefix                         string // p/{mqttTopic}/thing-if/apps/{APP_ID}/
	qos                            atomic.Uint32

	// cl is the connection; expires is when the endpoint it logged in with
	// expires; heapIndex is the session's place in API.logins (-1: not
	// there), guarded by the logins' lock.
	cl        *endpoint.Conn
	expires   time.Time
	heapIndex int

	// conn is the session as a push target (push.Conn).
	conn *pushConn

	// attached is set while the connection is a push target: from the
	// SUBACK of its mqttTopic subscription to its UNSUBSCRIBE or end.
	attached atomic.Bool
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
	b := &API{cfg: cfg, logins: newLogins(), local: map[string]*apiSession{}}
	b.cfg.Logger = cfg.Logger.With("broker", "api")
	// With several nodes other nodes store commands too: every subscribe
	// scans (push.Config.Shared).
	b.push = push.New(push.Config{Store: cfg.Store, Logger: b.cfg.Logger, Now: cfg.Now, OnDelivered: cfg.OnDelivered,
		Timeout: cfg.HandlerTimeout, Shared: cfg.Sessions != nil})
	srv, err := endpoint.New(b.cfg.endpointConfig(true), apiHandler{b}, lns...)
	if err != nil {
		return nil, err
	}
	b.srv = srv
	return b, nil
}

// Start loads the things with commands waiting and starts serving on the
// listeners.
func (b *API) Start() error {
	// A failure is not fatal: every first SUBSCRIBE scans instead.
	b.push.Start(context.Background())
	b.stopExpiry, b.expiryEnded = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.expiryEnded)
		b.logins.run(b.stopExpiry, b.cfg.Now, b.expired)
	}()
	b.srv.Start()
	return nil
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
	if b.stopExpiry != nil {
		close(b.stopExpiry)
		<-b.expiryEnded
	}
	b.push.Close()
	b.wg.Wait()
	return err
}

// Connections returns the number of connected clients.
func (b *API) Connections() int64 { return b.srv.Connections() }

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

// pushConn is a session as a push target: push.Conn over the endpoint's
// connection.
type pushConn struct {
	b *API
	s *apiSession
}

var _ push.Conn = (*pushConn)(nil)

// QoS returns the granted QoS of the mqttTopic subscription.
func (p *pushConn) QoS() byte { return byte(p.s.qos.Load()) }

// Window returns the broker's in-flight bound, or the thing's MQTT 5
// Receive Maximum when smaller.
func (p *pushConn) Window() int { return p.s.cl.ReceiveMaximum() }

// WritePush writes one push, numbered by the engine. If the connection was already dead
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
	}
	err := p.s.cl.Write(&pk) // a failure other than ErrPacketTooLarge closes it
	if tap := p.b.cfg.Tap; tap.on() {
		tap.push(p.s.appID, p.s.thingID, p.s.cl, pk, c.ID, err)
	}
	return err
}

// apiHandler is the API broker's endpoint.Handler.
type apiHandler struct{ b *API }

func apiSessionOf(cl *endpoint.Conn) *apiSession {
	s, _ := cl.Session().(*apiSession)
	return s
}

// Connect checks the installation credentials, the endpoint's expiry and
// the client ID.
func (h apiHandler) Connect(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) endpoint.Refusal {
	r := h.connect(ctx, cl, pk)
	if tap := h.b.cfg.Tap; tap.on() {
		var appID, thingID string
		if s := apiSessionOf(cl); s != nil && r == endpoint.Accept {
			appID, thingID = s.appID, s.thingID
		}
		tap.connect(TapAPI, appID, thingID, cl, *pk, tapError(r))
	}
	return r
}

func (h apiHandler) connect(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) endpoint.Refusal {
	ctx, cancel := context.WithTimeout(ctx, h.b.cfg.HandlerTimeout)
	defer cancel()
	revocations := h.b.logins.revocations()
	in, err := h.b.cfg.Store.InstallationByUsername(ctx, string(pk.Connect.Username))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return endpoint.RefuseCredentials
	case err != nil:
		h.b.cfg.Logger.Error("look up installation", "error", err)
		return endpoint.RefuseUnavailable
	}
	if in.PasswordHash == "" || !secret.EqualDigest(in.PasswordHash, secret.HashToken(string(pk.Connect.Password))) {
		return endpoint.RefuseCredentials
	}
	if in.ExpiresAt.IsZero() || !h.b.cfg.Now().Before(in.ExpiresAt) {
		return endpoint.RefuseCredentials
	}
	if pk.Connect.ClientIdentifier != in.MQTTTopic {
		return endpoint.RefuseClientID
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
	if r := h.b.recordSession(ctx, s); r != endpoint.Accept {
		return r
	}
	h.b.logins.track(s)
	if h.b.logins.revocations() == revocations {
		h.b.accepted(cl, s)
		return endpoint.Accept
	}
	// An EndInstallation ran during the lookup above and may have looked
	// for this connection before track; its store change committed before
	// it ran, but perhaps after the lookup. Look again, now that a later
	// EndInstallation is sure to find this connection.
	again, err := h.b.cfg.Store.InstallationByUsername(ctx, string(pk.Connect.Username))
	if err != nil || again.ID != in.ID || again.PasswordHash != in.PasswordHash {
		h.b.logins.untrack(s)
		if h.b.cfg.Sessions != nil {
			_ = h.b.cfg.Sessions.Disconnected(ctx, s.mqttTopic, s.id)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.b.cfg.Logger.Error("look up installation", "error", err)
			return endpoint.RefuseUnavailable
		}
		return endpoint.RefuseCredentials
	}
	h.b.accepted(cl, s)
	return endpoint.Accept
}

// recordSession records s in the cluster, if there is one, before the
// CONNACK: the node that held its client ID ends its older connection.
func (b *API) recordSession(ctx context.Context, s *apiSession) endpoint.Refusal {
	if b.cfg.Sessions == nil {
		return endpoint.Accept
	}
	s.id = newSessionID()
	if err := b.cfg.Sessions.Connected(ctx, s.mqttTopic, s.thingID, s.id); err != nil {
		b.cfg.Logger.Error("record session", "error", err)
		return endpoint.RefuseUnavailable
	}
	return endpoint.Accept
}

// accepted makes s the session of cl and the local holder of its client
// ID.
func (b *API) accepted(cl *endpoint.Conn, s *apiSession) {
	cl.SetSession(s)
	b.mu.Lock()
	b.local[s.mqttTopic] = s
	b.mu.Unlock()
}

// EndSession ends the connection of clientID whose session is id, as a
// takeover: the client ID connected on another node.
func (b *API) EndSession(clientID string, id int64) {
	b.mu.Lock()
	s := b.local[clientID]
	b.mu.Unlock()
	if s != nil && s.id == id {
		b.end(s.cl, packets.ErrSessionTakenOver)
	}
}

// Sessions lists the connected sessions.
func (b *API) Sessions() []SessionInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]SessionInfo, 0, len(b.local))
	for _, s := range b.local {
		out = append(out, SessionInfo{ClientID: s.mqttTopic, ThingID: s.thingID, ID: s.id})
	}
	return out
}

// Publish serves a request under the thing's request prefix; any other
// publish ends the connection.
func (h apiHandler) Publish(ctx context.Context, cl *endpoint.Conn, pk *packets.Packet) (*packets.Packet, bool) {
	s := apiSessionOf(cl)
	if !allowPublish(h.b.cfg.Logger, cl, s.prefix, pk.TopicName) {
		return nil, false
	}
	return serveRequest(ctx, &h.b.cfg.Config, cl, pk, httpapi.Caller{Broker: httpapi.APIBroker, AppID: s.appID, ThingID: s.thingID}), true
}

// Subscribe: a thing reads only its mqttTopic.
func (h apiHandler) Subscribe(cl *endpoint.Conn, sub packets.Subscription) bool {
	return sub.Filter == apiSessionOf(cl).mqttTopic
}

// Subscribed makes the connection a push target once the SUBACK of its
// mqttTopic subscription is on the wire, and pushes what is pending. Every
// push thus follows the SUBACK, as embedded stacks that wait for the
// SUBACK expect, and as clients that register a message route only on
// SUBACK (Paho) need to see the push at all.
func (h apiHandler) Subscribed(cl *endpoint.Conn, pk *packets.Packet, codes []byte) {
	s := apiSessionOf(cl)
	if tap := h.b.cfg.Tap; tap.on() {
		tap.subscribe(TapAPI, s.appID, s.thingID, cl, *pk, codes)
	}
	for i, f := range pk.Filters {
		if f.Filter == s.mqttTopic && i < len(codes) && codes[i] <= 2 {
			s.qos.Store(uint32(codes[i]))
			s.attached.Store(true)
			h.b.push.Attach(s.thingID, s.conn)
			return
		}
	}
}

func (h apiHandler) Unsubscribe(cl *endpoint.Conn, filter string) bool {
	s := apiSessionOf(cl)
	if filter != s.mqttTopic || !s.attached.Swap(false) {
		return false
	}
	h.b.push.Detach(s.thingID, s.conn)
	return true
}

// Puback hands a PUBACK of a push to the push engine, which marks the
// command DELIVERED and pushes what the window held back.
func (h apiHandler) Puback(cl *endpoint.Conn, id uint16) {
	s := apiSessionOf(cl)
	if tap := h.b.cfg.Tap; tap.on() {
		tap.puback(s.appID, s.thingID, cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
	}
	h.b.push.Ack(s.thingID, s.conn, id)
}

func (h apiHandler) Disconnected(cl *endpoint.Conn, cause error) {
	s := apiSessionOf(cl)
	if tap := h.b.cfg.Tap; tap.on() {
		tap.disconnect(TapAPI, s.appID, s.thingID, cl, cause)
	}
	h.b.logins.untrack(s)
	// Acknowledged pushes are marked DELIVERED here, or they would be
	// pushed again on the next connection.
	h.b.push.Detach(s.thingID, s.conn)
	h.b.mu.Lock()
	mine := h.b.local[s.mqttTopic] == s
	if mine {
		delete(h.b.local, s.mqttTopic)
	}
	h.b.mu.Unlock()
	if mine && h.b.cfg.Sessions != nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.b.cfg.HandlerTimeout)
		defer cancel()
		if err := h.b.cfg.Sessions.Disconnected(ctx, s.mqttTopic, s.id); err != nil {
			h.b.cfg.Logger.Error("forget session", "error", err)
		}
	}
}

// newSessionID returns a random positive session number: unique across
// the nodes and their restarts.
func newSessionID() int64 {
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.BigEndian.Uint64(b[:]) >> 1)
}
