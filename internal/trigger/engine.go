package trigger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

// Defaults filled in by New for zero Config fields.
const (
	// DefaultWebhookTimeout bounds one webhook call.
	DefaultWebhookTimeout = 10 * time.Second
	// DefaultRescan is the longest the scheduler sleeps without looking at
	// the store again; Engine.Changed wakes it sooner.
	DefaultRescan = time.Minute
	// maxWebhookAnswer bounds the webhook answer kept as a result.
	maxWebhookAnswer = 64 << 10
)

// Pusher pushes a newly stored command to its thing; broker.API is one.
type Pusher interface {
	Push(ctx context.Context, c store.Command)
}

// Config configures an Engine.
type Config struct {
	// Store keeps the triggers, their runs and results. Required.
	Store store.Store
	// Pusher is told after a trigger stored a command. May be nil.
	Pusher Pusher
	// WebhookURL receives an HTTP POST each time a trigger with a server-code
	// action fires. If empty, such triggers are refused at creation (see
	// ServerCode) and a firing one records a failed result.
	WebhookURL string
	// WebhookTimeout bounds one webhook call. If zero,
	// DefaultWebhookTimeout.
	WebhookTimeout time.Duration
	// HTTPClient makes the webhook calls. If nil, a client with
	// WebhookTimeout.
	HTTPClient *http.Client
	// Logger receives the engine's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
	// After waits in the scheduler. If nil, time.After. Tests inject a fake
	// clock here together with Now.
	After func(time.Duration) <-chan time.Time
	// Rescan is the longest the scheduler waits without reading the store.
	// If zero, DefaultRescan.
	Rescan time.Duration
	// MaxPendingCommands bounds the commands a thing may have waiting
	// (SENDING), as for commands sent over REST: a trigger that fires while
	// its target has that many stores no command (0: no bound).
	MaxPendingCommands int
	// Locker serialises the evaluations of a thing's state triggers among
	// the processes that share Store (several nodes on one PostgreSQL
	// database). If nil, the engine's own per-thing lock is the only one,
	// which is enough when this process is the store's only user (SQLite).
	Locker Locker
}

// RunStore is what an evaluation of a thing's state triggers reads (its
// enabled triggers with their runs, its states) and writes (the runs).
type RunStore interface {
	EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error)
	States(ctx context.Context, thingID string) ([]store.State, error)
	SetTriggerRun(ctx context.Context, thingID, id string, run store.TriggerRun) error
}

// Locker serialises the evaluations of one thing's state triggers across
// processes, so that two state uploads taken by two nodes at once cannot
// both see the same false→true transition.
type Locker interface {
	// LockThing calls fn while holding the evaluation lock of thingID in
	// every process that shares the store, with st reading and writing
	// that store directly: it sees the runs the previous holder wrote,
	// whatever a cache of this process holds. The runs fn writes are
	// committed if LockThing returns nil, and none of them otherwise.
	LockThing(ctx context.Context, thingID string, fn func(st RunStore) error) error
}

// Validate reports the first field of c that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	case c.WebhookTimeout < 0:
		return fmt.Errorf("%w: WebhookTimeout is negative", ErrInvalidConfig)
	case c.Rescan < 0:
		return fmt.Errorf("%w: Rescan is negative", ErrInvalidConfig)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = DefaultWebhookTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.WebhookTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Rescan == 0 {
		c.Rescan = DefaultRescan
	}
}

// Log attribute keys.
const (
	keyTrigger = "trigger"
	keyThing   = "thing"
	keyErr     = "error"
)

// Engine evaluates triggers and performs their actions. It is safe for
// concurrent use.
type Engine struct {
	cfg   Config
	store store.Store
	log   *slog.Logger

	// locks serialise the evaluation of one thing's triggers, so that two
	// state writes at once cannot both see a false→true transition.
	locks [64]sync.Mutex
	seed  maphash.Seed
	// wake tells the scheduler that triggers changed.
	wake chan struct{}
	// actions tracks running webhook calls.
	actions sync.WaitGroup
}

