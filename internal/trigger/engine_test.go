package trigger

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
)

// fakeClock is an injected clock: Now is set by the test, and After channels
// fire when Advance passes their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // receives each time After is called
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock {
	return &fakeClock{now: t, waiting: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	c.waiting <- struct{}{}
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type recordingPusher struct {
	mu    sync.Mutex
	calls []string
}

func (p *recordingPusher) Push(_ context.Context, c store.Command) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c.AppID+"/"+c.ThingID)
}

type fixture struct {
	t      *testing.T
	path   string
	st     *sqlite.DB
	clock  *fakeClock
	pusher *recordingPusher
	e      *Engine
	// maxPending is the engine's MaxPendingCommands (set before open).
	maxPending int
}

func newFixture(t *testing.T, webhook string) *fixture {
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "thingif.db"), clock: newFakeClock(t0), pusher: &recordingPusher{}}
	f.open(webhook)
	ctx := t.Context()
	must(t, f.st.PutApp(ctx, store.App{ID: "app1", KeyHash: "h", CreatedAt: t0}))
	for _, id := range []string{"th.1", "th.2"} {
		must(t, f.st.SaveOnboarding(ctx, store.Onboarding{
			Thing:        store.Thing{ID: id, AppID: "app1", VendorThingID: "v-" + id, PasswordHash: "h", CreatedAt: t0, ModifiedAt: t0},
			NewThing:     true,
			Installation: store.Installation{ID: "in-" + id, AppID: "app1", ThingID: id, MQTTTopic: "t-" + id, Username: "u-" + id, CreatedAt: t0},
			Token:        store.Token{Hash: "tok-" + id, AppID: "app1", Kind: store.TokenThing, Subject: id, CreatedAt: t0},
		}))
	}
	return f
}

// open opens the store (again) and a new engine on it, as a restart does.
func (f *fixture) open(webhook string) {
	if f.st != nil {
		f.e.Wait()
		f.st.Close()
	}
	st, err := sqlite.Open(context.Background(), f.path)
	must(f.t, err)
	f.t.Cleanup(func() { st.Close() })
	f.st = st
	f.e, err = New(Config{Store: st, Pusher: f.pusher, WebhookURL: webhook, Now: f.clock.Now, After: f.clock.After,
		MaxPendingCommands: f.maxPending})
	must(f.t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) addTrigger(id, predicate, command, serverCode string) {
	f.t.Helper()
	var src struct{ EventSource string }
	must(f.t, json.Unmarshal([]byte(predicate), &src))
	tr := store.Trigger{ID: id, AppID: "app1", ThingID: "th.1", EventSource: src.EventSource, Predicate: json.RawMessage(predicate),
		CreatedAt: f.clock.Now(), ModifiedAt: f.clock.Now()}
	if command != "" {
		tr.Command = json.RawMessage(command)
	}
	if serverCode != "" {
		tr.ServerCode = json.RawMessage(serverCode)
	}
	must(f.t, f.st.CreateTrigger(f.t.Context(), tr, 0))
}

// state writes a v1 state of th.1 and tells the engine.
func (f *fixture) state(body string) {
	f.t.Helper()
	ctx := f.t.Context()
	must(f.t, f.st.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Aliases: map[string]json.RawMessage{"": json.RawMessage(body)}, At: f.clock.Now()}))
	f.e.StateChanged(ctx, "app1", "th.1")
}

// commands returns how many commands the thing has.
func (f *fixture) commands(thingID string) int {
	f.t.Helper()
	cmds, _, err := f.st.Commands(f.t.Context(), thingID, "", 0)
	must(f.t, err)
	return len(cmds)
}

const cmdTemplate = `{"issuer":"user:u.1","actions":[{"AC":[{"turnPower":false}]}]}`

