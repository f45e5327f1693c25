// Package secret makes and checks the secrets thingif hands out and receives:
// password hashes for thing passwords and app keys (argon2id, PHC string
// format, cost carried in each hash so the knob can change without breaking
// stored hashes), random bearer strings for tokens and endpoint passwords, and
// the SHA-256 digests under which those random strings are stored.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformedHash is returned by VerifyPassword for a stored hash it cannot
// read.
var ErrMalformedHash = errors.New("malformed password hash")

// Cost is the argon2id cost of new password hashes. The cost of an existing
// hash is read from the hash itself.
type Cost struct {
	Time    uint32 // iterations
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultCost is the cost used when a zero Cost is given: one pass over
// 1 MiB, about 1 ms on one core of the benchmark machine, so that two
// cores onboard over 500 new things a second (BENCHMARKS.md). Why this is enough,
// and when to raise it, is in docs/security.md ("Password hashing"). It is
// the documented knob (--password-hash-memory, --password-hash-time).
var DefaultCost = Cost{Time: 1, Memory: 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// HashPassword hashes a password with argon2id at the given cost (DefaultCost
// if zero) and returns it in PHC string format:
// $argon2id$v=19$m=1024,t=1,p=1$<salt>$<hash>.
func HashPassword(password string, c Cost) (string, error) {
	if c == (Cost{}) {
		c = DefaultCost
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, c.Time, c.Memory, c.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, c.Memory, c.Time, c.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches a hash made by
// HashPassword. The comparison is constant-time.
func VerifyPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformedHash
	}
	var c Cost
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &c.Memory, &c.Time, &c.Threads); err != nil ||
		c.Time == 0 || c.Threads == 0 || c.Memory == 0 || c.Memory > 4<<20 {
		return false, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 1024 {
		return false, ErrMalformedHash
	}
	got := argon2.IDKey([]byte(password), salt, c.Time, c.Memory, c.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NewToken returns a random bearer string with 256 bits of entropy,
// URL-safe base64 without padding (43 characters).
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("secret: crypto/rand failed: %v", err)) // never returns an error on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a random identifier of n bytes of entropy as lower-case hex.
func NewID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("secret: crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b)
}

// HashToken returns the digest under which a random bearer string (a token,
// an endpoint password) is stored: hex SHA-256. A fast hash is right here
// because the input has 256 bits of entropy.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// EqualDigest compares two digests in constant time.
func EqualDigest(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
