package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
)

const waitFor = 10 * time.Second

// write is one WritePush a fakeConn saw.
type write struct {
	id       string
	qos      byte
	packetID uint16
}

// fakeConn is a Conn that records its writes, fails them when fail is set
// and, when gate is not nil, holds each write until gate yields.
type fakeConn struct {
	qos    byte
	window int
	gate   chan struct{}
	fail   atomic.Bool

	mu      sync.Mutex
	writes  []write
	entered chan struct{} // a write has started (buffered, optional)
}

func (c *fakeConn) QoS() byte   { return c.qos }
func (c *fakeConn) Window() int { return c.window }

func (c *fakeConn) WritePush(cmd store.Command, payload []byte, qos byte, packetID uint16) error {
	if c.entered != nil {
		select {
		case c.entered <- struct{}{}:
		default:
		}
	}
	if c.gate != nil {
		<-c.gate
	}
	if c.fail.Load() {
		return errors.New("connection reset")
	}
	var p struct{ CommandID string }
	if err := json.Unmarshal(payload, &p); err != nil || p.CommandID != cmd.ID {
		return fmt.Errorf("payload %s (%v) is not of command %s", payload, err, cmd.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, write{cmd.ID, qos, packetID})
	return nil
}

// opener returns a func that lets the gated writes through, once; it also
// runs at the end of the test, so that a failing test does not leave Close
// waiting for a write.
func (c *fakeConn) opener(t *testing.T) func() {
	open := sync.OnceFunc(func() { close(c.gate) })
	t.Cleanup(open)
	return open
}

// got returns the writes so far.
func (c *fakeConn) got() []write {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]write(nil), c.writes...)
}

// ids returns the command IDs written so far.
func (c *fakeConn) ids() string {
	var ids []string
	for _, w := range c.got() {
		ids = append(ids, w.id)
	}
	return strings.Join(ids, ",")
}

// countingStore counts the scans (first pages) per thing and can hold the
// scans of one thing until gate yields.
type countingStore struct {
	store.Store
	mu        sync.Mutex
	scans     map[string]int
	gateThing string
	gate      chan struct{}
}

func (s *countingStore) PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error) {
	s.mu.Lock()
	if afterID == "" {
		s.scans[thingID]++
	}
	gate := s.gate
	if thingID != s.gateThing {
		gate = nil
	}
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.Store.PendingCommands(ctx, thingID, afterID, limit)
}

func (s *countingStore) scansOf(thingID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans[thingID]
}

// fixture is an engine on a real SQLite store holding things th.a and th.b.
type fixture struct {
	db        store.Store
	st        *countingStore
	e         *Engine
	n         atomic.Int64
	delivered chan store.Command
}

