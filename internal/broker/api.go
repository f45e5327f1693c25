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

	mu sync.Mutex
	// live holds, per thing ID, the connections subscribed to their
	// mqttTopic: the ones a command can be written to.
	live map[string]map[*mqtt.Client]*apiSession
	// pushing marks the things with a push loop running; the value is set
	// when another push was asked for meanwhile.
	pushing map[string]*pushRequest
	// busy holds the things that may have SENDING commands: those found
	// with some when the broker started (store.PendingThings), those
	// handed a command since, and those whose last scan found some. A
	// SUBSCRIBE of any other thing needs no scan. Commands are created only
	// through Push's callers (REST, triggers), each of which calls Push,
	// and this process is the only writer of the store. Until busyKnown is
	// set (the start-up query failed) every thing counts as busy.
	busy      map[string]struct{}
	busyKnown bool
	// synced holds the things each of whose SENDING commands is written to
	// a live connection and awaits its PUBACK, or is queued as fresh for
	// the push loop: for them a new command is pushed as it is handed over
	// (Push), without a scan of the store. Anything that may leave a
	// SENDING command outside those two places (a failed write or store
	// call, a connection gone) removes the thing and bumps syncEpoch; a
	// scan that completes while the epoch stood still adds it.
	synced    map[string]struct{}
	syncEpoch uint64
	// scanPushed holds, per thing, the IDs of commands a scan pushed in the
	// last scanMemory: a command stored just before a scan is found by it
	// and may still be handed over by Push afterwards, which must not push
	// it a second time.
	scanPushed map[string]map[string]time.Time
	closing    bool
	wg         sync.WaitGroup

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

	// inflight holds the QoS 1 pushes written and not yet marked
	// DELIVERED, by packet ID. A PUBACK only flags its entry; the thing's
	// push loop marks the command and drops the entry, so that a command
	// is never both out of this table and still SENDING in the store while
	// the loop looks (which would push it twice).
	//
	// The pushes are numbered here, not in mochi's in-flight table: mochi
	// keeps the PUBACKs it owes for the thing's own QoS 1 PUBLISHes in that
	// table too, by packet ID, though the two directions number their
	// packets independently (MQTT 2.2.1). A thing publishing with the ID of
	// an unacknowledged push would take the push's entry there, and its
	// PUBACK to the thing would pass for the thing's PUBACK of the push.
	// PUBACKs from the thing are taken as they are read (OnPacketRead).
	mu       sync.Mutex
	inflight map[uint16]*pushEntry
	lastID   uint16 // the packet ID of the latest push
	unacked  int    // entries of inflight not yet acknowledged
	// windowFull is set when a push found the in-flight window full: the
	// next PUBACK wakes the push loop.
	windowFull bool

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
	b := &API{cfg: cfg, live: make(map[string]map[*mqtt.Client]*apiSession), pushing: make(map[string]*pushRequest), busy: make(map[string]struct{}),
		synced: make(map[string]struct{}), scanPushed: make(map[string]map[string]time.Time), logins: newLogins()}
	b.cfg.Logger = cfg.Logger.With("broker", "api")
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
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.HandlerTimeout)
	things, err := b.cfg.Store.PendingThings(ctx)
	cancel()
	if err != nil {
		// Not fatal: every first SUBSCRIBE scans instead.
		b.cfg.Logger.Error("load things with pending commands", "error", err)
	} else {
		b.mu.Lock()
		for _, id := range things {
			b.busy[id] = struct{}{}
		}
		b.busyKnown = true
		b.mu.Unlock()
	}
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
	b.removeLive(cl, s)
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
	b.wg.Wait()
	return err
}

// Connections returns the number of connected clients.
func (b *API) Connections() int64 { return atomic.LoadInt64(&b.srv.Info.ClientsConnected) }

// Subscribed returns the number of the thing's connections that commands
// are pushed to.
func (b *API) Subscribed(thingID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.live[thingID])
}

// Push hands a newly stored command to its thing's push loop, which writes
// it to the thing's live, subscribed connections; it becomes DELIVERED on
// the PUBACK (QoS 1) or once written (QoS 0). Call it once per command,
// after the command is stored. It returns at once: the work runs on one
// goroutine per thing, and a Push that arrives while that goroutine runs
// makes it go round once more, so pushes for a thing never run
// concurrently and none is lost.
//
// When everything else SENDING for the thing is known to be written and
// awaiting its PUBACK (synced), the command is written as handed over;
// otherwise the loop scans the store for all of the thing's SENDING
// commands, this one included.
func (b *API) Push(_ context.Context, c store.Command) {
	b.wake(c.ThingID, false, &c)
}

