package secret

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPasswordRoundTrip(t *testing.T) {
	tests := []struct {
		name, password, try string
		want                bool
	}{
		{"same", "pass-1", "pass-1", true},
		{"different", "pass-1", "pass-2", false},
		{"empty stored", "", "", true},
		{"empty tried", "pass-1", "", false},
		{"unicode", "pässwörd", "pässwörd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := HashPassword(tt.password, Cost{Time: 1, Memory: 64, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(h, tt.password) && tt.password != "" {
				t.Fatalf("hash %q contains the password", h)
			}
			got, err := VerifyPassword(h, tt.try)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("VerifyPassword(%q)=%v, want %v", tt.try, got, tt.want)
			}
		})
	}
}

func TestHashesAreSalted(t *testing.T) {
	a, _ := HashPassword("x", Cost{})
	b, _ := HashPassword("x", Cost{})
	if a == b {
		t.Fatalf("two hashes of the same password are equal: %q", a)
	}
	if !strings.HasPrefix(a, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("default hash %q does not carry the default cost", a)
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2id$v=19$m=1,t=1,p=1$", "$bcrypt$v=19$m=8,t=1,p=1$AAAA$AAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=0,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=1,p=1$!!$AAAA"} {
		if _, err := VerifyPassword(h, "x"); err == nil {
			t.Errorf("VerifyPassword(%q) accepted a malformed hash", h)
		}
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("NewToken()=%q, %q", a, b)
	}
	if HashToken(a) == HashToken(b) || len(HashToken(a)) != 64 {
		t.Fatalf("HashToken digests wrong")
	}
	if !EqualDigest(HashToken(a), HashToken(a)) || EqualDigest(HashToken(a), HashToken(b)) {
		t.Fatalf("EqualDigest wrong")
	}
	if got := len(NewID(6)); got != 12 {
		t.Fatalf("len(NewID(6))=%d, want 12", got)
	}
}

func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("thing-password", Cost{}); err != nil {
			b.Fatal(err)
		}
	}
}

// cheap is a test cost: argon2id over 64 KiB.
var cheap = Cost{Time: 1, Memory: 64, Threads: 1}

// holdGate takes every hashing slot until the returned func is called, so
// that any argon2id run blocks: a check that still answers came from the
// cache.
func holdGate(t *testing.T) (release func()) {
	t.Helper()
	for range cap(hashGate) {
		hashGate <- struct{}{}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for range cap(hashGate) {
				<-hashGate
			}
		})
	}
	t.Cleanup(release)
	return release
}

