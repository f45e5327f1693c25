// Package limit slows down and then refuses repeated failures by key: wrong
// thing passwords per vendorThingID or per source address, wrong app keys per
// source address.
//
// A key may fail Config.Free times at no cost. Each failure after that blocks
// the key for a delay that doubles from Config.Base up to Config.Max; while a
// key is blocked, Allow refuses it and the caller answers 429 (or the MQTT
// equivalent) without checking the credential at all, so a blocked attacker
// learns nothing and costs no password hashing. A block always ends: the
// right password works again after at most Config.Max, and a success clears
// the key. Failures are forgotten Config.Forget after the last one.
//
// A key may also remember the addresses that recently presented its right
// credential (SucceedFrom): AllowFrom lets them through while the key is
// blocked, so that a guesser elsewhere cannot lock a thing out of its own
// onboarding (docs/security.md, "Brute force").
//
// Guard, in guard.go, is the role a Limiter plays for its callers, so that
// a cluster of nodes can count in a shared store instead
// (internal/postgres's Guard); limittest is its contract as a suite.
//
// Buckets, in bucket.go, are token buckets per key, for rates that are not
// failures (first registrations of things).
package limit

import (
	"container/list"
	"sync"
	"time"
)

// Defaults for zero Config fields.
const (
	DefaultFree    = 5
	DefaultBase    = time.Second
	DefaultMax     = 5 * time.Minute
	DefaultForget  = time.Hour
	DefaultMaxKeys = 100_000
	// DefaultTrust is how long an address that presented a key's right
	// credential stays trusted for that key.
	DefaultTrust = 30 * 24 * time.Hour
	// DefaultMaxTrusted bounds the keys that have trusted addresses.
	DefaultMaxTrusted = 100_000
	// TrustedPerKey is how many addresses a key trusts at once; a new one
	// replaces the one that succeeded longest ago.
	TrustedPerKey = 2
)