// New returns an Engine for cfg.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Engine{cfg: cfg, store: cfg.Store, log: cfg.Logger, seed: maphash.MakeSeed(), wake: make(chan struct{}, 1)}, nil
}

// ServerCodeEnabled reports whether a webhook is configured for server-code
// actions.
func (e *Engine) ServerCodeEnabled() bool { return e.cfg.WebhookURL != "" }

// Changed tells the scheduler that triggers were created, changed or
// deleted, so that it reads them again now.
func (e *Engine) Changed() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) lock(thingID string) *sync.Mutex {
	return &e.locks[maphash.String(e.seed, thingID)%uint64(len(e.locks))]
}

// StateChanged evaluates the enabled STATES triggers of a thing against its
// stored state and fires those whose triggersWhen mode says so. Call it
// after the state is stored. Errors are logged: a state upload never fails
// because of a trigger.
//
// The evaluation reads the runs, compares and writes them holding the
// thing's lock: the engine's, and Config.Locker's across processes, under
// which the runs are read again past any cache, in one transaction with
// their writes. The actions run after the runs are stored.
func (e *Engine) StateChanged(ctx context.Context, appID, thingID string) {
	mu := e.lock(thingID)
	mu.Lock()
	defer mu.Unlock()
	// Most things have no state trigger: the store (its cache) says so
	// without a lock across processes.
	trs, err := e.store.EnabledTriggers(ctx, thingID, store.EventStates)
	if err != nil {
		e.log.Error("load triggers", keyThing, thingID, keyErr, err)
		return
	}
	if len(trs) == 0 {
		return
	}
	var fired []store.Trigger
	if e.cfg.Locker == nil {
		// Each run written is committed, and its trigger fires, even if a
		// later one fails.
		fired, err = e.evaluate(ctx, e.store, thingID, trs)
	} else {
		err = e.cfg.Locker.LockThing(ctx, thingID, func(st RunStore) error {
			trs, err := st.EnabledTriggers(ctx, thingID, store.EventStates)
			if err != nil {
				return fmt.Errorf("load triggers: %w", err)
			}
			fired, err = e.evaluate(ctx, st, thingID, trs)
			return err
		})
		if err != nil {
			fired = nil // no run was stored
		}
	}
	if err != nil {
		e.log.Error("evaluate triggers", keyThing, thingID, keyErr, err)
	}
	// The firings are stored: their actions run even if the upload's
	// client is gone by now.
	for _, tr := range fired {
		e.fire(context.WithoutCancel(ctx), tr, tr.Run.FiredAt)
	}
}

// evaluate evaluates trs, state triggers of a thing, against its states in
// st, stores the runs that changed and returns the triggers that fire, with
// their new runs. A trigger deleted meanwhile is skipped; on another error
// it returns the triggers whose runs are stored so far.
func (e *Engine) evaluate(ctx context.Context, st RunStore, thingID string, trs []store.Trigger) ([]store.Trigger, error) {
	if len(trs) == 0 {
		return nil, nil
	}
	stored, err := st.States(ctx, thingID)
	if err != nil {
		return nil, fmt.Errorf("load states: %w", err)
	}
	states := StatesOf(stored)
	var fired []store.Trigger
	for _, tr := range trs {
		p, err := ParsePredicate(tr.Predicate)
		if err != nil || p.Condition == nil {
			e.log.Error("stored trigger predicate", keyTrigger, tr.ID, keyErr, err)
			continue
		}
		now := p.Condition.Eval(states)
		fire := Fires(p.TriggersWhen, tr.Run, now)
		run := store.TriggerRun{Evaluated: true, Satisfied: now, FiredAt: tr.Run.FiredAt}
		if fire {
			run.FiredAt = e.cfg.Now()
		}
		if run != tr.Run {
			switch err := st.SetTriggerRun(ctx, thingID, tr.ID, run); {
			case errors.Is(err, store.ErrNotFound):
				continue // deleted since it was read
			case err != nil:
				return fired, fmt.Errorf("store run of trigger %q: %w", tr.ID, err)
			}
		}
		if fire {
			tr.Run = run
			fired = append(fired, tr)
		}
	}
	return fired, nil
}