// cancelled is a context that has ended: a check given it can only answer
// from the cache.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestHashGate(t *testing.T) {
	h, err := HashPassword("pw", cheap)
	if err != nil {
		t.Fatal(err)
	}
	release := holdGate(t)
	ops := []struct {
		name string
		run  func(context.Context) error
	}{
		{"hash", func(ctx context.Context) error { _, err := HashPasswordContext(ctx, "pw", cheap); return err }},
		{"verify", func(ctx context.Context) error { _, err := VerifyPasswordContext(ctx, h, "pw"); return err }},
		{"verifier check", func(ctx context.Context) error {
			_, _, err := NewVerifier(VerifierConfig{Cost: cheap}).Check(ctx, h, "pw")
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name+" waits for a slot", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := op.run(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("with every slot taken: err=%v, want context.DeadlineExceeded", err)
			}
		})
	}
	release()
	for _, op := range ops {
		t.Run(op.name+" runs with a free slot", func(t *testing.T) {
			if err := op.run(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got, want := cap(hashGate), runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("hashing slots = %d, want GOMAXPROCS = %d", got, want)
	}
}

func TestBelow(t *testing.T) {
	at := func(c Cost) string {
		h, err := HashPassword("pw", c)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	target := Cost{Time: 2, Memory: 128, Threads: 1}
	tests := []struct {
		name string
		hash string
		want bool
	}{
		{"same", at(target), false},
		{"less memory", at(Cost{Time: 2, Memory: 64, Threads: 1}), true},
		{"fewer passes", at(Cost{Time: 1, Memory: 128, Threads: 1}), true},
		{"more of both", at(Cost{Time: 3, Memory: 256, Threads: 1}), false},
		{"malformed", "garbage", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Below(tt.hash, target); got != tt.want {
				t.Fatalf("Below(%s)=%v, want %v", tt.hash, got, tt.want)
			}
		})
	}
	if !Below(at(Cost{Time: 1, Memory: 1024, Threads: 1}), Cost{}) {
		t.Fatal("the old default (1 MiB, 1 pass) is not below DefaultCost")
	}
}

func TestVerifierCachesOnlySuccess(t *testing.T) {
	v := NewVerifier(VerifierConfig{Cost: cheap})
	h, _ := HashPassword("key", cheap)
	for i := 0; i < 3; i++ {
		if !v.Verify(h, "key") {
			t.Fatalf("try %d: right key refused", i)
		}
		if v.Verify(h, "wrong") {
			t.Fatalf("try %d: wrong key accepted", i)
		}
	}
	h2, _ := HashPassword("other", cheap)
	if v.Verify(h2, "key") {
		t.Fatal("cached success leaked to another hash")
	}
	if v.Verify("garbage", "key") {
		t.Fatal("malformed hash matched")
	}
	if got, want := v.Len(), 1; got != want {
		t.Fatalf("Len()=%d, want %d: only the success is remembered", got, want)
	}
}

// TestVerifierCache checks what is answered from memory (with every
// hashing slot taken and a context that has ended, only a remembered
// success can be answered) and what is not.
func TestVerifierCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := NewVerifier(VerifierConfig{Cost: cheap, MaxEntries: 3, TTL: time.Hour, Now: clock.now})
	hashes := make([]string, 4)
	for i := range hashes {
		var err error
		if hashes[i], err = HashPassword("pw", cheap); err != nil {
			t.Fatal(err)
		}
	}
	fromMemory := func(hash, pw string) bool {
		t.Helper()
		release := holdGate(t)
		defer release()
		ok, _, err := v.Check(cancelled(), hash, pw)
		return err == nil && ok
	}
	for _, h := range hashes[:3] {
		if ok, _, err := v.Check(context.Background(), h, "pw"); !ok || err != nil {
			t.Fatalf("Check = %v, %v", ok, err)
		}
	}
	steps := []struct {
		name    string
		advance time.Duration
		hash    string
		pw      string
		want    bool
	}{
		{"remembered", 0, hashes[0], "pw", true},
		{"wrong password is not", 0, hashes[0], "pw2", false},
		{"another hash of the same password is not", 0, hashes[3], "pw", false},
		{"still remembered just before TTL", time.Hour - time.Second, hashes[1], "pw", true},
		{"expired after TTL", time.Second, hashes[1], "pw", false},
	}
	for _, s := range steps {
		clock.add(s.advance)
		if got := fromMemory(s.hash, s.pw); got != s.want {
			t.Fatalf("%s: answered from memory = %v, want %v", s.name, got, s.want)
		}
	}

	// Eviction drops the oldest entry only.
	clock.add(-time.Hour)
	if ok, _, err := v.Check(context.Background(), hashes[3], "pw"); !ok || err != nil {
		t.Fatalf("Check = %v, %v", ok, err)
	}
	for i, want := range []bool{false, true, true, true} {
		if got := fromMemory(hashes[i], "pw"); got != want {
			t.Fatalf("after a fourth entry in a cache of three: hash %d from memory = %v, want %v", i, got, want)
		}
	}
	if got, want := v.Len(), 3; got != want {
		t.Fatalf("Len()=%d, want %d", got, want)
	}
}

func TestVerifierKeyIsRandom(t *testing.T) {
	a, b := NewVerifier(VerifierConfig{}), NewVerifier(VerifierConfig{})
	if a.digest("h", "pw") == b.digest("h", "pw") {
		t.Fatal("two verifiers have the same cache digest: the key is not random")
	}
	if a.digest("h", "pw") == a.digest("hp", "w") {
		t.Fatal("hash and password are not separated in the digest")
	}
}

func TestVerifierRehash(t *testing.T) {
	target := Cost{Time: 2, Memory: 128, Threads: 1}
	v := NewVerifier(VerifierConfig{Cost: target})
	old, _ := HashPassword("pw", cheap)
	current, _ := HashPassword("pw", target)
	tests := []struct {
		name       string
		hash, pw   string
		ok, rehash bool
	}{
		{"below the cost", old, "pw", true, true},
		{"below the cost, remembered", old, "pw", true, true},
		{"current", current, "pw", true, false},
		{"wrong password", old, "nope", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := v.Check(context.Background(), tt.hash, tt.pw)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok || (rehash != "") != tt.rehash {
				t.Fatalf("Check = %v, %q; want ok %v, rehash %v", ok, rehash, tt.ok, tt.rehash)
			}
			if rehash == "" {
				return
			}
			if !strings.HasPrefix(rehash, "$argon2id$v=19$m=128,t=2,p=1$") {
				t.Fatalf("rehash %q is not at the verifier's cost", rehash)
			}
			if ok, _ := VerifyPassword(rehash, tt.pw); !ok {
				t.Fatal("the rehash does not verify the password")
			}
			// The new hash is remembered: no argon2id run to check it.
			release := holdGate(t)
			defer release()
			if ok, again, err := v.Check(cancelled(), rehash, tt.pw); !ok || err != nil || again != "" {
				t.Fatalf("Check(rehash) from memory = %v, %q, %v", ok, again, err)
			}
		})
	}
}

// BenchmarkVerifierMemory reports the heap per remembered success when a
// Verifier holds DefaultVerifierEntries of them.
func BenchmarkVerifierMemory(b *testing.B) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v := NewVerifier(VerifierConfig{})
		for i := range DefaultVerifierEntries {
			v.remember(v.digest("hash", strconv.Itoa(i)))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(v.Len()), "bytes/entry")
		runtime.KeepAlive(v)
	}
}

// BenchmarkVerifierHit is the cost of a remembered success.
func BenchmarkVerifierHit(b *testing.B) {
	v := NewVerifier(VerifierConfig{Cost: cheap})
	h, _ := HashPassword("pw", cheap)
	v.Verify(h, "pw")
	for b.Loop() {
		if ok, _, _ := v.Check(context.Background(), h, "pw"); !ok {
			b.Fatal("refused")
		}
	}
}
