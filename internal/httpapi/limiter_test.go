package httpapi

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
)

// limitClock is the limiter's injected clock.
type limitClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *limitClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *limitClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withLimiter(free int) (*limitClock, func(*Config)) {
	c := &limitClock{t: time.Unix(1_700_000_000, 0)}
	l := limit.New(limit.Config{Free: free, Base: time.Minute, Max: 4 * time.Minute, Now: c.now})
	return c, func(cfg *Config) { cfg.Limiter = l }
}

func TestWrongThingPasswordsAreLimited(t *testing.T) {
	clock, opt := withLimiter(3)
	e := newEnv(t, opt)
	e.onboard("v-1", "right")
	admin := e.appToken(testApp, testAppKey)
	for i := range 3 {
		check(t, e.onboardRaw(admin, "v-1", fmt.Sprint("guess", i), ""), http.StatusForbidden, "WRONG_PASSWORD")
	}
	check(t, e.onboardRaw(admin, "v-1", "guess3", ""), http.StatusForbidden, "WRONG_PASSWORD")
	// Blocked now: even the right password waits, and is told how long.
	r := e.onboardRaw(admin, "v-1", "right", "")
	check(t, r, http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
	if got := r.header.Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After %q, want 60", got)
	}
	// A new thing from the same address is not a password check.
	e.onboard("v-2", "pw")
	// The block ends; the right password works (and makes this address
	// one the thing trusts).
	clock.add(time.Minute)
	check(t, e.onboardRaw(admin, "v-1", "right", ""), http.StatusOK, "")
	check(t, e.onboardRaw(admin, "v-1", "wrong-again", ""), http.StatusForbidden, "WRONG_PASSWORD")
	// ... but not the address's: it failed 5 times in all, so it is
	// blocked again, for two minutes this time.
	check(t, e.onboardRaw(admin, "v-2", "pw", ""), http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
	clock.add(2 * time.Minute)
	check(t, e.onboardRaw(admin, "v-2", "pw", ""), http.StatusOK, "")
}

func TestWrongAppKeysAreLimited(t *testing.T) {
	clock, opt := withLimiter(2)
	e := newEnv(t, opt)
	tokenReq := func(app, secret string) resp {
		return e.do("POST", "/api/apps/"+app+"/oauth2/token",
			fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, app, secret),
			"Content-Type", "application/json")
	}
	for range 3 {
		check(t, tokenReq(closedApp, "guess"), http.StatusUnauthorized, "invalid_client")
	}
	check(t, tokenReq(closedApp, closedAppKey), http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
	// Kii's C SDK's literal "dummy" is no guess: never limited.
	check(t, tokenReq(testApp, "dummy"), http.StatusOK, "")
	clock.add(time.Minute)
	check(t, tokenReq(closedApp, closedAppKey), http.StatusOK, "")
}

func TestPendingCommandsBound(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxPendingCommands = 3 })
	o := e.onboard("v-1", "pw")
	admin := e.appToken(testApp, testAppKey)
	path := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/commands"
	body := `{"schema":"s","schemaVersion":1,"issuer":"user:u","actions":[{"a":{}}]}`
	for range 3 {
		check(t, e.do("POST", path, body, with(bearer(admin), "Content-Type", "application/json")...), http.StatusCreated, "")
	}
	check(t, e.do("POST", path, body, with(bearer(admin), "Content-Type", "application/json")...), http.StatusTooManyRequests, "TOO_MANY_PENDING_COMMANDS")
}