func TestStatesModes(t *testing.T) {
	// power: false, true, true, false, true
	seq := []string{`{"power":false}`, `{"power":true}`, `{"power":true}`, `{"power":false}`, `{"power":true}`}
	tests := []struct {
		when string
		want []int // commands after each state
	}{
		{WhenFalseToTrue, []int{0, 1, 1, 1, 2}},
		{WhenChanged, []int{0, 1, 1, 2, 3}},
		{WhenSatisfied, []int{0, 1, 2, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			f := newFixture(t, "")
			f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"`+tt.when+`"}`, cmdTemplate, "")
			for i, s := range seq {
				f.state(s)
				if got := f.commands("th.1"); got != tt.want[i] {
					t.Fatalf("after state %d %s: %d commands, want %d", i, s, got, tt.want[i])
				}
			}
			cmds, _, err := f.st.Commands(t.Context(), "th.1", "", 1)
			must(t, err)
			if c := cmds[0]; c.State != store.CommandSending || c.Issuer != "user:u.1" || string(c.Actions) != `[{"AC":[{"turnPower":false}]}]` {
				t.Fatalf("command %+v", c)
			}
			if len(f.pusher.calls) != tt.want[len(tt.want)-1] || f.pusher.calls[0] != "app1/th.1" {
				t.Fatalf("pushes %v", f.pusher.calls)
			}
		})
	}
}

// TestPendingBound: a trigger firing for a thing that already has
// MaxPendingCommands waiting stores no command, as REST would refuse one;
// once the thing takes its commands, the trigger sends again.
func TestPendingBound(t *testing.T) {
	f := newFixture(t, "")
	f.maxPending = 2
	f.open("")
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"`+WhenSatisfied+`"}`, cmdTemplate, "")
	for range 3 {
		f.state(`{"power":true}`)
	}
	if got := f.commands("th.1"); got != 2 {
		t.Fatalf("%d commands after 3 firings with a bound of 2, want 2", got)
	}
	pending, err := f.st.PendingCommands(t.Context(), "th.1", "", 0)
	must(t, err)
	_, err = f.st.MarkDelivered(t.Context(), "th.1", pending[0].ID, f.clock.Now())
	must(t, err)
	f.state(`{"power":true}`)
	if got := f.commands("th.1"); got != 3 {
		t.Fatalf("%d commands after one was delivered and the trigger fired again, want 3", got)
	}
}

func TestStatesTargetAndDisabled(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"range","field":"temp","lowerLimit":30},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`,
		`{"target":"thing:th.2","actions":[{"fan":{"on":true}}],"schema":"S","schemaVersion":2}`, "")
	f.state(`{"temp":31}`)
	if f.commands("th.1") != 0 || f.commands("th.2") != 1 {
		t.Fatalf("commands: th.1 %d, th.2 %d; want 0, 1", f.commands("th.1"), f.commands("th.2"))
	}
	tr, err := f.st.Trigger(t.Context(), "th.1", "t1")
	must(t, err)
	tr.Disabled = true
	must(t, f.st.UpdateTrigger(t.Context(), tr))
	f.state(`{"temp":20}`)
	f.state(`{"temp":35}`)
	if f.commands("th.2") != 1 {
		t.Fatal("a disabled trigger fired")
	}
}

func TestTransitionSurvivesRestart(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`, cmdTemplate, "")
	f.state(`{"power":true}`)
	f.open("") // restart
	f.state(`{"power":true}`)
	if got := f.commands("th.1"); got != 1 {
		t.Fatalf("after restart: %d commands, want 1 (still true, no new transition)", got)
	}
	f.state(`{"power":false}`)
	f.state(`{"power":true}`)
	if got := f.commands("th.1"); got != 2 {
		t.Fatalf("%d commands, want 2", got)
	}
}

