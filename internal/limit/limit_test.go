package limit

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// clock is an injected clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration)           { c.t = c.t.Add(d) }
func newClock() *clock                         { return &clock{t: time.Unix(1_700_000_000, 0)} }
func newLimiter(c *clock, cfg Config) *Limiter { cfg.Now = c.now; return New(cfg) }

func TestBackoff(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 3, Base: time.Second, Max: 8 * time.Second})
	for i, want := range []time.Duration{0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if _, ok := l.Allow("k"); !ok && want == 0 {
			t.Fatalf("failure %d: refused within the free failures", i+1)
		}
		if got := l.Fail("k"); got != want {
			t.Fatalf("failure %d: blocked %v, want %v", i+1, got, want)
		}
		if want > 0 {
			if ra, ok := l.Allow("k"); ok || ra != want {
				t.Fatalf("failure %d: Allow = %v, %v; want %v, false", i+1, ra, ok, want)
			}
			c.add(want - time.Millisecond)
			if _, ok := l.Allow("k"); ok {
				t.Fatalf("failure %d: allowed before the block ended", i+1)
			}
			c.add(time.Millisecond)
			if _, ok := l.Allow("k"); !ok {
				t.Fatalf("failure %d: refused after the block ended", i+1)
			}
		}
	}
	if _, ok := l.Allow("other"); !ok {
		t.Fatal("another key is refused")
	}
}

func TestSucceedClears(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 1})
	l.Fail("k")
	l.Fail("k")
	if _, ok := l.Allow("k"); ok {
		t.Fatal("not blocked")
	}
	c.add(DefaultBase)
	l.Succeed("k")
	// Back to the free failures.
	if got := l.Fail("k"); got != 0 {
		t.Fatalf("after success, first failure blocks %v", got)
	}
	if got := l.Len(); got != 1 {
		t.Fatalf("Len = %d, want 1", got)
	}
}

func TestForget(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 1, Max: time.Minute, Forget: time.Hour})
	l.Fail("k")
	c.add(time.Hour)
	if got := l.Fail("k"); got != 0 {
		t.Fatalf("a failure an hour later blocks %v: the old one was not forgotten", got)
	}
	c.add(time.Hour)
	if _, ok := l.Allow("k"); !ok {
		t.Fatal("refused")
	}
	if got := l.Len(); got != 0 {
		t.Fatalf("Len = %d after forgetting, want 0", got)
	}
}

func TestNeverBlocksForGood(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 1, Max: 10 * time.Minute})
	for range 1000 {
		l.Fail("k")
	}
	c.add(10 * time.Minute)
	if _, ok := l.Allow("k"); !ok {
		t.Fatal("still refused after Max")
	}
}

// TestLongSiege: a guesser that waits out every block and keeps going for
// days is blocked after each failure, never less than the one before: the
// doubling of Base does not overflow.
func TestLongSiege(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 1, Base: time.Second, Max: 5 * time.Minute, Forget: 24 * time.Hour})
	var last time.Duration
	for i := range 200 {
		d := l.Fail("k")
		if i > 0 && (d < last || d <= 0 || d > 5*time.Minute) {
			t.Fatalf("failure %d: blocked %v after %v", i+1, d, last)
		}
		if _, ok := l.Allow("k"); ok && i > 0 {
			t.Fatalf("failure %d: not blocked", i+1)
		}
		last = d
		c.add(d)
	}
}

func TestBlock(t *testing.T) {
	cfg := Config{Free: 2, Base: time.Hour, Max: 1000 * time.Hour}.WithDefaults()
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{0, 0}, {2, 0}, {3, time.Hour}, {4, 2 * time.Hour}, {12, 512 * time.Hour},
		{13, 1000 * time.Hour}, {40, 1000 * time.Hour}, {100, 1000 * time.Hour}, {1 << 40, 1000 * time.Hour},
	} {
		if got := cfg.Block(tc.failures); got != tc.want {
			t.Errorf("Block(%d) = %v, want %v", tc.failures, got, tc.want)
		}
	}
}