// Config configures a Limiter. Zero values take the defaults documented on
// each field.
type Config struct {
	// Free is how many failures a key may have before it is blocked. If
	// zero, DefaultFree; negative means none.
	Free int
	// Base is the block after the first failure beyond Free; each further
	// failure doubles it. If zero, DefaultBase.
	Base time.Duration
	// Max caps the block. If zero, DefaultMax.
	Max time.Duration
	// Forget is how long after its last failure a key is forgotten. If zero,
	// DefaultForget. It is raised to Max if smaller.
	Forget time.Duration
	// MaxKeys bounds the number of keys remembered, so that an attacker
	// cycling through keys cannot grow memory without bound. When full,
	// forgotten keys are dropped, then the keys whose block has ended, then
	// new failures are not recorded. If zero, DefaultMaxKeys.
	MaxKeys int
	// Trust is how long an address stays trusted for a key after
	// SucceedFrom. If zero, DefaultTrust.
	Trust time.Duration
	// MaxTrusted bounds the number of keys with trusted addresses; when
	// full, the key whose last success is oldest is dropped. If zero,
	// DefaultMaxTrusted.
	MaxTrusted int
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	switch {
	case c.Free == 0:
		c.Free = DefaultFree
	case c.Free < 0:
		c.Free = 0
	}
	if c.Base <= 0 {
		c.Base = DefaultBase
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	if c.Max < c.Base {
		c.Max = c.Base
	}
	if c.Forget <= 0 {
		c.Forget = DefaultForget
	}
	if c.Forget < c.Max {
		c.Forget = c.Max
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.Trust <= 0 {
		c.Trust = DefaultTrust
	}
	if c.MaxTrusted <= 0 {
		c.MaxTrusted = DefaultMaxTrusted
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// WithDefaults returns c with its zero fields set to the defaults documented
// on each, as New sets them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Block is how long a key is blocked after its failures-th failure in a
// row: nothing within c.Free, then c.Base doubled at each further failure,
// up to c.Max. c must have its defaults (WithDefaults).
func (c Config) Block(failures int) time.Duration {
	over := failures - c.Free
	if over <= 0 {
		return 0
	}
	// Base << (over-1) overflows a Duration (nanoseconds) from about the
	// 35th doubling on: compare Base with Max shifted down instead.
	if over-1 >= 63 || c.Base > c.Max>>(over-1) {
		return c.Max
	}
	return c.Base << (over - 1)
}

// Limiter counts failures per key. It is safe for concurrent use.
type Limiter struct {
	cfg  Config
	mu   sync.Mutex
	keys map[string]*entry

	// trusted maps a key to the addresses that recently succeeded for it;
	// order lists keys by last success (oldest first) for eviction.
	trusted map[string]*trustEntry
	order   *list.List // of string
}

type trustEntry struct {
	addrs [TrustedPerKey]trustedAddr
	elem  *list.Element // in order
}

type trustedAddr struct {
	addr string
	at   time.Time // last success; zero: free slot
}

type entry struct {
	failures int
	last     time.Time // last failure
	until    time.Time // blocked until
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	cfg.setDefaults()
	return &Limiter{cfg: cfg, keys: make(map[string]*entry), trusted: make(map[string]*trustEntry), order: list.New()}
}

// Allow reports whether key may try now; if not, retryAfter is how long
// until it may (at least one second, as an HTTP Retry-After).
func (l *Limiter) Allow(key string) (retryAfter time.Duration, ok bool) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		return 0, true
	}
	if now.Sub(e.last) >= l.cfg.Forget {
		delete(l.keys, key)
		return 0, true
	}
	if wait := e.until.Sub(now); wait > 0 {
		return max(wait, time.Second).Round(time.Second), false
	}
	return 0, true
}

// Fail records a failure of key and returns how long key is now blocked
// (zero while it is within its free failures).
func (l *Limiter) Fail(key string) time.Duration {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e != nil && now.Sub(e.last) >= l.cfg.Forget {
		e = nil
	}
	if e == nil {
		if len(l.keys) >= l.cfg.MaxKeys && !l.evict(now) {
			return 0
		}
		e = new(entry)
		l.keys[key] = e
	}
	e.failures++
	e.last = now
	d := l.cfg.Block(e.failures)
	if d > 0 {
		e.until = now.Add(d)
	}
	return d
}

// AllowFrom is Allow for a try from addr: an address that succeeded for
// key (SucceedFrom) within Config.Trust is allowed even while key is
// blocked.
func (l *Limiter) AllowFrom(key, addr string) (retryAfter time.Duration, ok bool) {
	if l.Trusted(key, addr) {
		return 0, true
	}
	return l.Allow(key)
}

// Trusted reports whether addr succeeded for key within Config.Trust.
func (l *Limiter) Trusted(key, addr string) bool {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.trusted[key]
	if t == nil {
		return false
	}
	for _, a := range t.addrs {
		if a.addr == addr && !a.at.IsZero() && now.Sub(a.at) < l.cfg.Trust {
			return true
		}
	}
	return false
}

// SucceedFrom records the right credential for key from addr: addr is
// trusted for key from now on, for Config.Trust. Unlike Succeed it does not
// clear key's failures: a guesser elsewhere keeps the block it earned,
// and the trusted address does not need it cleared.
func (l *Limiter) SucceedFrom(key, addr string) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.trusted[key]
	if t == nil {
		for len(l.trusted) >= l.cfg.MaxTrusted {
			oldest := l.order.Front()
			delete(l.trusted, oldest.Value.(string))
			l.order.Remove(oldest)
		}
		t = &trustEntry{elem: l.order.PushBack(key)}
		l.trusted[key] = t
	} else {
		l.order.MoveToBack(t.elem)
	}
	slot := 0
	for i, a := range t.addrs {
		if a.addr == addr {
			slot = i
			break
		}
		if a.at.Before(t.addrs[slot].at) {
			slot = i
		}
	}
	t.addrs[slot] = trustedAddr{addr: addr, at: now}
}

// TrustedLen returns the number of keys with trusted addresses.
func (l *Limiter) TrustedLen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.trusted)
}

// Succeed forgets key's failures: the right credential ends a block for
// good.
func (l *Limiter) Succeed(key string) {
	l.mu.Lock()
	delete(l.keys, key)
	l.mu.Unlock()
}

// Len returns the number of keys remembered.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// evict makes room for one key and reports whether it could: forgotten keys
// go first, then keys that are not blocked now. Blocked keys are kept, so an
// attacker cannot lift its own block by filling the table.
func (l *Limiter) evict(now time.Time) bool {
	for k, e := range l.keys {
		if now.Sub(e.last) >= l.cfg.Forget {
			delete(l.keys, k)
		}
	}
	if len(l.keys) < l.cfg.MaxKeys {
		return true
	}
	for k, e := range l.keys {
		if !now.Before(e.until) {
			delete(l.keys, k)
			if len(l.keys) < l.cfg.MaxKeys {
				return true
			}
		}
	}
	return len(l.keys) < l.cfg.MaxKeys
}