// Tick fires every enabled schedule trigger that is due at now and returns
// when the next one is due (zero if none is). A SCHEDULE trigger fires once
// for its latest due time, however many were missed; a SCHEDULE_ONCE
// trigger fires once, even late, and is then disabled.
func (e *Engine) Tick(ctx context.Context, now time.Time) (time.Time, error) {
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, src := range []string{store.EventSchedule, store.EventScheduleOnce} {
		trs, err := e.store.EnabledTriggers(ctx, "", src)
		if err != nil {
			return time.Time{}, fmt.Errorf("load %s triggers: %w", src, err)
		}
		for _, tr := range trs {
			p, err := ParsePredicate(tr.Predicate)
			if err != nil {
				e.log.Error("stored trigger predicate", keyTrigger, tr.ID, keyErr, err)
				continue
			}
			due, ok := dueAt(p, tr)
			if !ok {
				continue
			}
			if due.After(now) {
				soonest(due)
				continue
			}
			mu := e.lock(tr.ThingID)
			mu.Lock()
			err = e.markFired(ctx, p, &tr, now)
			mu.Unlock()
			if err != nil {
				e.log.Error("store trigger run", keyTrigger, tr.ID, keyErr, err)
				continue
			}
			// The firing is stored: its action runs even if ctx ends now
			// (a shutdown, a lease lost), or it would be lost.
			e.fire(context.WithoutCancel(ctx), tr, now)
			if p.Schedule != nil {
				soonest(p.Schedule.Next(now))
			}
		}
	}
	return next, nil
}

// dueAt returns when a schedule trigger is next due, counting from its last
// firing (or its last change, for one that never fired).
func dueAt(p Predicate, tr store.Trigger) (time.Time, bool) {
	switch {
	case p.Schedule != nil:
		from := tr.ModifiedAt
		if tr.Run.FiredAt.After(from) {
			from = tr.Run.FiredAt
		}
		t := p.Schedule.Next(from)
		return t, !t.IsZero()
	case !p.ScheduleAt.IsZero():
		return p.ScheduleAt, tr.Run.FiredAt.IsZero()
	}
	return time.Time{}, false
}

// markFired records a schedule firing before the action runs, so that a
// crash cannot make it fire twice.
func (e *Engine) markFired(ctx context.Context, p Predicate, tr *store.Trigger, now time.Time) error {
	tr.Run.FiredAt = now
	if p.Schedule != nil {
		return e.store.SetTriggerRun(ctx, tr.ThingID, tr.ID, tr.Run)
	}
	tr.Disabled, tr.DisabledReason = true, "SCHEDULE_ONCE_FIRED"
	return e.store.UpdateTrigger(ctx, *tr)
}

// Run runs the scheduler until ctx ends, then waits for running webhook
// calls. It returns nil when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	defer e.actions.Wait()
	for {
		next, err := e.Tick(ctx, e.cfg.Now())
		if err != nil && ctx.Err() == nil {
			e.log.Error("trigger schedule", keyErr, err)
		}
		wait := e.cfg.Rescan
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(e.cfg.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-e.cfg.After(wait):
		}
	}
}

// Wait waits for the webhook calls that are running.
func (e *Engine) Wait() { e.actions.Wait() }

// fire performs the action of a trigger that fired at.
func (e *Engine) fire(ctx context.Context, tr store.Trigger, at time.Time) {
	switch {
	case tr.Command != nil:
		switch err := e.sendCommand(ctx, tr, at); {
		case errors.Is(err, store.ErrTooManyPending):
			e.log.Warn("trigger command not stored: its thing has too many commands waiting", keyTrigger, tr.ID, keyThing, tr.ThingID, keyErr, err)
		case err != nil:
			e.log.Error("trigger command", keyTrigger, tr.ID, keyThing, tr.ThingID, keyErr, err)
		}
	case tr.ServerCode != nil:
		e.actions.Add(1)
		go func() {
			defer e.actions.Done()
			// The call outlives the request that made the state change.
			ctx := context.WithoutCancel(ctx)
			res := e.callWebhook(ctx, tr, at)
			if err := e.store.AddTriggerResult(ctx, res); err != nil && !errors.Is(err, store.ErrNotFound) {
				e.log.Error("store trigger result", keyTrigger, tr.ID, keyErr, err)
			}
		}()
	}
}

