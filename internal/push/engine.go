// Package push writes stored commands to the connections of their things
// and records them DELIVERED: at QoS 0 once written, at QoS 1 on the
// thing's PUBACK. It knows no network: a connection is a Conn, and the MQTT
// endpoint tells the engine when one becomes a target (Attach, after its
// SUBACK), acknowledges a push (Ack) or ends (Detach).
//
// Each thing has one state: its connections, each with its in-flight
// window, the queue of commands handed over by Push, and its own sync
// epoch. The work for a thing runs on one goroutine at a time, its push
// loop, so pushes of one thing never run concurrently. The rules are
// written in docs/architecture.md ("Push engine").
//
// What the engine holds per thing is bounded by the in-flight windows, not
// by how many commands are pending: in-flight entries keep only a
// command's ID, thing and creation time; the queue of handed-over commands
// is bounded (Config.MaxQueue, Config.MaxQueueBytes) and past its bounds
// is dropped for a scan; a scan reads the store a page (Config.PageSize)
// at a time and stops at the first command no connection can take.
package push

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// Conn is one connection a thing's commands are written to (a connection
// subscribed to the thing's mqttTopic).
type Conn interface {
	// QoS returns the granted QoS of the connection's mqttTopic
	// subscription (the engine pushes at min(QoS,1)).
	QoS() byte
	// Window returns how many QoS 1 pushes may await their PUBACK on the
	// connection (the broker's in-flight bound, or the client's smaller
	// MQTT 5 Receive Maximum).
	Window() int
	// WritePush writes the command's PUBLISH (payload from CommandPayload)
	// at qos with packetID (0 at QoS 0), bounded by the connection's write
	// timeout. An error means the connection is unusable (the
	// implementation closes it; Detach follows).
	WritePush(c store.Command, payload []byte, qos byte, packetID uint16) error
}

// Store is what the engine needs of the store.
type Store interface {
	// PendingThings returns the IDs of the things with SENDING commands.
	PendingThings(ctx context.Context) ([]string, error)
	// PendingCommands pages the thing's SENDING commands in creation order
	// (store.Store.PendingCommands).
	PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error)
	// MarkDelivered moves a command from SENDING to DELIVERED and reports
	// whether it did.
	MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error)
}

var _ Store = store.Store(nil)

// Defaults of Config.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultPageSize      = 8
	DefaultMaxQueue      = 64
	DefaultMaxQueueBytes = 1 << 20
)

// Config configures an Engine.
type Config struct {
	// Store holds the commands. Required.
	Store Store
	// Logger receives the engine's errors. If nil, they are discarded.
	Logger *slog.Logger
	// Now returns the current time (the DELIVERED time). If nil, time.Now.
	Now func() time.Time
	// OnDelivered, if set, is called after a command was marked DELIVERED
	// (metrics). Only the command's ID, ThingID and CreatedAt are set: the
	// engine keeps no more of a command awaiting its PUBACK.
	OnDelivered func(c store.Command, at time.Time)
	// Timeout bounds the store calls of one round of a push loop. If zero,
	// DefaultTimeout.
	Timeout time.Duration
	// PageSize is how many pending commands a scan reads from the store at
	// a time. If zero, DefaultPageSize.
	PageSize int
	// MaxQueue and MaxQueueBytes bound the commands handed over by Push
	// that wait for a thing's running push loop (count, and bytes of their
	// variable parts). Past either, the queue is dropped and the loop scans
	// the store instead, where they are. If zero, DefaultMaxQueue and
	// DefaultMaxQueueBytes.
	MaxQueue, MaxQueueBytes int
	// Shared says that other processes store commands for the things too
	// (several nodes on one database, internal/cluster): this engine then
	// cannot know that a thing has none waiting, and every Attach scans.
	// Commands stored elsewhere while a thing is attached here reach the
	// engine as PushPending.
	Shared bool
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxQueueBytes <= 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
}

