// Package secret makes and checks the secrets thingif hands out and receives:
// password hashes for thing passwords and app keys (argon2id, PHC string
// format, cost carried in each hash so the knob can change without breaking
// stored hashes), random bearer strings for tokens and endpoint passwords, and
// the SHA-256 digests under which those random strings are stored.
package secret

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
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

// DefaultCost is the cost used when a zero Cost is given: OWASP's minimum
// for argon2id (Password Storage Cheat Sheet: "a minimum configuration of
// 19 MiB of memory, an iteration count of 2, and 1 degree of parallelism").
// It is the documented knob (--password-hash-memory, --password-hash-time);
// why this cost, what it costs per onboarding and why re-onboarding stays
// fast anyway (Verifier) is in docs/security.md ("Password hashing").
var DefaultCost = Cost{Time: 2, Memory: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
	// maxMemory bounds the memory cost a stored hash may ask for (4 GiB),
	// so that a corrupt or hostile hash cannot make a check allocate more.
	maxMemory = 4 << 20
)

// hashGate bounds the argon2id runs of the whole process: each takes its
// cost's memory (19 MiB at DefaultCost) and a core, so more runs than cores
// only add memory and latency. Every hash and verification takes a slot;
// a caller whose context ends while it waits gets the context's error.
var hashGate = make(chan struct{}, max(runtime.GOMAXPROCS(0), 1))

// acquire waits for a slot of hashGate.
func acquire(ctx context.Context) error {
	select {
	case hashGate <- struct{}{}:
		return nil
	default:
	}
	select {
	case hashGate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a password hashing slot: %w", ctx.Err())
	}
}

func release() { <-hashGate }

// HashPassword hashes a password with argon2id at the given cost (DefaultCost
// if zero) and returns it in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>. It waits for a free
// hashing slot for as long as it takes; HashPasswordContext gives up when
// its context ends.
func HashPassword(password string, c Cost) (string, error) {
	return HashPasswordContext(context.Background(), password, c)
}

// HashPasswordContext is HashPassword, waiting for a hashing slot only as
// long as ctx lasts.
func HashPasswordContext(ctx context.Context, password string, c Cost) (string, error) {
	if c == (Cost{}) {
		c = DefaultCost
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	if err := acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, c.Time, c.Memory, c.Threads, keyLen)
	release()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, c.Memory, c.Time, c.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// parsedHash is a PHC string taken apart.
type parsedHash struct {
	cost       Cost
	salt, want []byte
}

func parseHash(hash string) (parsedHash, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return parsedHash{}, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return parsedHash{}, ErrMalformedHash
	}
	var c Cost
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &c.Memory, &c.Time, &c.Threads); err != nil ||
		c.Time == 0 || c.Threads == 0 || c.Memory == 0 || c.Memory > maxMemory {
		return parsedHash{}, ErrMalformedHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return parsedHash{}, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 1024 {
		return parsedHash{}, ErrMalformedHash
	}
	return parsedHash{cost: c, salt: salt, want: want}, nil
}

// VerifyPassword reports whether password matches a hash made by
// HashPassword. The comparison is constant-time. Like HashPassword it waits
// for a hashing slot as long as it takes.
func VerifyPassword(hash, password string) (bool, error) {
	return VerifyPasswordContext(context.Background(), hash, password)
}

// VerifyPasswordContext is VerifyPassword, waiting for a hashing slot only
// as long as ctx lasts.
func VerifyPasswordContext(ctx context.Context, hash, password string) (bool, error) {
	p, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	if err := acquire(ctx); err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), p.salt, p.cost.Time, p.cost.Memory, p.cost.Threads, uint32(len(p.want)))
	release()
	return subtle.ConstantTimeCompare(got, p.want) == 1, nil
}

// Below reports whether hash was made at a lower memory or time cost than
// c (DefaultCost if zero), so that it should be replaced by a hash at c the
// next time its password is known. A malformed hash is not below anything:
// there is nothing to replace.
func Below(hash string, c Cost) bool {
	if c == (Cost{}) {
		c = DefaultCost
	}
	p, err := parseHash(hash)
	if err != nil {
		return false
	}
	return p.cost.Memory < c.Memory || p.cost.Time < c.Time
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
