package limit

import "time"

var _ Guard = (*Limiter)(nil)

// Guard is the role a Limiter plays for the handlers that check thing
// passwords and app keys: they ask before checking a credential and report
// how the check went. Keys are opaque strings built by the caller (one per
// app and thing, one per source address and kind of secret); the rules are
// the package's (Config) and docs/security.md's ("Brute force").
//
// *Limiter counts in the memory of one process; internal/postgres's Guard
// counts in the database that several nodes share, so that a guesser gains
// no tries by spreading over them. A Guard never fails: one that cannot
// reach its store decides on what it knows itself and bounds the time it
// waits, so its methods take no context and return no error.
type Guard interface {
	// Allow reports whether key may try now, and if not, how long until it
	// may (at least one second, as an HTTP Retry-After).
	Allow(key string) (retryAfter time.Duration, ok bool)
	// AllowFrom is Allow for a try from the source address addr: an
	// address that recently succeeded for key (SucceedFrom) is allowed
	// while key is blocked.
	AllowFrom(key, addr string) (retryAfter time.Duration, ok bool)
	// Fail records a wrong credential for key and returns how long key is
	// blocked now (zero while it has free failures left).
	Fail(key string) time.Duration
	// Succeed records the right credential for key: its failures are
	// forgotten and its block ends.
	Succeed(key string)
	// SucceedFrom records the right credential for key from addr, which
	// AllowFrom then lets through key's blocks for Config.Trust. It does
	// not clear key's failures. A Guard may coalesce the calls for one key
	// and address within a few minutes.
	SucceedFrom(key, addr string)
}