func TestMaxKeys(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: -1, Base: time.Minute, Max: time.Minute, MaxKeys: 10})
	for i := range 10 {
		l.Fail(fmt.Sprint("blocked", i))
	}
	// The table is full of blocked keys: they stay, new keys are not recorded.
	if got := l.Fail("new"); got != 0 {
		t.Fatalf("new key blocked %v with a full table", got)
	}
	if got := l.Len(); got != 10 {
		t.Fatalf("Len = %d, want 10", got)
	}
	if _, ok := l.Allow("blocked0"); ok {
		t.Fatal("a blocked key was evicted")
	}
	// Once blocks end, their keys make room.
	c.add(time.Minute)
	if got := l.Fail("new"); got != time.Minute {
		t.Fatalf("new key blocked %v, want 1m", got)
	}
	if got := l.Len(); got > 10 {
		t.Fatalf("Len = %d, want at most 10", got)
	}
}

func TestConcurrent(t *testing.T) {
	l := New(Config{Free: 1000000})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 1000 {
				k := fmt.Sprint(i, j%10)
				l.Allow(k)
				l.Fail(k)
				if j%7 == 0 {
					l.Succeed(k)
				}
			}
		}()
	}
	wg.Wait()
}

func TestTrustedAddressPassesABlock(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{Free: 1, Base: time.Minute, Max: time.Minute, Trust: time.Hour})
	l.SucceedFrom("thing", "10.0.0.1")
	l.Fail("thing")
	l.Fail("thing")
	steps := []struct {
		name    string
		advance time.Duration
		addr    string
		ok      bool
	}{
		{"blocked for a stranger", 0, "10.0.0.2", false},
		{"open for the trusted address", 0, "10.0.0.1", true},
		{"the block ends for everyone", time.Minute, "10.0.0.2", true},
	}
	for _, s := range steps {
		c.add(s.advance)
		if _, ok := l.AllowFrom("thing", s.addr); ok != s.ok {
			t.Fatalf("%s: AllowFrom(%s) = %v, want %v", s.name, s.addr, ok, s.ok)
		}
	}
	// Trust does not clear the failures, and it expires.
	l.Fail("thing")
	if _, ok := l.Allow("thing"); ok {
		t.Fatal("SucceedFrom cleared the key's failures")
	}
	c.add(time.Hour)
	l.Fail("thing")
	l.Fail("thing")
	if _, ok := l.AllowFrom("thing", "10.0.0.1"); ok {
		t.Fatal("trust did not expire")
	}
}

func TestTrustedPerKey(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{})
	for i := range TrustedPerKey + 1 {
		l.SucceedFrom("k", fmt.Sprint("a", i))
		c.add(time.Second)
	}
	l.SucceedFrom("k", "a1") // refreshed, not added
	for i, want := range []bool{false, true, true} {
		if got := l.Trusted("k", fmt.Sprint("a", i)); got != want {
			t.Fatalf("Trusted(a%d) = %v, want %v", i, got, want)
		}
	}
}

func TestMaxTrusted(t *testing.T) {
	c := newClock()
	l := newLimiter(c, Config{MaxTrusted: 3})
	for i := range 4 {
		l.SucceedFrom(fmt.Sprint("k", i), "a")
	}
	if got, want := l.TrustedLen(), 3; got != want {
		t.Fatalf("TrustedLen = %d, want %d", got, want)
	}
	if l.Trusted("k0", "a") || !l.Trusted("k3", "a") {
		t.Fatal("the key trusted longest ago was not the one dropped")
	}
	// A success moves a key to the back: k1 now outlives k2.
	l.SucceedFrom("k1", "a")
	l.SucceedFrom("k4", "a")
	if !l.Trusted("k1", "a") || l.Trusted("k2", "a") {
		t.Fatal("a refreshed key was dropped before an older one")
	}
}

// BenchmarkTrustedMemory reports the heap per key when DefaultMaxTrusted
// keys each trust one address, with keys shaped like the handler's.
func BenchmarkTrustedMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l := New(Config{})
		for i := range DefaultMaxTrusted {
			l.SucceedFrom(fmt.Sprintf("thing-password|app1|id|th.%024x", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(l.TrustedLen()), "bytes/key")
		runtime.KeepAlive(l)
	}
}
