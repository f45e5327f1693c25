// Package limittest is the contract of a limit.Guard as a runnable suite:
// the in-memory limit.Limiter and internal/postgres's Guard both pass it, so
// that a node on PostgreSQL limits guessing exactly as one on SQLite does.
package limittest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
)

// Clock is a clock that tests move by hand. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at a fixed time, a whole second.
func NewClock() *Clock { return &Clock{t: time.Unix(1_700_000_000, 0)} }

// Now tells the Clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the Clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// NewGuard returns a new Guard for cfg with nothing recorded; cfg.Now is
// set, and the Guard must tell the time by it.
type NewGuard func(t *testing.T, cfg limit.Config) limit.Guard

// Run runs the suite, one subtest per rule, each on a Guard of its own.
func Run(t *testing.T, newGuard NewGuard) {
	guard := func(t *testing.T, cfg limit.Config) (limit.Guard, *Clock) {
		c := NewClock()
		cfg.Now = c.Now
		return newGuard(t, cfg), c
	}
	t.Run("Backoff", func(t *testing.T) {
		g, c := guard(t, limit.Config{Free: 3, Base: time.Second, Max: 8 * time.Second})
		for i, want := range []time.Duration{0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
			if _, ok := g.Allow("k"); !ok {
				t.Fatalf("failure %d: refused before it", i+1)
			}
			if got := g.Fail("k"); got != want {
				t.Fatalf("failure %d: blocked %v, want %v", i+1, got, want)
			}
			if want == 0 {
				continue
			}
			if ra, ok := g.Allow("k"); ok || ra != want {
				t.Fatalf("failure %d: Allow = %v, %v; want %v, false", i+1, ra, ok, want)
			}
			c.Add(want - 400*time.Millisecond)
			if ra, ok := g.Allow("k"); ok || ra != time.Second {
				t.Fatalf("failure %d: 400 ms before the end, Allow = %v, %v; want 1s (rounded up), false", i+1, ra, ok)
			}
			c.Add(400 * time.Millisecond)
			if _, ok := g.Allow("k"); !ok {
				t.Fatalf("failure %d: refused after the block ended", i+1)
			}
		}
		if _, ok := g.Allow("other"); !ok {
			t.Fatal("another key is refused")
		}
	})
	t.Run("SucceedClears", func(t *testing.T) {
		g, c := guard(t, limit.Config{Free: 1})
		g.Fail("k")
		g.Fail("k")
		if _, ok := g.Allow("k"); ok {
			t.Fatal("not blocked")
		}
		c.Add(limit.DefaultBase)
		g.Succeed("k")
		if got := g.Fail("k"); got != 0 {
			t.Fatalf("after success, first failure blocks %v", got)
		}
	})
	t.Run("Forget", func(t *testing.T) {
		g, c := guard(t, limit.Config{Free: 1, Max: time.Minute, Forget: time.Hour})
		g.Fail("k")
		c.Add(time.Hour)
		if got := g.Fail("k"); got != 0 {
			t.Fatalf("a failure an hour later blocks %v: the old one was not forgotten", got)
		}
		c.Add(time.Hour - time.Second)
		if got := g.Fail("k"); got != limit.DefaultBase {
			t.Fatalf("a failure 59:59 later blocks %v, want %v", got, limit.DefaultBase)
		}
		c.Add(time.Hour)
		if _, ok := g.Allow("k"); !ok {
			t.Fatal("refused an hour after the last failure")
		}
	})
	t.Run("NeverBlocksForGood", func(t *testing.T) {
		g, c := guard(t, limit.Config{Free: 1, Max: 10 * time.Minute})
		for range 60 {
			g.Fail("k")
		}
		if ra, ok := g.Allow("k"); ok || ra != 10*time.Minute {
			t.Fatalf("after 60 failures Allow = %v, %v; want 10m0s, false", ra, ok)
		}
		c.Add(10 * time.Minute)
		if _, ok := g.Allow("k"); !ok {
			t.Fatal("still refused after Max")
		}
	})
	t.Run("NoFreeFailures", func(t *testing.T) {
		g, _ := guard(t, limit.Config{Free: -1, Base: time.Minute})
		if got := g.Fail("k"); got != time.Minute {
			t.Fatalf("first failure blocks %v, want 1m0s", got)
		}
	})
	t.Run("TrustedAddressPassesABlock", func(t *testing.T) {
		g, c := guard(t, limit.Config{Free: 1, Base: time.Minute, Max: time.Minute, Trust: time.Hour})
		g.SucceedFrom("thing", "10.0.0.1")
		g.Fail("thing")
		g.Fail("thing")
		for _, s := range []struct {
			name    string
			advance time.Duration
			addr    string
			ok      bool
		}{
			{"blocked for a stranger", 0, "10.0.0.2", false},
			{"open for the trusted address", 0, "10.0.0.1", true},
			{"the block ends for everyone", time.Minute, "10.0.0.2", true},
		} {
			c.Add(s.advance)
			if _, ok := g.AllowFrom("thing", s.addr); ok != s.ok {
				t.Fatalf("%s: AllowFrom(%s) = %v, want %v", s.name, s.addr, ok, s.ok)
			}
		}
		// Trust does not clear the failures, and it expires.
		g.Fail("thing")
		if _, ok := g.Allow("thing"); ok {
			t.Fatal("SucceedFrom cleared the key's failures")
		}
		if _, ok := g.Allow("10.0.0.1"); !ok {
			t.Fatal("the address became a blocked key")
		}
		c.Add(time.Hour)
		g.Fail("thing")
		g.Fail("thing")
		if _, ok := g.AllowFrom("thing", "10.0.0.1"); ok {
			t.Fatal("trust did not expire")
		}
	})
	t.Run("TrustedPerKey", func(t *testing.T) {
		// Steps of an hour: a Guard may coalesce refreshes within minutes.
		g, c := guard(t, limit.Config{Free: -1, Base: time.Minute, Max: time.Minute})
		for i := range limit.TrustedPerKey + 1 {
			g.SucceedFrom("k", fmt.Sprint("a", i))
			c.Add(time.Hour)
		}
		g.SucceedFrom("k", "a1") // refreshed, not added: a2 is now the oldest
		c.Add(time.Hour)
		g.SucceedFrom("k", "a3") // replaces a2
		g.SucceedFrom("other", "a2")
		g.Fail("k")
		for i, want := range []bool{false, true, false, true} {
			if _, ok := g.AllowFrom("k", fmt.Sprint("a", i)); ok != want {
				t.Fatalf("AllowFrom(a%d) = %v, want %v", i, ok, want)
			}
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		g, _ := guard(t, limit.Config{Free: 1_000_000})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 100 {
					k := fmt.Sprint(i, j%10)
					g.Allow(k)
					g.Fail(k)
					if j%7 == 0 {
						g.Succeed(k)
						g.SucceedFrom(k, "a")
					}
				}
			})
		}
		wg.Wait()
	})
}