// Engine pushes commands to their things' attached connections. Its
// methods are safe for concurrent use.
//
// Lock order: Engine.mu, then a conn's mu. Neither is held while calling
// the store or a Conn.
type Engine struct {
	cfg Config

	mu sync.Mutex
	// things holds the state of each thing with an attached connection or
	// a running push loop.
	things map[string]*thing
	// busy holds the things that may have SENDING commands: those found
	// with some at Start (PendingThings), those handed a command since, and
	// those whose last scan found some. The Attach of any other thing needs
	// no scan: commands are created only through Push's callers, and this
	// process is the only writer of the store. Until busyKnown is set (the
	// start-up query failed) every thing counts as busy.
	busy      map[string]struct{}
	busyKnown bool
	closing   bool
	wg        sync.WaitGroup

	// held counts the bytes of commands the engine holds (queues and scan
	// pages); peak is its high-water mark. Tests read them.
	held, peak atomic.Int64
}

// thing is the state of one thing, guarded by Engine.mu.
type thing struct {
	id    string
	conns map[Conn]*conn
	// running is set while the thing's push loop runs; again asks it to go
	// round once more, scanning if scan is set, else writing queue (the
	// handed-over commands, queueBytes in all).
	running, again, scan bool
	queue                []store.Command
	queueBytes           int
	// synced is set when each of the thing's SENDING commands is written
	// to its connections and awaits its PUBACK, or is queued: then a new
	// command is written as handed over (Push), without a scan. Anything
	// that may leave a SENDING command outside those two places (a failed
	// write or store call, a full window, a connection gone) clears it and
	// bumps epoch; a scan that completes while epoch stood still sets it.
	synced bool
	epoch  uint64
	// scanPushed holds the IDs of commands a scan pushed in the last
	// scanMemory: a command stored just before a scan is found by it and
	// may still be handed over by Push afterwards, which must not push it
	// a second time.
	scanPushed map[string]time.Time
}

// unsync records that the thing may have a SENDING command that is neither
// awaiting a PUBACK nor queued: its next new command needs a scan.
func (t *thing) unsync() {
	t.synced = false
	t.epoch++
}

// scanMemory is how long a command pushed by a scan is remembered against
// a late Push of the same command. Push follows the store's commit by
// microseconds.
const scanMemory = time.Minute

// New returns an engine; call Start before attaching connections.
func New(cfg Config) *Engine {
	cfg.setDefaults()
	return &Engine{cfg: cfg, things: make(map[string]*thing), busy: make(map[string]struct{})}
}

// Start loads the things with commands waiting. An error is logged, and
// then every first Attach of a thing scans.
func (e *Engine) Start(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	ids, err := e.cfg.Store.PendingThings(ctx)
	if err != nil {
		e.cfg.Logger.Error("load things with pending commands", "error", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		e.busy[id] = struct{}{}
	}
	e.busyKnown = true
}

// Close starts no new rounds and waits for the running push loops to end.
// Calling it again does nothing.
func (e *Engine) Close() {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.wg.Wait()
}

// Subscribed returns the number of the thing's attached connections.
func (e *Engine) Subscribed(thingID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.things[thingID]; t != nil {
		return len(t.conns)
	}
	return 0
}

// Synced reports whether the thing has an attached connection and its next
// command is written as handed over, without a scan.
func (e *Engine) Synced(thingID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.things[thingID]
	return t != nil && t.synced && len(t.conns) > 0
}

// Attach makes c a target of the thing's commands: the SUBACK of c's
// mqttTopic subscription is written. The thing's pending commands are
// pushed, unless it is known to have none (never with Config.Shared). Attaching an attached c again
// keeps its in-flight pushes.
func (e *Engine) Attach(thingID string, c Conn) {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return
	}
	t := e.things[thingID]
	if t == nil {
		t = &thing{id: thingID, conns: make(map[Conn]*conn, 1)}
		e.things[thingID] = t
	}
	if t.conns[c] == nil {
		t.conns[c] = &conn{c: c}
	}
	_, busy := e.busy[thingID]
	busy = busy || !e.busyKnown || e.cfg.Shared
	if !busy {
		// Nothing is SENDING, so nothing is outside an in-flight table:
		// the thing's next command can be pushed as handed over.
		t.synced = true
	}
	e.mu.Unlock()
	if busy {
		e.wake(thingID, true, nil)
	}
}

