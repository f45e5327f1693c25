package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultMaxPendingCommands is how many commands a thing may have waiting
// (SENDING) when Config.MaxPendingCommands is zero.
const DefaultMaxPendingCommands = 1000

// RateLimiter is a token bucket per key (package internal/limit's
// Buckets): Take takes one token, or says how long until one is there.
type RateLimiter interface {
	Take(key string) (retryAfter time.Duration, ok bool)
}

// anonymousSecret is the client_secret Kii's embedded C SDK sends to get an
// anonymous token (PROTOCOL.md §8.1). It is not a guess at the app key, so
// it is neither limited nor counted: fleets behind one NAT address send it
// at every boot.
const anonymousSecret = "dummy"

// thingLimitKey is the limiter key of one thing's password.
func thingLimitKey(appID, kind, id string) string {
	return "thing-password|" + appID + "|" + kind + "|" + id
}

// remoteHost is the source IP address of r. Requests over MQTT carry the
// connection's remote address.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}

// addrLimitKey is the limiter key of a source address for one kind of
// secret.
func addrLimitKey(kind string, r *http.Request) string {
	return kind + "|addr|" + remoteHost(r)
}

// retryAfter sets the Retry-After header for wait and returns it in whole
// seconds (rounded up).
func retryAfter(w http.ResponseWriter, wait time.Duration) int64 {
	secs := max(int64((wait+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return secs
}

// limitAllow returns 429 TOO_MANY_REQUESTS, with Retry-After, if any key is
// blocked.
func (h *Handler) limitAllow(w http.ResponseWriter, keys ...string) error {
	if h.cfg.Limiter == nil {
		return nil
	}
	for _, k := range keys {
		if wait, ok := h.cfg.Limiter.Allow(k); !ok {
			return errTooManyRequests.with("too many wrong credentials; retry in %d s", retryAfter(w, wait))
		}
	}
	return nil
}

// limitAllowFrom is limitAllow for one key and a try from addr, which
// passes key's block if it recently succeeded for key.
func (h *Handler) limitAllowFrom(w http.ResponseWriter, key, addr string) error {
	if h.cfg.Limiter == nil {
		return nil
	}
	if wait, ok := h.cfg.Limiter.AllowFrom(key, addr); !ok {
		return errTooManyRequests.with("too many wrong credentials; retry in %d s", retryAfter(w, wait))
	}
	return nil
}

// limitSucceedFrom records the right credential for key from addr.
func (h *Handler) limitSucceedFrom(key, addr string) {
	if h.cfg.Limiter != nil {
		h.cfg.Limiter.SucceedFrom(key, addr)
	}
}

// registrationAllow takes a token for one new thing from the source
// address's bucket and the app's, or returns 429 TOO_MANY_REGISTRATIONS
// with Retry-After. The address goes first: a busy address spends none of
// the app's tokens.
func (h *Handler) registrationAllow(w http.ResponseWriter, appID, addr string) error {
	if b := h.cfg.RegistrationsPerAddr; b != nil {
		if wait, ok := b.Take(addr); !ok {
			return errTooManyRegistrations.with("too many new things from this address; retry in %d s", retryAfter(w, wait))
		}
	}
	if b := h.cfg.RegistrationsPerApp; b != nil {
		if wait, ok := b.Take(appID); !ok {
			return errTooManyRegistrations.with("too many new things in this app; retry in %d s", retryAfter(w, wait))
		}
	}
	return nil
}

// hashError turns a failed password hash or check (its context ended while
// waiting for a hashing slot) into 503 with Retry-After.
func hashError(w http.ResponseWriter, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		retryAfter(w, time.Second)
		return errBusy.with("the server is busy checking passwords; retry in 1 s")
	}
	return fmt.Errorf("password hash: %w", err)
}

// limitFail records a wrong credential for every key.
func (h *Handler) limitFail(keys ...string) {
	if h.cfg.Limiter == nil {
		return
	}
	for _, k := range keys {
		h.cfg.Limiter.Fail(k)
	}
}

// maxPending is the bound CreateCommand enforces on a thing's commands not
// yet delivered, so that commands for a thing that never connects cannot
// fill the store.
func (h *Handler) maxPending() int { return PendingBound(h.cfg.MaxPendingCommands) }

// PendingBound turns a configured MaxPendingCommands (0: the default,
// negative: none) into the bound store.CreateCommand takes (0: none).
func PendingBound(configured int) int {
	switch {
	case configured < 0:
		return 0
	case configured == 0:
		return DefaultMaxPendingCommands
	default:
		return configured
	}
}