// CommandTemplate is the command of a trigger action: a command as POST
// …/commands takes it, plus an optional target "thing:{ID}" (default: the
// trigger's thing).
type CommandTemplate struct {
	Target        string          `json:"target,omitempty"`
	Schema        string          `json:"schema,omitempty"`
	SchemaVersion int             `json:"schemaVersion,omitempty"`
	Actions       json.RawMessage `json:"actions"`
	Issuer        string          `json:"issuer,omitempty"`
	Title         string          `json:"title,omitempty"`
	Description   string          `json:"description,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

// TargetThing returns the thing ID a command template targets, or
// defaultThing when it names none.
func (c CommandTemplate) TargetThing(defaultThing string) string {
	if len(c.Target) > 6 && (c.Target[:6] == "thing:" || c.Target[:6] == "THING:") {
		return c.Target[6:]
	}
	return defaultThing
}

func (e *Engine) sendCommand(ctx context.Context, tr store.Trigger, at time.Time) error {
	var tmpl CommandTemplate
	if err := json.Unmarshal(tr.Command, &tmpl); err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	target := tmpl.TargetThing(tr.ThingID)
	c := store.Command{
		ID: secret.NewID(16), AppID: tr.AppID, ThingID: target, State: store.CommandSending,
		Issuer: tmpl.Issuer, Schema: tmpl.Schema, SchemaVersion: tmpl.SchemaVersion, Actions: tmpl.Actions,
		Title: tmpl.Title, Description: tmpl.Description, Metadata: tmpl.Metadata,
		CreatedAt: at, ModifiedAt: at,
	}
	if len(c.Metadata) == 0 {
		c.Metadata = nil
	}
	if err := e.store.CreateCommand(ctx, c, e.cfg.MaxPendingCommands); err != nil {
		return fmt.Errorf("store command: %w", err)
	}
	if e.cfg.Pusher != nil {
		e.cfg.Pusher.Push(ctx, c)
	}
	return nil
}

// ServerCode is the server-code action of a trigger.
type ServerCode struct {
	Endpoint   string          `json:"endpoint"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	// ExecutorAccessToken and TargetAppID are accepted for compatibility
	// with Kii's clients and ignored.
	ExecutorAccessToken string `json:"executorAccessToken,omitempty"`
	TargetAppID         string `json:"targetAppID,omitempty"`
}

// WebhookRequest is the body POSTed to the webhook when a trigger with a
// server-code action fires.
type WebhookRequest struct {
	AppID      string          `json:"appID"`
	ThingID    string          `json:"thingID"`
	TriggerID  string          `json:"triggerID"`
	Endpoint   string          `json:"endpoint"`
	Parameters json.RawMessage `json:"parameters,omitempty"`
	FiredAt    int64           `json:"firedAt"`
}

func (e *Engine) callWebhook(ctx context.Context, tr store.Trigger, at time.Time) store.TriggerResult {
	var sc ServerCode
	_ = json.Unmarshal(tr.ServerCode, &sc)
	res := store.TriggerResult{TriggerID: tr.ID, ThingID: tr.ThingID, Endpoint: sc.Endpoint, ExecutedAt: at}
	if e.cfg.WebhookURL == "" {
		res.Error = "no webhook is configured"
		return res
	}
	body, _ := json.Marshal(WebhookRequest{AppID: tr.AppID, ThingID: tr.ThingID, TriggerID: tr.ID,
		Endpoint: sc.Endpoint, Parameters: sc.Parameters, FiredAt: at.UnixMilli()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Error = fmt.Sprintf("webhook answered %s", resp.Status)
		return res
	}
	res.Succeeded = true
	if json.Valid(answer) {
		var buf bytes.Buffer
		_ = json.Compact(&buf, answer)
		res.ReturnedValue = buf.Bytes()
	}
	return res
}