// Detach forgets c (unsubscribed or ended) and marks its acknowledged
// pushes DELIVERED; its unacknowledged ones are SENDING again, held
// nowhere, so the thing unsyncs. It does nothing for a c not attached.
func (e *Engine) Detach(thingID string, c Conn) {
	e.mu.Lock()
	t := e.things[thingID]
	if t == nil || t.conns[c] == nil {
		e.mu.Unlock()
		return
	}
	cs := t.conns[c]
	delete(t.conns, c)
	t.unsync()
	if len(t.conns) == 0 {
		t.scanPushed = nil
		e.dropIdle(t)
	}
	closing := e.closing
	e.mu.Unlock()
	// Acknowledged pushes the loop has not marked yet: mark them now, or
	// they would be pushed again on the next connection.
	if acked := cs.takeAcked(); len(acked) > 0 && !closing {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
		defer cancel()
		for _, r := range acked {
			e.markDelivered(ctx, r)
		}
	}
}

// dropIdle forgets a thing with no connection and no push loop. e.mu is
// held.
func (e *Engine) dropIdle(t *thing) {
	if len(t.conns) == 0 && !t.running && e.things[t.id] == t {
		e.release(t.queueBytes)
		t.queue, t.queueBytes = nil, 0
		delete(e.things, t.id)
	}
}

// Ack takes a PUBACK read on c. Unknown packet IDs are ignored.
func (e *Engine) Ack(thingID string, c Conn, packetID uint16) {
	e.mu.Lock()
	var cs *conn
	if t := e.things[thingID]; t != nil {
		cs = t.conns[c]
	}
	e.mu.Unlock()
	if cs == nil {
		return
	}
	if known, full := cs.ack(packetID); known {
		// Marking needs a round; pushes the window held back need a scan.
		e.wake(thingID, full, nil)
	}
}

// Push hands a just-stored command to its thing's push loop and returns at
// once. When the thing is synced the command is written as handed over;
// otherwise the loop scans the store, where it is. Call it once per
// command, after the command is stored.
func (e *Engine) Push(_ context.Context, cmd store.Command) {
	e.wake(cmd.ThingID, false, &cmd)
}

// PushPending scans the thing's SENDING commands and pushes every one not
// awaiting a PUBACK.
func (e *Engine) PushPending(thingID string) {
	e.mu.Lock()
	e.busy[thingID] = struct{}{}
	e.mu.Unlock()
	e.wake(thingID, true, nil)
}

// wake starts the thing's push loop, or asks the running one to go round
// again. scan says whether the round must look for pending commands: a
// PUBACK alone only needs its command marked, unless pushes were held back
// by a full window. fresh, if not nil, is a command just stored: queued if
// the thing is synced and the queue has room, else found by a scan.
func (e *Engine) wake(thingID string, scan bool, fresh *store.Command) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if fresh != nil {
		e.busy[thingID] = struct{}{}
	}
	t := e.things[thingID]
	if e.closing || t == nil || len(t.conns) == 0 {
		return
	}
	if fresh != nil && !t.synced {
		scan = true
	}
	if t.running {
		t.again = true
		t.scan = t.scan || scan
		if !t.scan && fresh != nil {
			size := commandSize(fresh)
			if len(t.queue) < e.cfg.MaxQueue && t.queueBytes+size <= e.cfg.MaxQueueBytes {
				t.queue = append(t.queue, *fresh)
				t.queueBytes += size
				e.hold(size)
				return
			}
			t.scan = true // the queue is full: the scan finds them all
		}
		if t.scan {
			e.release(t.queueBytes)
			t.queue, t.queueBytes = nil, 0
		}
		return
	}
	var queue []store.Command
	queueBytes := 0
	if fresh != nil && !scan {
		if size := commandSize(fresh); size <= e.cfg.MaxQueueBytes {
			queue, queueBytes = []store.Command{*fresh}, size
			e.hold(size)
		} else {
			scan = true
		}
	}
	t.running = true
	e.wg.Add(1)
	go e.loop(t, scan, queue, queueBytes)
}

