package secret

import (
	"crypto/sha256"
	"sync"
)

// Verifier checks passwords against hashes like VerifyPassword, and remembers
// recent successes so that a secret presented on every connection (an app key
// on each onboarding CONNECT) costs one argon2id run, not one per use.
//
// The cache key is the stored hash plus a SHA-256 of the password: a changed
// app key has a new hash, so stale entries can never match it. Failures are not
// cached. The zero value is ready to use.
type Verifier struct {
	mu   sync.Mutex
	seen map[verifierKey]struct{}
}

type verifierKey struct {
	hash string
	pw   [sha256.Size]byte
}

// verifierMax bounds the cache; when full it is cleared, which only costs
// a recomputation.
const verifierMax = 4096

// Verify reports whether password matches hash. A malformed hash never
// matches.
func (v *Verifier) Verify(hash, password string) bool {
	k := verifierKey{hash: hash, pw: sha256.Sum256([]byte(password))}
	v.mu.Lock()
	_, ok := v.seen[k]
	v.mu.Unlock()
	if ok {
		return true
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil || !ok {
		return false
	}
	v.mu.Lock()
	if v.seen == nil || len(v.seen) >= verifierMax {
		v.seen = make(map[verifierKey]struct{})
	}
	v.seen[k] = struct{}{}
	v.mu.Unlock()
	return true
}