func TestConcurrentStateChangesFireOnce(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`, cmdTemplate, "")
	must(t, f.st.WriteStates(t.Context(), store.StateWrite{ThingID: "th.1", Aliases: map[string]json.RawMessage{"": json.RawMessage(`{"power":true}`)}, At: t0}))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { f.e.StateChanged(context.Background(), "app1", "th.1") })
	}
	wg.Wait()
	if got := f.commands("th.1"); got != 1 {
		t.Fatalf("%d commands, want 1", got)
	}
}

type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []WebhookRequest
	status int
}

func newHook(t *testing.T, status int) *hook {
	h := &hook{status: status}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req WebhookRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &req) != nil {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		h.mu.Lock()
		h.bodies = append(h.bodies, req)
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(h.status)
		io.WriteString(w, `{"ok": true}`)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestWebhook(t *testing.T) {
	ok := newHook(t, http.StatusOK)
	f := newFixture(t, ok.srv.URL)
	if !f.e.ServerCodeEnabled() {
		t.Fatal("ServerCodeEnabled false with a webhook")
	}
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_CHANGED"}`, "",
		`{"endpoint":"notify","parameters":{"room":"kitchen"}}`)
	f.state(`{"power":true}`)
	f.e.Wait()
	if len(ok.bodies) != 1 {
		t.Fatalf("webhook calls %d, want 1", len(ok.bodies))
	}
	got := ok.bodies[0]
	if got.AppID != "app1" || got.ThingID != "th.1" || got.TriggerID != "t1" || got.Endpoint != "notify" ||
		string(got.Parameters) != `{"room":"kitchen"}` || got.FiredAt != t0.UnixMilli() {
		t.Fatalf("webhook body %+v", got)
	}
	res, _, err := f.st.TriggerResults(t.Context(), "th.1", "t1", "", 0)
	must(t, err)
	if len(res) != 1 || !res[0].Succeeded || string(res[0].ReturnedValue) != `{"ok":true}` || res[0].Endpoint != "notify" {
		t.Fatalf("results %+v", res)
	}

	// A failing webhook and no webhook at all are recorded as failures.
	bad := newHook(t, http.StatusInternalServerError)
	f.open(bad.srv.URL)
	f.state(`{"power":false}`)
	f.open("")
	f.state(`{"power":true}`)
	f.e.Wait()
	res, _, err = f.st.TriggerResults(t.Context(), "th.1", "t1", "", 0)
	must(t, err)
	if len(res) != 3 || res[0].Succeeded || res[0].Error != "no webhook is configured" || res[1].Succeeded || res[1].Error != "webhook answered 500 Internal Server Error" {
		t.Fatalf("results %+v", res)
	}
	if f.commands("th.1") != 0 {
		t.Fatal("a server-code trigger sent a command")
	}
}