// loop runs rounds for the thing until no more is asked of it.
func (e *Engine) loop(t *thing, scan bool, queue []store.Command, queueBytes int) {
	defer e.wg.Done()
	for {
		e.round(t, scan, queue)
		e.release(queueBytes)
		e.mu.Lock()
		if !t.again || e.closing {
			t.running = false
			e.release(t.queueBytes)
			t.again, t.scan, t.queue, t.queueBytes = false, false, nil, 0
			e.dropIdle(t)
			e.mu.Unlock()
			return
		}
		scan, queue, queueBytes = t.scan, t.queue, t.queueBytes
		if !t.synced && len(queue) > 0 {
			// Unsynced since they were queued: a scan finds them.
			e.release(queueBytes)
			scan, queue, queueBytes = true, nil, 0
		}
		t.again, t.scan, t.queue, t.queueBytes = false, false, nil, 0
		e.mu.Unlock()
	}
}

// targets returns the thing's connections and its epoch at this moment.
func (e *Engine) targets(t *thing) ([]*conn, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := make([]*conn, 0, len(t.conns))
	for _, c := range t.conns {
		cs = append(cs, c)
	}
	return cs, t.epoch
}

// errWindowFull: the connection's window of unacknowledged QoS 1 pushes
// is full; the push waits for a PUBACK.
var errWindowFull = errors.New("in-flight window full")

// round is one round of a thing's push loop: it writes either the thing's
// SENDING commands (scan) or the queue, then marks those written at QoS 0
// and the acknowledged pushes DELIVERED. Writing first keeps a new command
// from waiting on the marks, which are lazy store writes. An acknowledged
// push stays in its connection's table until it is marked, so a scan
// meanwhile does not write it again.
func (e *Engine) round(t *thing, scan bool, queue []store.Command) {
	cs, epoch := e.targets(t)
	if len(cs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	var complete, ok bool
	if scan {
		complete, ok = e.scan(ctx, t, cs)
	} else {
		var delivered []ref
		complete, delivered, ok = e.write(t, cs, e.notScanned(t, queue), nil)
		complete = e.mark(ctx, cs, delivered) && complete
	}
	if !ok {
		return // unsynced already
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case !complete:
		t.unsync()
	case scan && t.epoch == epoch && len(t.conns) > 0:
		t.synced = true
	}
}

// scan writes the thing's SENDING commands a page at a time, marking each
// page's deliveries before reading the next, so that what it holds is one
// page. It stops at the first command no connection takes (gone, or its
// window full: the next PUBACK wakes a scan again).
func (e *Engine) scan(ctx context.Context, t *thing, cs []*conn) (complete, ok bool) {
	complete = true
	after := ""
	for first := true; ; first = false {
		page, err := e.cfg.Store.PendingCommands(ctx, t.id, after, e.cfg.PageSize)
		if err != nil {
			e.cfg.Logger.Error("load pending commands", "thing", t.id, "error", err)
			e.mark(ctx, cs, nil)
			e.unsync(t)
			return false, false
		}
		if first {
			e.scanned(t.id, len(page) > 0)
		}
		size := 0
		for i := range page {
			size += commandSize(&page[i])
		}
		e.hold(size)
		pageComplete, delivered, pageOK := e.write(t, cs, page, t)
		e.release(size)
		complete = e.mark(ctx, cs, delivered) && pageComplete && complete
		if !pageOK {
			return false, false
		}
		if len(page) < e.cfg.PageSize {
			return complete, true
		}
		after = page[len(page)-1].ID
	}
}

// write writes cmds to the connections. It returns the commands written at
// QoS 0 (delivered: the caller marks them), reports whether every other
// command written awaits a PUBACK (complete), and ok = false when it ended
// early, the thing unsynced: a command no connection took. A scan passes
// remember, the thing whose scanPushed records what it wrote.
func (e *Engine) write(t *thing, cs []*conn, cmds []store.Command, remember *thing) (complete bool, delivered []ref, ok bool) {
	complete = true
	var pushed []string
	defer func() { e.rememberScanned(remember, pushed) }()
	for i := range cmds {
		c := &cmds[i]
		payload, err := CommandPayload(*c)
		if err != nil {
			e.cfg.Logger.Error("encode command", "thing", t.id, "command", c.ID, "error", err)
			complete = false
			continue
		}
		reached, atQoS0 := false, false
		for _, cn := range cs {
			if cn.awaiting(c.ID) {
				reached = true // written before; its PUBACK decides
				continue
			}
			qos, err := cn.push(c, payload)
			if err != nil {
				if !errors.Is(err, errWindowFull) {
					e.cfg.Logger.Debug("push", "thing", t.id, "command", c.ID, "error", err)
				}
				complete = false
				continue
			}
			reached = true
			atQoS0 = atQoS0 || qos == 0
		}
		if !reached {
			// The connections are gone or full; the next SUBSCRIBE, or
			// PUBACK, pushes again.
			e.unsync(t)
			return false, delivered, false
		}
		pushed = append(pushed, c.ID)
		if atQoS0 {
			delivered = append(delivered, refOf(c))
		}
	}
	return complete, delivered, true
}

// mark marks delivered and the connections' acknowledged pushes DELIVERED
// and reports whether every store call succeeded.
func (e *Engine) mark(ctx context.Context, cs []*conn, delivered []ref) bool {
	for _, cn := range cs {
		delivered = append(delivered, cn.takeAcked()...)
	}
	ok := true
	for _, r := range delivered {
		ok = e.markDelivered(ctx, r) && ok
	}
	return ok
}

// markDelivered moves a command to DELIVERED and reports whether the store
// call succeeded.
func (e *Engine) markDelivered(ctx context.Context, r ref) bool {
	now := e.cfg.Now()
	ok, err := e.cfg.Store.MarkDelivered(ctx, r.thingID, r.id, now)
	if err != nil {
		e.cfg.Logger.Error("mark delivered", "thing", r.thingID, "command", r.id, "error", err)
		return false
	}
	if ok && e.cfg.OnDelivered != nil {
		e.cfg.OnDelivered(store.Command{ID: r.id, ThingID: r.thingID, CreatedAt: r.createdAt}, now)
	}
	return true
}

func (e *Engine) unsync(t *thing) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t.unsync()
}