func newFixture(t *testing.T, configure func(*Config, *countingStore)) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now()
	if err := db.PutApp(ctx, store.App{ID: "app", KeyHash: "x", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"th.a", "th.b"} {
		th := store.Thing{ID: id, AppID: "app", VendorThingID: "v" + id, PasswordHash: "x", CreatedAt: now, ModifiedAt: now}
		in := store.Installation{ID: fmt.Sprint("in", i), AppID: "app", ThingID: id, DeviceType: "MQTT", MQTTTopic: "topic-" + id,
			Username: "user-" + id, PasswordHash: "x", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
		if err := db.SaveOnboarding(ctx, store.Onboarding{Thing: th, NewThing: true, Installation: in,
			Token: store.Token{Hash: "tok-" + id, AppID: "app", Kind: store.TokenThing, Subject: id, CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{db: db, st: &countingStore{Store: db, scans: map[string]int{}}, delivered: make(chan store.Command, 1000)}
	cfg := Config{Store: f.st, OnDelivered: func(c store.Command, _ time.Time) { f.delivered <- c }}
	if configure != nil {
		configure(&cfg, f.st)
	}
	f.e = New(cfg)
	t.Cleanup(f.e.Close)
	return f
}

// start starts the engine (after the commands that should count as
// pending at start are stored).
func (f *fixture) start(t *testing.T) { f.e.Start(t.Context()) }

// command stores a command of the thing with actions of about size bytes.
func (f *fixture) command(t *testing.T, thingID string, size int) store.Command {
	t.Helper()
	now := time.Now()
	actions := `[{"a":{"v":1}}]`
	if size > 0 {
		actions = `[{"a":{"v":"` + strings.Repeat("x", size) + `"}}]`
	}
	c := store.Command{ID: fmt.Sprintf("c%03d", f.n.Add(1)), AppID: "app", ThingID: thingID, State: store.CommandSending,
		Schema: "S", SchemaVersion: 1, Actions: json.RawMessage(actions), CreatedAt: now, ModifiedAt: now}
	if err := f.db.CreateCommand(context.Background(), c, 0); err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) state(t *testing.T, c store.Command) store.CommandState {
	t.Helper()
	got, err := f.db.Command(context.Background(), c.ThingID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.State
}

// idle waits until the thing has no push loop running.
func (f *fixture) idle(t *testing.T, thingID string) {
	t.Helper()
	eventually(t, "push loop of "+thingID+" ended", func() bool {
		f.e.mu.Lock()
		defer f.e.mu.Unlock()
		th := f.e.things[thingID]
		return th == nil || !th.running
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not after %v: %s", waitFor, what)
		}
	}
}

func TestPushAfterAttachOnly(t *testing.T) {
	f := newFixture(t, nil)
	f.start(t)
	c := f.command(t, "th.a", 0)
	f.e.Push(t.Context(), c)
	f.e.PushPending("th.a")
	f.idle(t, "th.a")
	conn := &fakeConn{qos: 1, window: 10}
	if got, want := conn.ids(), ""; got != want {
		t.Fatalf("writes before Attach = %q, want %q", got, want)
	}
	if got, want := f.state(t, c), store.CommandSending; got != want {
		t.Fatalf("state before Attach = %s, want %s", got, want)
	}
	f.e.Attach("th.a", conn)
	eventually(t, "command pushed after Attach", func() bool { return conn.ids() == c.ID })
	if got, want := f.e.Subscribed("th.a"), 1; got != want {
		t.Fatalf("Subscribed = %d, want %d", got, want)
	}
}

// TestSharedAttachScans: a command stored by another process (another
// node), which this engine never heard of, is pushed when the thing
// subscribes here if the store is Shared; a lone engine knows that the
// thing had none at its start and pushes nothing.
func TestSharedAttachScans(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared ", shared), func(t *testing.T) {
			f := newFixture(t, func(c *Config, _ *countingStore) { c.Shared = shared })
			f.start(t)                   // th.a has nothing pending
			c := f.command(t, "th.a", 0) // stored behind the engine's back
			conn := &fakeConn{qos: 1, window: 10}
			f.e.Attach("th.a", conn)
			if shared {
				eventually(t, "the other process's command pushed at Attach", func() bool { return conn.ids() == c.ID })
				return
			}
			f.idle(t, "th.a")
			if got := conn.ids(); got != "" {
				t.Fatalf("a lone engine pushed %q at Attach of a thing it knew had none", got)
			}
		})
	}
}

func TestDelivery(t *testing.T) {
	for _, tt := range []struct {
		name string
		qos  byte // of the subscription
		want byte // of the push
	}{
		{"QoS 0 delivered on write", 0, 0},
		{"QoS 1 delivered on Ack", 1, 1},
		{"QoS 2 pushed at 1", 2, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.start(t)
			conn := &fakeConn{qos: tt.qos, window: 10}
			f.e.Attach("th.a", conn)
			c := f.command(t, "th.a", 0)
			f.e.Push(t.Context(), c)
			eventually(t, "command pushed", func() bool { return len(conn.got()) == 1 })
			w := conn.got()[0]
			if got, want := w.qos, tt.want; got != want {
				t.Fatalf("push QoS = %d, want %d", got, want)
			}
			if got, want := w.packetID == 0, tt.want == 0; got != want {
				t.Fatalf("push packet ID = %d at QoS %d", w.packetID, w.qos)
			}
			f.idle(t, "th.a")
			if tt.want == 1 {
				if got, want := f.state(t, c), store.CommandSending; got != want {
					t.Fatalf("state before the PUBACK = %s, want %s", got, want)
				}
				f.e.Ack("th.a", conn, w.packetID+1) // unknown: ignored
				f.e.Ack("th.b", conn, w.packetID)   // not th.b's connection: ignored
				f.idle(t, "th.a")
				if got, want := f.state(t, c), store.CommandSending; got != want {
					t.Fatalf("state after unknown PUBACKs = %s, want %s", got, want)
				}
				f.e.Ack("th.a", conn, w.packetID)
			}
			select {
			case d := <-f.delivered:
				if d.ID != c.ID || !d.CreatedAt.Equal(c.CreatedAt) {
					t.Fatalf("OnDelivered(%s, created %v), want %s, %v", d.ID, d.CreatedAt, c.ID, c.CreatedAt)
				}
			case <-time.After(waitFor):
				t.Fatal("OnDelivered not called")
			}
			if got, want := f.state(t, c), store.CommandDelivered; got != want {
				t.Fatalf("state = %s, want %s", got, want)
			}
			f.e.PushPending("th.a")
			f.idle(t, "th.a")
			if got, want := len(conn.got()), 1; got != want {
				t.Fatalf("%d writes after a scan of a delivered command, want %d", got, want)
			}
		})
	}
}

// TestWindow: the window holds QoS 1 pushes back; each Ack releases the
// next, in creation order.
func TestWindow(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *countingStore) { c.PageSize = 2 })
	var cmds []store.Command
	for range 5 {
		cmds = append(cmds, f.command(t, "th.a", 0))
	}
	f.start(t)
	conn := &fakeConn{qos: 1, window: 2}
	f.e.Attach("th.a", conn)
	eventually(t, "two pushes", func() bool { return len(conn.got()) == 2 })
	f.idle(t, "th.a")
	if got, want := conn.ids(), cmds[0].ID+","+cmds[1].ID; got != want {
		t.Fatalf("pushes with a window of 2 = %s, want %s", got, want)
	}
	for i := 2; i < 5; i++ {
		f.e.Ack("th.a", conn, conn.got()[i-2].packetID)
		eventually(t, fmt.Sprintf("push %d after an Ack", i), func() bool { return len(conn.got()) == i+1 })
		f.idle(t, "th.a")
		if got, want := conn.got()[i].id, cmds[i].ID; got != want {
			t.Fatalf("push %d = %s, want %s", i, got, want)
		}
		if got, want := len(conn.got()), i+1; got != want {
			t.Fatalf("%d pushes after %d Acks, want %d", got, i-1, want)
		}
	}
	if got, want := f.state(t, cmds[0]), store.CommandDelivered; got != want {
		t.Fatalf("acknowledged command is %s, want %s", got, want)
	}
}

