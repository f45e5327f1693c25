package secret

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults for zero VerifierConfig fields.
const (
	// DefaultVerifierEntries is how many successful checks a Verifier
	// remembers: a fleet's worth, so that a building's things coming back
	// after a power cut re-onboard without one argon2id run each.
	DefaultVerifierEntries = 100_000
	// DefaultVerifierTTL is how long a remembered success counts.
	DefaultVerifierTTL = 24 * time.Hour
)

// VerifierConfig configures a Verifier. Zero fields take the documented
// defaults.
type VerifierConfig struct {
	// Cost is the cost of new hashes (Hash) and the cost below which Check
	// asks for a stored hash to be replaced. If zero, DefaultCost.
	Cost Cost
	// MaxEntries bounds the remembered successes; when full, the oldest is
	// dropped for each new one. If zero, DefaultVerifierEntries; negative
	// remembers nothing.
	MaxEntries int
	// TTL is how long a success is remembered. If zero,
	// DefaultVerifierTTL.
	TTL time.Duration
	// Now tells the time. If nil, time.Now.
	Now func() time.Time
}

// Verifier checks passwords against hashes like VerifyPassword, and
// remembers recent successes so that a secret presented again and again
// (an app key on each onboarding CONNECT, a thing password at each boot)
// costs one argon2id run a day, not one per use.
//
// A remembered success is an HMAC-SHA256, under a key drawn at random when
// the Verifier is first used and never stored or logged, of the stored hash
// and the password. The stored hash is part of it, so a changed password
// (a new hash) is never answered from memory. Failures are not remembered.
// Entries expire after TTL; at most MaxEntries are kept, in a ring that
// drops the oldest when a new one arrives, so memory stays bounded (about
// 100 bytes an entry, BenchmarkVerifierMemory) and a full cache never drops
// everything at once. What the cache gives someone who reads the process's
// memory is discussed in docs/security.md ("Password hashing").
//
// The zero value is ready to use with the defaults.
type Verifier struct {
	cfg  VerifierConfig
	once sync.Once
	key  [32]byte

	mu   sync.Mutex
	seen map[digest]cacheEntry
	ring []digest // insertion order; ring[next] is the oldest once full
	next int
}

type digest [sha256.Size]byte

type cacheEntry struct {
	expires int64 // unix nanoseconds
	slot    int   // index in ring, so that a reused slot only evicts its own entry
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) *Verifier {
	v := &Verifier{cfg: cfg}
	v.init()
	return v
}

func (v *Verifier) init() {
	v.once.Do(func() {
		if v.cfg.Cost == (Cost{}) {
			v.cfg.Cost = DefaultCost
		}
		if v.cfg.MaxEntries == 0 {
			v.cfg.MaxEntries = DefaultVerifierEntries
		}
		if v.cfg.TTL <= 0 {
			v.cfg.TTL = DefaultVerifierTTL
		}
		if v.cfg.Now == nil {
			v.cfg.Now = time.Now
		}
		if _, err := rand.Read(v.key[:]); err != nil {
			panic(fmt.Sprintf("secret: crypto/rand failed: %v", err)) // never returns an error on supported platforms
		}
		v.seen = make(map[digest]cacheEntry)
	})
}

// Cost returns the cost of the hashes Hash makes.
func (v *Verifier) Cost() Cost {
	v.init()
	return v.cfg.Cost
}

// Verify reports whether password matches hash, waiting for a hashing slot
// as long as it takes. A malformed hash never matches.
func (v *Verifier) Verify(hash, password string) bool {
	ok, _, err := v.check(context.Background(), hash, password, false)
	return err == nil && ok
}

// Check reports whether password matches hash. When it does and hash was
// made below the Verifier's cost, rehash is a new hash of password at that
// cost, for the caller to store in place of hash; otherwise rehash is empty
// (the hot path: a remembered success of a current hash costs one HMAC and
// nothing else). err is set only when ctx ended while waiting for a hashing
// slot. A malformed hash never matches.
func (v *Verifier) Check(ctx context.Context, hash, password string) (ok bool, rehash string, err error) {
	return v.check(ctx, hash, password, true)
}

func (v *Verifier) check(ctx context.Context, hash, password string, upgrade bool) (bool, string, error) {
	v.init()
	d := v.digest(hash, password)
	if !v.lookup(d) {
		ok, err := VerifyPasswordContext(ctx, hash, password)
		if errors.Is(err, ErrMalformedHash) || (err == nil && !ok) {
			return false, "", nil
		}
		if err != nil {
			return false, "", err
		}
		v.remember(d)
	}
	if !upgrade || !Below(hash, v.cfg.Cost) {
		return true, "", nil
	}
	rehash, err := v.Hash(ctx, password)
	if err != nil {
		// The password is right; the upgrade waits for the next check.
		return true, "", nil
	}
	return true, rehash, nil
}

// Hash hashes password at the Verifier's cost, like HashPasswordContext,
// and remembers the success, so that checking the new hash with the same
// password right after (a thing's second onboarding) costs no argon2id run.
func (v *Verifier) Hash(ctx context.Context, password string) (string, error) {
	v.init()
	h, err := HashPasswordContext(ctx, password, v.cfg.Cost)
	if err != nil {
		return "", err
	}
	v.remember(v.digest(h, password))
	return h, nil
}

// digest is the cache key of (hash, password): HMAC-SHA256 under v.key of
// the length-prefixed hash followed by the password.
func (v *Verifier) digest(hash, password string) digest {
	m := hmac.New(sha256.New, v.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(hash)))
	m.Write(n[:])
	m.Write([]byte(hash))
	m.Write([]byte(password))
	var d digest
	m.Sum(d[:0])
	return d
}

func (v *Verifier) lookup(d digest) bool {
	if v.cfg.MaxEntries < 0 {
		return false
	}
	now := v.cfg.Now().UnixNano()
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.seen[d]
	return ok && now < e.expires
}

func (v *Verifier) remember(d digest) {
	if v.cfg.MaxEntries < 0 {
		return
	}
	expires := v.cfg.Now().Add(v.cfg.TTL).UnixNano()
	v.mu.Lock()
	defer v.mu.Unlock()
	slot := v.next
	if len(v.ring) < v.cfg.MaxEntries {
		v.ring = append(v.ring, d)
		slot = len(v.ring) - 1
	} else {
		old := v.ring[slot]
		if e, ok := v.seen[old]; ok && e.slot == slot {
			delete(v.seen, old)
		}
		v.ring[slot] = d
		v.next = (slot + 1) % v.cfg.MaxEntries
	}
	// A digest already present (expired, or remembered twice by racing
	// checks) moves to the new slot; its old slot no longer evicts it.
	v.seen[d] = cacheEntry{expires: expires, slot: slot}
}

// Len returns the number of remembered successes, expired ones included
// until their slot is reused.
func (v *Verifier) Len() int {
	v.init()
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}
