package limit

import (
	"container/list"
	"math"
	"sync"
	"time"
)

// DefaultMaxBuckets bounds the keys a Buckets remembers when
// BucketConfig.MaxKeys is zero.
const DefaultMaxBuckets = 100_000

// Default registration rates (first onboardings of new things), chosen so
// that a factory line provisioning a fleet never meets them while one
// address or app cannot grow the database without bound; the reasoning is
// in docs/security.md ("Registration rate").
var (
	// DefaultRegistrationsPerAddr: 10 a second per source address, 100 in
	// a burst.
	DefaultRegistrationsPerAddr = BucketConfig{Rate: 10}
	// DefaultRegistrationsPerApp: 100 a second per app, 1,000 in a burst.
	DefaultRegistrationsPerApp = BucketConfig{Rate: 100}
)

// BucketConfig configures Buckets: one token bucket per key, each holding
// up to Burst tokens and refilled at Rate a second.
type BucketConfig struct {
	// Rate is the tokens added per second. Zero or negative turns the
	// limit off: Take always succeeds (but see WithDefault).
	Rate float64
	// Burst is the bucket size: how many takes in a row an idle key may
	// make. If zero, ten seconds' worth: max(1, 10×Rate).
	Burst float64
	// MaxKeys bounds the keys remembered; when full, the key used longest
	// ago is dropped (it starts again with a full bucket, so memory is
	// bounded at the price of an attacker with more than MaxKeys addresses
	// getting each a fresh burst). If zero, DefaultMaxBuckets.
	MaxKeys int
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
}

// Buckets is a set of token buckets by key. It is safe for concurrent use.
type Buckets struct {
	cfg   BucketConfig
	mu    sync.Mutex
	keys  map[string]*bucket
	order *list.List // of *bucket, least recently used first
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time // when tokens was last computed
	elem   *list.Element
}

// WithDefault returns c with the rate and burst of d when c's rate is
// zero; a negative rate stays (off).
func (c BucketConfig) WithDefault(d BucketConfig) BucketConfig {
	if c.Rate == 0 {
		c.Rate, c.Burst = d.Rate, d.Burst
	}
	return c
}

// NewBuckets returns Buckets for cfg.
func NewBuckets(cfg BucketConfig) *Buckets {
	if cfg.Burst <= 0 {
		cfg.Burst = max(1, 10*cfg.Rate)
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxBuckets
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Buckets{cfg: cfg, keys: make(map[string]*bucket), order: list.New()}
}

// Take takes one token from key's bucket. When the bucket is empty it
// takes nothing and reports how long until a token is there (at least one
// second, as an HTTP Retry-After).
func (b *Buckets) Take(key string) (retryAfter time.Duration, ok bool) {
	if b == nil || b.cfg.Rate <= 0 {
		return 0, true
	}
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.keys[key]
	if k == nil {
		for len(b.keys) >= b.cfg.MaxKeys {
			old := b.order.Front()
			delete(b.keys, old.Value.(*bucket).key)
			b.order.Remove(old)
		}
		k = &bucket{key: key, tokens: b.cfg.Burst, at: now}
		k.elem = b.order.PushBack(k)
		b.keys[key] = k
	} else {
		b.order.MoveToBack(k.elem)
		if d := now.Sub(k.at); d > 0 {
			k.tokens = min(b.cfg.Burst, k.tokens+d.Seconds()*b.cfg.Rate)
			k.at = now
		}
	}
	if k.tokens >= 1 {
		k.tokens--
		return 0, true
	}
	secs := math.Ceil((1 - k.tokens) / b.cfg.Rate)
	return time.Duration(max(secs, 1)) * time.Second, false
}

// Len returns the number of keys remembered.
func (b *Buckets) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}