// PushPending writes every SENDING command of the thing that is not already
// awaiting its PUBACK, after a scan of the store.
func (b *API) PushPending(thingID string) {
	b.mu.Lock()
	b.busy[thingID] = struct{}{}
	b.mu.Unlock()
	b.wake(thingID, true, nil)
}

// pushSubscribed pushes what is pending for a thing that has just
// subscribed, unless it is known to have nothing pending.
func (b *API) pushSubscribed(thingID string) {
	b.mu.Lock()
	_, busy := b.busy[thingID]
	busy = busy || !b.busyKnown
	if !busy && len(b.live[thingID]) > 0 {
		// Nothing is SENDING, so nothing is outside an in-flight table:
		// the thing's next command can be pushed as handed over.
		b.synced[thingID] = struct{}{}
	}
	b.mu.Unlock()
	if busy {
		b.wake(thingID, true, nil)
	}
}

// scanned records what a scan of the thing's pending commands found.
func (b *API) scanned(thingID string, pending int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pending == 0 {
		delete(b.busy, thingID)
	} else {
		b.busy[thingID] = struct{}{}
	}
}

// unsync records that the thing may have a SENDING command that is
// neither awaiting a PUBACK nor queued: its next new command needs a scan.
func (b *API) unsync(thingID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unsyncLocked(thingID)
}

func (b *API) unsyncLocked(thingID string) {
	delete(b.synced, thingID)
	b.syncEpoch++
}

// scanMemory is how long a command pushed by a scan is remembered against
// a late Push of the same command (see API.scanPushed). Push follows the
// store's commit by microseconds.
const scanMemory = time.Minute

// rememberScanned records commands a scan pushed.
func (b *API) rememberScanned(thingID string, ids []string) {
	if len(ids) == 0 {
		return
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.scanPushed[thingID]
	if m == nil {
		m = make(map[string]time.Time, len(ids))
		b.scanPushed[thingID] = m
	}
	for _, id := range ids {
		m[id] = now
	}
}

// notScanned drops from fresh the commands a recent scan pushed.
func (b *API) notScanned(thingID string, fresh []store.Command) []store.Command {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.scanPushed[thingID]
	if m == nil {
		return fresh
	}
	now := time.Now()
	for id, at := range m {
		if now.Sub(at) > scanMemory {
			delete(m, id)
		}
	}
	if len(m) == 0 {
		delete(b.scanPushed, thingID)
		return fresh
	}
	out := fresh[:0:0]
	for _, c := range fresh {
		if _, seen := m[c.ID]; !seen {
			out = append(out, c)
		}
	}
	return out
}

// pushRequest is what a thing's running push loop is asked to do next.
type pushRequest struct {
	again bool            // go round once more
	scan  bool            // and look for pending commands (not only acknowledgements)
	fresh []store.Command // commands handed over by Push, when scan is not set
}

// wake starts the thing's push loop, or asks the running one to go round
// again. scan says whether the round must look for pending commands: a
// PUBACK alone only needs its command marked, unless pushes were held back
// by a full in-flight window. fresh, if not nil, is a command just stored:
// pushed as it is if the thing is synced, else through a scan.
func (b *API) wake(thingID string, scan bool, fresh *store.Command) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fresh != nil {
		b.busy[thingID] = struct{}{}
		if _, ok := b.synced[thingID]; !ok {
			scan = true
		}
	}
	if b.closing || len(b.live[thingID]) == 0 {
		return
	}
	if r, running := b.pushing[thingID]; running {
		r.again = true
		r.scan = r.scan || scan
		if r.scan {
			r.fresh = nil // the scan finds them
		} else if fresh != nil {
			r.fresh = append(r.fresh, *fresh)
		}
		return
	}
	b.pushing[thingID] = &pushRequest{}
	var fs []store.Command
	if fresh != nil && !scan {
		fs = []store.Command{*fresh}
	}
	b.wg.Add(1)
	go b.pushLoop(thingID, scan, fs)
}

func (b *API) pushLoop(thingID string, scan bool, fresh []store.Command) {
	defer b.wg.Done()
	for {
		b.pushOnce(thingID, scan, fresh)
		b.mu.Lock()
		r := b.pushing[thingID]
		if !r.again || b.closing {
			delete(b.pushing, thingID)
			b.mu.Unlock()
			return
		}
		scan, fresh = r.scan, r.fresh
		if _, ok := b.synced[thingID]; !ok && len(fresh) > 0 {
			scan, fresh = true, nil // unsynced since they were queued
		}
		*r = pushRequest{}
		b.mu.Unlock()
	}
}

// errInflightFull: the client's window of unacknowledged QoS 1 pushes is
// full; the push waits for a PUBACK.
var errInflightFull = errors.New("in-flight window full")

type pushEntry struct {
	cmd   store.Command
	acked bool
}

