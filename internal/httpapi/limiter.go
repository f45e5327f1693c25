package httpapi

import (
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultMaxPendingCommands is how many commands a thing may have waiting
// (SENDING) when Config.MaxPendingCommands is zero.
const DefaultMaxPendingCommands = 1000

// Limiter slows down and then refuses credential guessing; package
// internal/limit provides one. Keys are opaque strings built by the handler:
// one per app and thing (wrong thing passwords), one per source address and
// kind of secret (wrong thing passwords, wrong app keys).
type Limiter interface {
	// Allow reports whether key may try now, and if not, for how long it
	// must wait.
	Allow(key string) (retryAfter time.Duration, ok bool)
	// Fail records a wrong credential for key and returns how long key is
	// blocked now (zero while it has free failures left).
	Fail(key string) time.Duration
	// Succeed records the right credential for key: its block ends.
	Succeed(key string)
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

// addrLimitKey is the limiter key of a source address for one kind of
// secret. Requests over MQTT carry the connection's remote address.
func addrLimitKey(kind string, r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return kind + "|addr|" + host
}

// limitAllow returns 429 TOO_MANY_REQUESTS, with Retry-After, if any key is
// blocked.
func (h *Handler) limitAllow(w http.ResponseWriter, keys ...string) error {
	if h.cfg.Limiter == nil {
		return nil
	}
	for _, k := range keys {
		if wait, ok := h.cfg.Limiter.Allow(k); !ok {
			secs := int64((wait + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			return errTooManyRequests.with("too many wrong credentials; retry in %d s", secs)
		}
	}
	return nil
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

// limitSucceed records the right credential for key.
func (h *Handler) limitSucceed(key string) {
	if h.cfg.Limiter != nil {
		h.cfg.Limiter.Succeed(key)
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