// TestDetachMarksAcked: a push acknowledged on a connection that goes
// before the push loop marked it is marked by Detach, and not pushed again.
func TestDetachMarksAcked(t *testing.T) {
	f := newFixture(t, nil)
	f.start(t)
	a := &fakeConn{qos: 1, window: 10}
	f.e.Attach("th.a", a)
	c := f.command(t, "th.a", 0)
	f.e.Push(t.Context(), c)
	eventually(t, "pushed to a", func() bool { return len(a.got()) == 1 })
	f.idle(t, "th.a")
	// b's writes hold the thing's push loop: only Detach can mark.
	b := &fakeConn{qos: 1, window: 10, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	openB := b.opener(t)
	f.e.Attach("th.a", b)
	<-b.entered
	f.e.Ack("th.a", a, a.got()[0].packetID)
	f.e.Detach("th.a", a)
	if got, want := f.state(t, c), store.CommandDelivered; got != want {
		t.Fatalf("state after Detach = %s, want %s", got, want)
	}
	f.e.Detach("th.a", a) // again: nothing
	openB()
	f.idle(t, "th.a")
	a2 := &fakeConn{qos: 1, window: 10}
	f.e.Attach("th.a", a2)
	f.idle(t, "th.a")
	if got, want := a2.ids(), ""; got != want {
		t.Fatalf("pushed again to a new connection: %q, want %q", got, want)
	}
	if got, want := f.e.Subscribed("th.a"), 2; got != want {
		t.Fatalf("Subscribed = %d, want %d", got, want)
	}
	f.e.Detach("th.b", &fakeConn{}) // never attached: nothing
}

// TestLatePushAfterScan: a command a scan found and pushed is not pushed
// again when Push hands it over afterwards (the scanPushed memory).
func TestLatePushAfterScan(t *testing.T) {
	f := newFixture(t, nil)
	f.start(t)
	conn := &fakeConn{qos: 0}
	f.e.Attach("th.a", conn)
	if !f.e.Synced("th.a") {
		t.Fatal("a thing with nothing pending is not synced on Attach")
	}
	c := f.command(t, "th.a", 0)
	f.e.PushPending("th.a") // another command's scan finds c
	f.idle(t, "th.a")
	f.e.Push(t.Context(), c) // c's own hand-over, late
	f.idle(t, "th.a")
	if got, want := conn.ids(), c.ID; got != want {
		t.Fatalf("writes = %q, want %q (once)", got, want)
	}
}

// TestTwoConnections: a command goes to every connection of its thing and
// is delivered on the first PUBACK; a Detach leaves the other target.
func TestTwoConnections(t *testing.T) {
	f := newFixture(t, nil)
	f.start(t)
	a, b := &fakeConn{qos: 1, window: 10}, &fakeConn{qos: 0}
	f.e.Attach("th.a", a)
	f.e.Attach("th.a", b)
	if got, want := f.e.Subscribed("th.a"), 2; got != want {
		t.Fatalf("Subscribed = %d, want %d", got, want)
	}
	c1 := f.command(t, "th.a", 0)
	f.e.Push(t.Context(), c1)
	eventually(t, "pushed to both", func() bool { return a.ids() == c1.ID && b.ids() == c1.ID })
	f.idle(t, "th.a")
	if got, want := f.state(t, c1), store.CommandDelivered; got != want {
		t.Fatalf("state after a QoS 0 write on b = %s, want %s", got, want)
	}
	f.e.Detach("th.a", b)
	if got, want := f.e.Subscribed("th.a"), 1; got != want {
		t.Fatalf("Subscribed after a Detach = %d, want %d", got, want)
	}
	c2 := f.command(t, "th.a", 0)
	f.e.Push(t.Context(), c2)
	eventually(t, "c2 pushed to a", func() bool { return a.ids() == c1.ID+","+c2.ID })
	f.idle(t, "th.a")
	if got, want := b.ids(), c1.ID; got != want {
		t.Fatalf("writes to the detached b = %q, want %q", got, want)
	}
}

// TestUnsyncIsPerThing: a connection of one thing failing or going costs
// another thing no scan, even when it happens during that thing's scan.
func TestUnsyncIsPerThing(t *testing.T) {
	f := newFixture(t, func(_ *Config, s *countingStore) { s.gateThing, s.gate = "th.b", make(chan struct{}) })
	openScan := sync.OnceFunc(func() { close(f.st.gate) })
	t.Cleanup(openScan)
	first := f.command(t, "th.b", 0) // th.b is pending at start: its Attach scans
	f.start(t)
	b := &fakeConn{qos: 0}
	f.e.Attach("th.b", b)
	eventually(t, "th.b scanning", func() bool { return f.st.scansOf("th.b") == 1 })
	// During th.b's scan: th.a's connection fails a write and another goes.
	a1, a2 := &fakeConn{qos: 0}, &fakeConn{qos: 0}
	a1.fail.Store(true)
	f.e.Attach("th.a", a1)
	f.e.Attach("th.a", a2)
	f.e.Push(t.Context(), f.command(t, "th.a", 0))
	f.idle(t, "th.a")
	f.e.Detach("th.a", a2)
	openScan()
	f.idle(t, "th.b")
	if !f.e.Synced("th.b") {
		t.Fatal("th.b not synced after its scan: th.a's failure unsynced it")
	}
	next := f.command(t, "th.b", 0)
	f.e.Push(t.Context(), next)
	f.idle(t, "th.b")
	if got, want := b.ids(), first.ID+","+next.ID; got != want {
		t.Fatalf("th.b got %q, want %q", got, want)
	}
	if got, want := f.st.scansOf("th.b"), 1; got != want {
		t.Fatalf("th.b scans = %d, want %d", got, want)
	}
	if f.e.Synced("th.a") {
		t.Fatal("th.a synced after its failed write")
	}
	// th.a's next command goes through a scan (the first one reached a2,
	// which wrote it at QoS 0: delivered).
	a1.fail.Store(false)
	c := f.command(t, "th.a", 0)
	f.e.Push(t.Context(), c)
	f.idle(t, "th.a")
	if got, want := f.st.scansOf("th.a"), 1; got != want {
		t.Fatalf("th.a scans = %d, want %d", got, want)
	}
	if got, want := a1.ids(), c.ID; got != want {
		t.Fatalf("th.a got %q after its scan, want %q", got, want)
	}
}

// TestClose: Close waits for a running push loop; later calls do nothing.
func TestClose(t *testing.T) {
	f := newFixture(t, nil)
	f.start(t)
	conn := &fakeConn{qos: 0, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	open := conn.opener(t)
	f.e.Attach("th.a", conn)
	f.e.Push(t.Context(), f.command(t, "th.a", 0))
	<-conn.entered
	closed := make(chan struct{})
	go func() { f.e.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a push loop was writing")
	case <-time.After(50 * time.Millisecond):
	}
	open()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return after the write ended")
	}
	f.e.Close() // again: returns
	later := &fakeConn{qos: 0}
	f.e.Attach("th.b", later)
	f.e.Push(t.Context(), f.command(t, "th.b", 0))
	f.e.PushPending("th.b")
	f.e.Push(t.Context(), f.command(t, "th.a", 0))
	if got, want := later.ids()+conn.ids(), "c001"; got != want {
		t.Fatalf("writes after Close = %q, want only the one before (%q)", got, want)
	}
	if got, want := f.e.Subscribed("th.b"), 0; got != want {
		t.Fatalf("Subscribed after an Attach after Close = %d, want %d", got, want)
	}
}