func TestScheduleTick(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("every15", `{"eventSource":"SCHEDULE","schedule":"*/15 * * * *"}`, cmdTemplate, "")
	once := t0.Add(20 * time.Minute).UnixMilli()
	f.addTrigger("once", `{"eventSource":"SCHEDULE_ONCE","scheduleAt":`+itoa(once)+`}`,
		`{"target":"thing:th.2","actions":[{"AC":[{"on":true}]}]}`, "")
	ctx := t.Context()

	next, err := f.e.Tick(ctx, t0) // 03:04:05
	must(t, err)
	if want := time.Date(2026, 1, 2, 3, 15, 0, 0, time.UTC); !next.Equal(want) {
		t.Fatalf("next=%v, want %v", next, want)
	}
	if f.commands("th.1") != 0 {
		t.Fatal("fired early")
	}
	// 03:15: the schedule fires once.
	next, err = f.e.Tick(ctx, next)
	must(t, err)
	if f.commands("th.1") != 1 {
		t.Fatalf("after 03:15: %d commands, want 1", f.commands("th.1"))
	}
	if want := t0.Add(20 * time.Minute); !next.Equal(want.Truncate(time.Millisecond)) {
		t.Fatalf("next=%v, want the SCHEDULE_ONCE time %v", next, want)
	}
	// Ticking again at the same instant fires nothing.
	_, err = f.e.Tick(ctx, time.Date(2026, 1, 2, 3, 15, 0, 0, time.UTC))
	must(t, err)
	if f.commands("th.1") != 1 {
		t.Fatal("fired twice for one due time")
	}
	// Restart, then a tick an hour late: the schedule fires once for all the
	// missed times, SCHEDULE_ONCE fires (late) and is disabled.
	f.open("")
	_, err = f.e.Tick(ctx, time.Date(2026, 1, 2, 4, 20, 0, 0, time.UTC))
	must(t, err)
	if f.commands("th.1") != 2 || f.commands("th.2") != 1 {
		t.Fatalf("after the late tick: th.1 %d, th.2 %d commands; want 2, 1", f.commands("th.1"), f.commands("th.2"))
	}
	tr, err := f.st.Trigger(ctx, "th.1", "once")
	must(t, err)
	if !tr.Disabled || tr.Run.FiredAt.IsZero() {
		t.Fatalf("SCHEDULE_ONCE after firing: %+v", tr)
	}
	_, err = f.e.Tick(ctx, time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	must(t, err)
	if f.commands("th.2") != 1 {
		t.Fatal("SCHEDULE_ONCE fired twice")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestRunWithInjectedClock(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("hourly", `{"eventSource":"SCHEDULE","schedule":"0 * * * *"}`, cmdTemplate, "")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.e.Run(ctx) }()

	<-f.clock.waiting // the scheduler waits, until 04:00
	if f.commands("th.1") != 0 {
		t.Fatal("fired before its time")
	}
	f.clock.Set(time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC))
	<-f.clock.waiting // it fired and waits again
	if got := f.commands("th.1"); got != 1 {
		t.Fatalf("%d commands at 04:00, want 1", got)
	}
	// A new trigger wakes the scheduler at once.
	f.addTrigger("once", `{"eventSource":"SCHEDULE_ONCE","scheduleAt":`+itoa(t0.UnixMilli())+`}`, `{"target":"thing:th.2","actions":[{"a":{}}]}`, "")
	f.e.Changed()
	<-f.clock.waiting
	if got := f.commands("th.2"); got != 1 {
		t.Fatalf("%d commands for th.2 after Changed, want 1", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// staleTriggers serves the enabled triggers of a moment ago, as a cache in
// front of a store that another process writes.
type staleTriggers struct {
	store.Store
	trs []store.Trigger
}

func (s staleTriggers) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	return s.trs, nil
}

// fakeLocker runs the evaluation on st, failing with err after it.
type fakeLocker struct {
	st    RunStore
	calls int
	err   error
}

func (l *fakeLocker) LockThing(ctx context.Context, thingID string, fn func(st RunStore) error) error {
	l.calls++
	if err := fn(l.st); err != nil {
		return err
	}
	return l.err
}

// TestLockerReadsPastCache: with a Locker, the runs are read again under
// its lock, through the store it gives, so that a transition another node
// already stored (behind this node's cache) does not fire again; and no
// action runs when the locked evaluation fails to commit.
func TestLockerReadsPastCache(t *testing.T) {
	f := newFixture(t, "")
	f.addTrigger("t1", `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`, cmdTemplate, "")
	f.state(`{"power":false}`)
	stale, err := f.st.EnabledTriggers(t.Context(), "th.1", store.EventStates)
	must(t, err)
	f.state(`{"power":true}`) // fires, and stores Satisfied
	if got := f.commands("th.1"); got != 1 {
		t.Fatalf("%d commands, want 1", got)
	}
	lk := &fakeLocker{st: f.st}
	newEngine := func(locker Locker) *Engine {
		e, err := New(Config{Store: staleTriggers{f.st, stale}, Pusher: f.pusher, Now: f.clock.Now, After: f.clock.After, Locker: locker})
		must(t, err)
		return e
	}
	newEngine(lk).StateChanged(t.Context(), "app1", "th.1")
	if got := f.commands("th.1"); got != 1 || lk.calls != 1 {
		t.Fatalf("with a Locker: %d commands (want 1), %d locks (want 1)", got, lk.calls)
	}
	// Without one, the stale run fires again: what a Locker is for.
	newEngine(nil).StateChanged(t.Context(), "app1", "th.1")
	if got := f.commands("th.1"); got != 2 {
		t.Fatalf("without a Locker: %d commands, want 2", got)
	}

	f.state(`{"power":false}`)
	failing := &fakeLocker{st: f.st, err: errors.New("commit failed")}
	must(t, f.st.WriteStates(t.Context(), store.StateWrite{ThingID: "th.1", Aliases: map[string]json.RawMessage{"": json.RawMessage(`{"power":true}`)}, At: t0}))
	newEngine(failing).StateChanged(t.Context(), "app1", "th.1")
	if got := f.commands("th.1"); got != 2 {
		t.Fatalf("after a failed commit: %d commands, want 2", got)
	}
}
