package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/limit/limittest"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/postgres/pgtest"
)

func TestGuardConformance(t *testing.T) {
	limittest.Run(t, func(t *testing.T, cfg limit.Config) limit.Guard {
		return postgres.NewGuard(openGuardDB(t, pgtest.DSN(t)), cfg)
	})
}

// openGuardDB opens dsn, closed when t ends.
func openGuardDB(t *testing.T, dsn string) *postgres.DB {
	db := open(t, dsn)
	t.Cleanup(func() { db.Close() })
	return db
}

// warm opens all of db's connections, as a node that has served for a
// while has them: the tests count failures, they do not time 32 connection
// set-ups on a small CI machine.
func warm(t *testing.T, db *postgres.DB) *postgres.DB {
	var conns []*pgxpool.Conn
	for range db.Pool().Config().MaxConns {
		c, err := db.Pool().Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return db
}

// twoNodes returns two Guards for cfg on two warm pools of one schema, as
// two nodes would have, remembering no key clear.
func twoNodes(t *testing.T, cfg limit.Config) (a, b *postgres.Guard, dsn string) {
	dsn = pgtest.DSN(t)
	a, b = postgres.NewGuard(warm(t, openGuardDB(t, dsn)), cfg), postgres.NewGuard(warm(t, openGuardDB(t, dsn)), cfg)
	postgres.SetGuardTimings(a, 0, 0)
	postgres.SetGuardTimings(b, 0, 0)
	return a, b, dsn
}

// TestGuardConcurrentFailures: 20 failures of one key at once on each of two
// nodes are all counted: each Fail sees the count it made (38 free, then a
// block of 1 min and one of 2 min), and both nodes then refuse the key for
// the 2 min that 40 failures earn.
func TestGuardConcurrentFailures(t *testing.T) {
	clock := limittest.NewClock()
	a, b, _ := twoNodes(t, limit.Config{Free: 38, Base: time.Minute, Max: time.Hour, Now: clock.Now})
	var (
		mu     sync.Mutex
		blocks []time.Duration
		wg     sync.WaitGroup
	)
	for _, g := range []*postgres.Guard{a, b} {
		for range 20 {
			wg.Go(func() {
				d := g.Fail("k")
				mu.Lock()
				blocks = append(blocks, d)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.Sort(blocks)
	want := append(make([]time.Duration, 38), time.Minute, 2*time.Minute)
	if !slices.Equal(blocks, want) {
		t.Fatalf("blocks = %v, want 38 × 0s, 1m0s, 2m0s", blocks)
	}
	for name, g := range map[string]*postgres.Guard{"a": a, "b": b} {
		if ra, ok := g.Allow("k"); ok || ra != 2*time.Minute {
			t.Fatalf("node %s: Allow = %v, %v; want 2m0s, false", name, ra, ok)
		}
	}
}

// TestGuardAcrossNodes: failures alternated between two nodes add up, a
// success on one clears the key on the other, and an address trusted on
// one passes the block on the other.
func TestGuardAcrossNodes(t *testing.T) {
	clock := limittest.NewClock()
	a, b, _ := twoNodes(t, limit.Config{Free: 3, Base: time.Minute, Max: time.Hour, Now: clock.Now})
	nodes := []*postgres.Guard{a, b}
	a.SucceedFrom("thing", "10.0.0.1")
	for i, want := range []time.Duration{0, 0, 0, time.Minute} {
		if got := nodes[i%2].Fail("thing"); got != want {
			t.Fatalf("failure %d: blocked %v, want %v", i+1, got, want)
		}
	}
	for i, g := range nodes {
		if _, ok := g.AllowFrom("thing", "10.0.0.2"); ok {
			t.Fatalf("node %d lets a stranger through after 4 failures on two nodes", i)
		}
		if _, ok := g.AllowFrom("thing", "10.0.0.1"); !ok {
			t.Fatalf("node %d refuses the address trusted on node 0", i)
		}
	}
	a.Succeed("thing")
	if _, ok := b.Allow("thing"); !ok {
		t.Fatal("a success on one node did not clear the key on the other")
	}
}

// TestGuardClearCache: a key an Allow found clear is let through without
// asking the database for a while, which gives it at most one try more on
// this node after other nodes blocked it: this node's Fail ends it.
func TestGuardClearCache(t *testing.T) {
	clock := limittest.NewClock()
	a, b, _ := twoNodes(t, limit.Config{Free: 1, Base: time.Minute, Now: clock.Now})
	postgres.SetGuardTimings(a, time.Hour, 0)
	for _, s := range []struct {
		name string
		do   func()
		ok   bool
	}{
		{"clear", func() {}, true},
		{"blocked elsewhere, still clear here", func() { b.Fail("k"); b.Fail("k") }, true},
		{"a failure here ends it", func() { a.Fail("k") }, false},
	} {
		s.do()
		if _, ok := a.Allow("k"); ok != s.ok {
			t.Fatalf("%s: Allow = %v, want %v", s.name, ok, s.ok)
		}
	}
}

// TestGuardDatabaseClock: without Config.Now the database's clock tells
// the time, the same for every node.
func TestGuardDatabaseClock(t *testing.T) {
	a, b, _ := twoNodes(t, limit.Config{Free: -1, Base: time.Minute, Max: time.Minute})
	if got := a.Fail("k"); got != time.Minute {
		t.Fatalf("Fail = %v, want 1m0s", got)
	}
	if ra, ok := b.Allow("k"); ok || ra != time.Minute {
		t.Fatalf("other node: Allow = %v, %v; want 1m0s, false", ra, ok)
	}
}

// TestGuardPrune: rows go once forgotten (failures) or expired (trust),
// and only then, in chunks.
func TestGuardPrune(t *testing.T) {
	clock := limittest.NewClock()
	dsn := pgtest.DSN(t)
	db := openGuardDB(t, dsn)
	g := postgres.NewGuard(db, limit.Config{Free: 1, Max: time.Minute, Forget: time.Hour, Trust: 2 * time.Hour, Now: clock.Now})
	rows := func(table string) int {
		var n int
		if err := db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// 12,000 keys failed a second apart by the thousand, more than two
	// chunks.
	pgtest.Exec(t, dsn, `INSERT INTO login_failures (key, failures, last_failure)
		SELECT 'old' || i, 1, $1::bigint + (i / 1000) * 1000 FROM generate_series(0, 11999) i`, clock.Now().UnixMilli())
	for i := range 3 {
		g.SucceedFrom("thing", fmt.Sprint("10.0.0.", i))
	}
	clock.Add(time.Hour - time.Second)
	g.Fail("new")
	for _, s := range []struct {
		name            string
		advance         time.Duration
		deleted         int64
		failures, trust int
	}{
		{"nothing forgotten yet", 0, 0, 12_001, 2},
		{"the first 6,000 forgotten", 6 * time.Second, 6000, 6001, 2},
		{"all old ones forgotten", 6 * time.Second, 6000, 1, 2},
		{"the last failure forgotten, trust expired", time.Hour, 3, 0, 0},
	} {
		clock.Add(s.advance)
		n, err := g.Prune(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if f, tr := rows("login_failures"), rows("login_trust"); n != s.deleted || f != s.failures || tr != s.trust {
			t.Fatalf("%s: Prune = %d, rows %d, %d; want %d, %d, %d", s.name, n, f, tr, s.deleted, s.failures, s.trust)
		}
	}
}

// recorder keeps the messages logged.
type recorder struct {
	slog.Handler
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }

func (r *recorder) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// TestGuardOutage: while its tables cannot be reached a guard limits by
// its own node's counts (neither open nor locked), logs the outage once
// and its end once, and then counts in the database again.
func TestGuardOutage(t *testing.T) {
	clock := limittest.NewClock()
	dsn := pgtest.DSN(t)
	log := &recorder{Handler: slog.DiscardHandler}
	db, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn, Logger: slog.New(log)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := postgres.NewGuard(db, limit.Config{Free: 2, Base: time.Minute, Max: time.Hour, Now: clock.Now})
	postgres.SetGuardTimings(g, 0, 0)
	other := postgres.NewGuard(openGuardDB(t, dsn), limit.Config{Free: 2, Base: time.Minute, Max: time.Hour, Now: clock.Now})
	postgres.SetGuardTimings(other, 0, 0)

	other.Fail("k") // counted in the database only
	other.Fail("k")
	other.Fail("k")
	pgtest.Exec(t, dsn, `ALTER TABLE login_failures RENAME TO login_failures_away`)
	if _, ok := g.Allow("k"); !ok {
		t.Fatal("during the outage a key blocked on another node only is refused")
	}
	for i, want := range []time.Duration{0, 0, time.Minute} {
		if got := g.Fail("k"); got != want {
			t.Fatalf("outage failure %d: blocked %v, want %v", i+1, got, want)
		}
	}
	if _, ok := g.Allow("k"); ok {
		t.Fatal("during the outage the node's own failures do not block")
	}
	if _, ok := g.Allow("k2"); !ok {
		t.Fatal("during the outage another key is refused")
	}

	pgtest.Exec(t, dsn, `ALTER TABLE login_failures_away RENAME TO login_failures`)
	if got := g.Fail("k"); got != 2*time.Minute {
		t.Fatalf("after the outage: blocked %v, want 2m0s (4 failures in the database)", got)
	}
	var warns, infos int
	for _, m := range log.logged() {
		switch {
		case strings.HasPrefix(m, "WARN login guard: database unavailable"):
			warns++
		case strings.HasPrefix(m, "INFO login guard: database available again"):
			infos++
		}
	}
	if warns != 1 || infos != 1 {
		t.Fatalf("logged %q, want one outage warning and one recovery", log.logged())
	}
}

// TestGuardDown: after a failed statement a guard leaves the database alone
// for a while, so that an unreachable one does not slow every login.
func TestGuardDown(t *testing.T) {
	dsn := pgtest.DSN(t)
	db := openGuardDB(t, dsn)
	g := postgres.NewGuard(db, limit.Config{Free: 1})
	db.Close()
	start := time.Now()
	for range 1000 {
		g.Allow("k")
		g.Fail("k")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("2,000 calls on a closed pool took %v", d)
	}
	if _, ok := g.Allow("k"); ok {
		t.Fatal("the floor does not block")
	}
}

// BenchmarkGuard measures each call's round trip on the test server: go
// test -bench Guard ./internal/postgres/ with THINGIF_TEST_POSTGRES set.
func BenchmarkGuard(b *testing.B) {
	dsn := pgtest.DSN(b)
	db, err := postgres.Open(context.Background(), postgres.Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	newGuard := func(clearFor time.Duration) *postgres.Guard {
		g := postgres.NewGuard(db, limit.Config{Free: 5})
		postgres.SetGuardTimings(g, clearFor, time.Second)
		return g
	}
	b.Run("Allow/clear", func(b *testing.B) {
		g := newGuard(0)
		for b.Loop() {
			g.Allow("clear")
		}
	})
	b.Run("Allow/clear-cached", func(b *testing.B) {
		g := newGuard(time.Second)
		for b.Loop() {
			g.Allow("clear")
		}
	})
	b.Run("AllowFrom/blocked-trusted", func(b *testing.B) {
		g := newGuard(0)
		g.SucceedFrom("blocked", "a")
		for range 10 {
			g.Fail("blocked")
		}
		for b.Loop() {
			if _, ok := g.AllowFrom("blocked", "a"); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("Fail/one-key", func(b *testing.B) {
		g := newGuard(0)
		for b.Loop() {
			g.Fail("one")
		}
	})
	b.Run("Fail/new-keys", func(b *testing.B) {
		g := newGuard(0)
		i := 0
		for b.Loop() {
			i++
			g.Fail(fmt.Sprint("new", i))
		}
	})
	b.Run("Fail/one-key-parallel", func(b *testing.B) {
		g := newGuard(0)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				g.Fail("contended")
			}
		})
	})
	b.Run("SucceedFrom/new-pairs", func(b *testing.B) {
		g := newGuard(0)
		i := 0
		for b.Loop() {
			i++
			g.SucceedFrom(fmt.Sprint("thing", i), "a")
		}
	})
	b.Run("SucceedFrom/again", func(b *testing.B) {
		g := newGuard(0)
		for b.Loop() {
			g.SucceedFrom("thing", "a")
		}
	})
}
