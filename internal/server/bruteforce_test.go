package server

import (
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestBruteForce: wrong app keys at the onboarding broker's CONNECT and at
// the token endpoint count together per source address, and wrong thing
// passwords per thing; after the free failures the address or thing is
// refused (CONNACK 0x03 / 0x9F, HTTP 429, or 429 on the onboarding topic),
// even with the right credential, until its block ends, and then the right
// credential works again.
func TestBruteForce(t *testing.T) {
	clock := &testClock{t: time.Unix(1_700_000_000, 0)}
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.BruteForce = limit.Config{Free: 3, Base: time.Minute, Max: 4 * time.Minute, Now: clock.now}
	s := startServer(t, cfg)
	h := &hostileEnv{t: t, s: s, onboardAddr: s.Addr("onboard-tcp").String(), httpBase: "http://" + s.Addr("http").String()}
	tokenBody := func(secret string) string {
		return `{"grant_type":"client_credentials","client_id":"` + testAppID + `","client_secret":"` + secret + `"}`
	}
	connect := func(version byte, pass string) string {
		c := dialRaw(t, h.onboardAddr)
		c.v5 = version == 5
		c.write(connectPacket(version, "anonymous", anonUser, pass))
		return c.outcome()
	}

	// App keys: 2 wrong over MQTT, 1 over REST, all free.
	for _, step := range []struct{ name, got, want string }{
		{"mqtt wrong key 1", connect(4, "client_secret=g1"), "CONNACK 0x04"},
		{"mqtt wrong key 2", connect(5, "client_secret=g2"), "CONNACK 0x86"},
		{"rest wrong key 3", h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", map[string]string{"Content-Type": "application/json"}, tokenBody("g3")), "200"}, // an anonymous token
		{"mqtt wrong key 4 blocks", connect(4, "client_secret=g4"), "CONNACK 0x04"},
		{"mqtt right key, v3, blocked", connect(4, anonPass), "CONNACK 0x03"},
		{"mqtt right key, v5, blocked", connect(5, anonPass), "CONNACK 0x9f"},
		{"rest right key, blocked", h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", map[string]string{"Content-Type": "application/json"}, tokenBody(testAppKey)), "429 TOO_MANY_REQUESTS"},
		{"rest dummy secret is never blocked", h.rest("POST", "/api/apps/"+testAppID+"/oauth2/token", map[string]string{"Content-Type": "application/json"}, tokenBody("dummy")), "200"},
	} {
		if step.got != step.want {
			t.Fatalf("%s: got %q, want %q", step.name, step.got, step.want)
		}
	}
	clock.add(time.Minute)
	if got := connect(4, anonPass); got != "CONNACK 0x00" {
		t.Fatalf("right key after the block: %s", got)
	}

	// Thing passwords, over MQTT onboarding.
	anon := h.anon()
	if got := anon.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "right"))); got != "200 " {
		t.Fatalf("first onboarding: %s", got)
	}
	for i := range 4 {
		if got := anon.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "guess"))); got != "403 WRONG_PASSWORD" {
			t.Fatalf("wrong password %d: %s", i+1, got)
		}
	}
	if got := anon.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "right"))); got != "429 TOO_MANY_REQUESTS" {
		t.Fatalf("right password while blocked: %s", got)
	}
	clock.add(time.Minute)
	if got := anon.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "right"))); got != "200 " {
		t.Fatalf("right password after the block: %s", got)
	}
}