// await gives a QoS 1 push of c the next packet ID no push in the table
// holds and remembers it until its PUBACK is handled. It returns false,
// and flags the window full, when window pushes await their PUBACK.
func (s *apiSession) await(c store.Command, window int) (uint16, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unacked >= window {
		s.windowFull = true
		return 0, false
	}
	if s.inflight == nil {
		s.inflight = make(map[uint16]*pushEntry)
	}
	for { // the table holds far fewer than 65,535 entries: this ends
		s.lastID++
		if s.lastID == 0 {
			s.lastID = 1
		}
		if _, taken := s.inflight[s.lastID]; !taken {
			break
		}
	}
	s.inflight[s.lastID] = &pushEntry{cmd: c}
	s.unacked++
	return s.lastID, true
}

// forget drops a push whose write failed.
func (s *apiSession) forget(id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.inflight[id]; ok {
		delete(s.inflight, id)
		if !e.acked {
			s.unacked--
		}
	}
}

// ack flags the push with the given packet ID as acknowledged. known
// reports whether such a push awaited its PUBACK; full whether the window
// was full, which the PUBACK ends.
func (s *apiSession) ack(id uint16) (known, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.inflight[id]
	if !ok || e.acked {
		return false, false
	}
	e.acked = true
	s.unacked--
	full, s.windowFull = s.windowFull, false
	return true, full
}

// takeAcked removes the acknowledged pushes and returns their commands.
func (s *apiSession) takeAcked() []store.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []store.Command
	for id, e := range s.inflight {
		if e.acked {
			cs = append(cs, e.cmd)
			delete(s.inflight, id)
		}
	}
	return cs
}

// awaiting reports whether a push of the command is in the table.
func (s *apiSession) awaiting(commandID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.inflight {
		if e.cmd.ID == commandID {
			return true
		}
	}
	return false
}

type target struct {
	cl *mqtt.Client
	s  *apiSession
}

// targets returns the thing's live connections, and the sync epoch at the
// moment they were taken.
func (b *API) targets(thingID string) ([]target, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	conns := b.live[thingID]
	ts := make([]target, 0, len(conns))
	for cl, s := range conns {
		if !cl.Closed() {
			ts = append(ts, target{cl, s})
		}
	}
	return ts, b.syncEpoch
}

// pushOnce is one round of a thing's push loop: it writes either every
// SENDING command (scan) or the commands handed over (fresh), then marks
// those written at QoS 0 and the acknowledged pushes DELIVERED. Writing
// first keeps a new command from waiting on the marks, which are lazy store
// writes (they may wait for another write to commit with). An acknowledged
// push stays in its session's table until it is marked, so a scan
// meanwhile does not write it again.
func (b *API) pushOnce(thingID string, scan bool, fresh []store.Command) {
	ts, epoch := b.targets(thingID)
	if len(ts) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.HandlerTimeout)
	defer cancel()
	// complete: every command written awaits a PUBACK or is DELIVERED.
	complete, written, ok := b.writeCommands(ctx, thingID, ts, scan, fresh)
	for _, t := range ts {
		written = append(written, t.s.takeAcked()...)
	}
	for _, c := range written {
		complete = b.markDelivered(ctx, c) && complete
	}
	if !ok {
		return // unsynced already
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !complete:
		b.unsyncLocked(thingID)
	case scan && b.syncEpoch == epoch && len(b.live[thingID]) > 0:
		b.synced[thingID] = struct{}{}
	}
}

// writeCommands writes the round's commands to the thing's connections. It
// returns the commands written at QoS 0 (delivered: the caller marks them),
// reports whether every other command written awaits a PUBACK (complete),
// and ok = false when the round ended early, the thing unsynced (a failed
// scan, or no connection left).
func (b *API) writeCommands(ctx context.Context, thingID string, ts []target, scan bool, fresh []store.Command) (complete bool, delivered []store.Command, ok bool) {
	complete = true
	var cmds []store.Command
	switch {
	case scan:
		var err error
		if cmds, err = b.cfg.Store.PendingCommands(ctx, thingID, "", 0); err != nil {
			b.cfg.Logger.Error("load pending commands", "thing", thingID, "error", err)
			b.unsync(thingID)
			return false, nil, false
		}
		b.scanned(thingID, len(cmds))
	case len(fresh) > 0:
		cmds = b.notScanned(thingID, fresh)
	}
	var pushed []string
	for _, c := range cmds {
		payload, err := CommandPayload(c)
		if err != nil {
			b.cfg.Logger.Error("encode command", "thing", thingID, "command", c.ID, "error", err)
			complete = false
			continue
		}
		reached, atQoS0 := false, false
		for _, t := range ts {
			if t.s.awaiting(c.ID) {
				reached = true // written before; its PUBACK decides
				continue
			}
			qos, err := b.writePush(t, c, payload)
			if err != nil {
				b.cfg.Logger.Debug("push", "client", t.cl.ID, "command", c.ID, "error", err)
				complete = false
				continue
			}
			reached = true
			atQoS0 = atQoS0 || qos == 0
		}
		if !reached {
			// The connections are gone; the next SUBSCRIBE pushes again.
			b.unsync(thingID)
			if scan {
				b.rememberScanned(thingID, pushed)
			}
			return false, delivered, false
		}
		pushed = append(pushed, c.ID)
		if atQoS0 {
			delivered = append(delivered, c)
		}
	}
	if scan {
		b.rememberScanned(thingID, pushed)
	}
	return complete, delivered, true
}