// scanned records whether a scan of the thing found pending commands.
func (e *Engine) scanned(thingID string, pending bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if pending {
		e.busy[thingID] = struct{}{}
	} else {
		delete(e.busy, thingID)
	}
}

// rememberScanned records commands a scan of t pushed (t nil: none).
func (e *Engine) rememberScanned(t *thing, ids []string) {
	if t == nil || len(ids) == 0 {
		return
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.scanPushed == nil {
		t.scanPushed = make(map[string]time.Time, len(ids))
	}
	for _, id := range ids {
		t.scanPushed[id] = now
	}
}

// notScanned drops from queue the commands a recent scan pushed.
func (e *Engine) notScanned(t *thing, queue []store.Command) []store.Command {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.scanPushed == nil {
		return queue
	}
	now := time.Now()
	for id, at := range t.scanPushed {
		if now.Sub(at) > scanMemory {
			delete(t.scanPushed, id)
		}
	}
	if len(t.scanPushed) == 0 {
		t.scanPushed = nil
		return queue
	}
	out := queue[:0:0]
	for _, c := range queue {
		if _, seen := t.scanPushed[c.ID]; !seen {
			out = append(out, c)
		}
	}
	return out
}

func (e *Engine) hold(n int) {
	if n == 0 {
		return
	}
	v := e.held.Add(int64(n))
	for p := e.peak.Load(); v > p && !e.peak.CompareAndSwap(p, v); p = e.peak.Load() {
	}
}

func (e *Engine) release(n int) {
	if n != 0 {
		e.held.Add(-int64(n))
	}
}
