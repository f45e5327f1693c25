package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/postgres/pgtest"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/store/storetest"
)

func open(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.DSN(t)) })
}

func TestDurable(t *testing.T) {
	dsns := map[string]string{}
	storetest.RunDurable(t, func(t *testing.T, dir string) store.Store {
		if dsns[dir] == "" {
			dsns[dir] = pgtest.DSN(t)
		}
		return open(t, dsns[dir])
	})
}

// seed stores an app and a thing.
func seed(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.PutApp(ctx, store.App{ID: "app1", KeyHash: "k", CreatedAt: time.UnixMilli(1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveOnboarding(ctx, store.Onboarding{
		Thing: store.Thing{ID: "th.1", AppID: "app1", VendorThingID: "v", PasswordHash: "p"}, NewThing: true,
		Installation: store.Installation{ID: "in1", AppID: "app1", ThingID: "th.1", MQTTTopic: "t", Username: "u"},
		Token:        store.Token{Hash: "tok", AppID: "app1", Kind: store.TokenThing},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPendingBoundTwoNodes creates commands for one thing from two pools,
// as two nodes would, far more at once than the bound allows: exactly the
// bound is stored.
func TestPendingBoundTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	seed(t, a)
	const bound, tries = 10, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	var stored, refused int
	for i := range tries {
		s := store.Store(a)
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			c := store.Command{ID: "c" + string(rune('A'+i/26)) + string(rune('a'+i%26)), AppID: "app1", ThingID: "th.1",
				State: store.CommandSending, Actions: []byte(`[]`), CreatedAt: time.UnixMilli(int64(i + 1)), ModifiedAt: time.UnixMilli(int64(i + 1))}
			err := s.CreateCommand(context.Background(), c, bound)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.Is(err, store.ErrTooManyPending):
				refused++
			default:
				t.Errorf("CreateCommand: %v", err)
			}
		})
	}
	wg.Wait()
	if stored != bound || refused != tries-bound {
		t.Fatalf("stored %d, refused %d; want %d and %d", stored, refused, bound, tries-bound)
	}
	pending, err := b.PendingCommands(t.Context(), "th.1", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != bound {
		t.Fatalf("%d pending, want %d", len(pending), bound)
	}
}

// TestTriggerBoundTwoNodes is TestPendingBoundTwoNodes for triggers.
func TestTriggerBoundTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	seed(t, a)
	const bound, tries = 5, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	var stored int
	for i := range tries {
		s := store.Store(a)
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			tr := store.Trigger{ID: "tr" + string(rune('A'+i)), AppID: "app1", ThingID: "th.1", EventSource: store.EventStates,
				Predicate: []byte(`{}`), Command: []byte(`{}`)}
			err := s.CreateTrigger(context.Background(), tr, bound)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				stored++
			} else if !errors.Is(err, store.ErrTooManyTriggers) {
				t.Errorf("CreateTrigger: %v", err)
			}
		})
	}
	wg.Wait()
	if stored != bound {
		t.Fatalf("stored %d triggers, want %d", stored, bound)
	}
}

// TestLockTriggerRunsTwoNodes makes each of many evaluations from two
// pools read a run and write it back changed (here: FiredAt one
// millisecond later): under LockTriggerRuns none is lost.
func TestLockTriggerRunsTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	seed(t, a)
	if err := a.CreateTrigger(t.Context(), store.Trigger{ID: "tr", AppID: "app1", ThingID: "th.1", EventSource: store.EventStates,
		Predicate: []byte(`{}`), Command: []byte(`{}`), Run: store.TriggerRun{FiredAt: time.UnixMilli(1)}}, 0); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Go(func() {
			err := db.LockTriggerRuns(context.Background(), "th.1", func(runs postgres.TriggerRuns) error {
				trs, err := runs.EnabledTriggers(context.Background(), "th.1", store.EventStates)
				if err != nil || len(trs) != 1 {
					return fmt.Errorf("EnabledTriggers: %v, %v", trs, err)
				}
				run := trs[0].Run
				run.FiredAt = run.FiredAt.Add(time.Millisecond)
				return runs.SetTriggerRun(context.Background(), "th.1", "tr", run)
			})
			if err != nil {
				t.Errorf("LockTriggerRuns: %v", err)
			}
		})
	}
	wg.Wait()
	tr, err := a.Trigger(t.Context(), "th.1", "tr")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tr.Run.FiredAt.UnixMilli(), int64(1+n); got != want {
		t.Fatalf("FiredAt %d ms after %d evaluations, want %d: some were lost", got, n, want)
	}
	// A failing evaluation writes nothing.
	if err := a.LockTriggerRuns(t.Context(), "th.1", func(runs postgres.TriggerRuns) error {
		if err := runs.SetTriggerRun(t.Context(), "th.1", "tr", store.TriggerRun{}); err != nil {
			return err
		}
		return errors.New("evaluation failed")
	}); err == nil {
		t.Fatal("LockTriggerRuns returned nil")
	}
	if tr, err := a.Trigger(t.Context(), "th.1", "tr"); err != nil || tr.Run.FiredAt.UnixMilli() != 1+n {
		t.Fatalf("after a failed evaluation: %v, %v", tr.Run, err)
	}
}

// TestMergeTwoNodes merges a different field of one alias from two pools
// at once: every field is there in the end.
func TestMergeTwoNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	defer a.Close()
	defer b.Close()
	seed(t, a)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		s := store.Store(a)
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			body := fmt.Sprintf(`{"f%d":1}`, i)
			if err := s.WriteStates(context.Background(), store.StateWrite{ThingID: "th.1",
				Aliases: map[string]json.RawMessage{"a": json.RawMessage(body)}, Mode: store.StateMerge, At: time.UnixMilli(int64(i + 1))}); err != nil {
				t.Errorf("WriteStates: %v", err)
			}
		})
	}
	wg.Wait()
	states, err := a.States(t.Context(), "th.1")
	if err != nil || len(states) != 1 {
		t.Fatalf("States: %v, %v", states, err)
	}
	for i := range n {
		if f := fmt.Sprintf(`"f%d":1`, i); !strings.Contains(string(states[0].Body), f) {
			t.Fatalf("merged state %s lacks %s", states[0].Body, f)
		}
	}
}

// TestMigrateConcurrently opens one new database from several nodes at
// once: each migration is applied once and every node opens.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			db, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			db.Close()
		})
	}
	wg.Wait()
}

func TestOpenErrors(t *testing.T) {
	dsn := pgtest.DSN(t)
	open(t, dsn).Close()
	newer := pgtest.DSN(t)
	open(t, newer).Close()
	pgtest.Exec(t, newer, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`)
	tests := []struct {
		name, dsn, want string
	}{
		{"bad DSN", "postgres://u:s3cretpw@[::1/x", "postgres: "},
		{"unreachable", "postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2", "127.0.0.1"},
		{"wrong password", strings.Replace(dsn, "thingif:thingif@", "thingif:s3cretpw@", 1), "password authentication failed"},
		{"newer schema", newer, "database schema version 9999 is newer than this program's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := postgres.Open(t.Context(), postgres.Config{DSN: tt.dsn})
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "s3cretpw") {
				t.Fatalf("error %q: want one line with %q and no password", msg, tt.want)
			}
		})
	}
}