// markDelivered moves a command to DELIVERED and reports whether the store
// call succeeded.
func (b *API) markDelivered(ctx context.Context, c store.Command) bool {
	now := b.cfg.Now()
	ok, err := b.cfg.Store.MarkDelivered(ctx, c.ThingID, c.ID, now)
	if err != nil {
		b.cfg.Logger.Error("mark delivered", "thing", c.ThingID, "command", c.ID, "error", err)
		return false
	}
	if ok && b.cfg.OnDelivered != nil {
		b.cfg.OnDelivered(c, now)
	}
	return true
}

// writePush writes one command to a connection at the QoS of its
// subscription (capped at 1) and returns that QoS. PROTOCOL.md §8: things
// subscribed at QoS 0 parse a QoS 0 PUBLISH only, so they must never get a
// QoS 1 one.
//
// A QoS 0 push counts as delivered once written: nothing else can be known.
// A QoS 1 push is delivered when the thing's PUBACK arrives (OnPacketRead):
// if the connection was already dead when the write went into its socket,
// no PUBACK comes, the command stays SENDING and is pushed again when the
// thing next subscribes. Until then the session remembers the command so
// that later pushes on the same connection do not repeat it.
func (b *API) writePush(t target, c store.Command, payload []byte) (byte, error) {
	qos := byte(min(t.s.qos.Load(), 1))
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   t.s.mqttTopic,
		Payload:     payload,
		Created:     time.Now().Unix(),
	}
	if qos == 0 {
		err := t.cl.WritePacket(pk)
		if tap := b.cfg.Tap; tap.on() {
			tap.push(t.s.appID, t.s.thingID, t.cl, pk, c.ID, err)
		}
		return 0, err
	}
	// The window: the broker's, or the thing's MQTT 5 Receive Maximum
	// (which mochi caps at the broker's).
	window := int(b.srv.Options.Capabilities.MaximumInflight)
	if rm := int(t.cl.Properties.Props.ReceiveMaximum); t.cl.Properties.ProtocolVersion == 5 && rm > 0 && rm < window {
		window = rm
	}
	id, ok := t.s.await(c, window)
	if !ok {
		return qos, errInflightFull // the next PUBACK wakes the loop
	}
	pk.PacketID = id
	err := t.cl.WritePacket(pk)
	if tap := b.cfg.Tap; tap.on() {
		tap.push(t.s.appID, t.s.thingID, t.cl, pk, c.ID, err)
	}
	if err != nil {
		t.s.forget(id)
		return qos, err
	}
	return qos, nil
}

func (b *API) addLive(cl *mqtt.Client, s *apiSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.live[s.thingID]
	if m == nil {
		m = make(map[*mqtt.Client]*apiSession, 1)
		b.live[s.thingID] = m
	}
	m[cl] = s
}

func (b *API) removeLive(cl *mqtt.Client, s *apiSession) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m := b.live[s.thingID]; m != nil {
		delete(m, cl)
		if len(m) == 0 {
			delete(b.live, s.thingID)
			delete(b.scanPushed, s.thingID)
		}
	}
	// Its unacknowledged pushes are SENDING again, held nowhere.
	b.unsyncLocked(s.thingID)
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
		if known, full := s.ack(pk.PacketID); known {
			h.b.wake(s.thingID, full, nil)
		}
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
		h.b.addLive(cl, s)
		h.b.pushSubscribed(s.thingID)
	}
}

func (h *apiHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s := h.b.sessions.get(cl)
	if s == nil {
		return
	}
	for _, f := range pk.Filters {
		if f.Filter == s.mqttTopic {
			h.b.removeLive(cl, s)
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
		h.b.removeLive(cl, s)
		// Acknowledged pushes the loop has not marked yet: mark them now,
		// or they would be pushed again on the next connection.
		if acked := s.takeAcked(); len(acked) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), h.b.cfg.HandlerTimeout)
			for _, c := range acked {
				h.b.markDelivered(ctx, c)
			}
			cancel()
		}
	}
	h.b.sessions.delete(cl)
}
