package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
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

// dialRawFrom is dialRaw from the local address from (all of 127/8 is lo
// on Linux).
func dialRawFrom(t testing.TB, from, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// restFrom posts an onboarding over REST from the local address from and
// returns "<status> <errorCode>" and the Retry-After header.
func restFrom(t testing.TB, from, base, token, vendorThingID, password string) (string, string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequest("POST", base+"/thing-if/apps/"+testAppID+"/onboardings", strings.NewReader(onboardingBody(vendorThingID, password)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctVTID)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e struct{ ErrorCode string }
	_ = json.NewDecoder(res.Body).Decode(&e)
	return strings.TrimSpace(fmt.Sprintf("%d %s", res.StatusCode, e.ErrorCode)), res.Header.Get("Retry-After")
}

// TestGuesserCannotLockOutDevice: a guesser at 127.0.0.2 sends wrong
// thing passwords over MQTT and REST; it is refused 429 (with Retry-After
// over REST) once its free failures are spent, while the device at
// 127.0.0.1 is answered 200 every time, over MQTT and REST alike.
func TestGuesserCannotLockOutDevice(t *testing.T) {
	clock := &testClock{t: time.Unix(1_700_000_000, 0)} // never moves: blocks never end
	cfg := testConfig(t, t.TempDir())
	cfg.Limits.BruteForce = limit.Config{Free: 3, Base: time.Minute, Max: 4 * time.Minute, Now: clock.now}
	s := startServer(t, cfg)
	onboardAddr, base := s.Addr("onboard-tcp").String(), "http://"+s.Addr("http").String()
	anonFrom := func(from string) *rawConn {
		c := dialRawFrom(t, from, onboardAddr)
		c.connect(4, "anonymous", anonUser, anonPass)
		return c
	}
	device, guesser := anonFrom("127.0.0.1"), anonFrom("127.0.0.2")
	ask := func(c *rawConn, password string) string {
		return c.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", password)))
	}
	if got := ask(device, "right"); got != "200 " {
		t.Fatalf("first onboarding: %s", got)
	}
	var anonTok struct {
		AccessToken string `json:"access_token"`
	}
	if code := rest(t, s, "POST", "/api/apps/"+testAppID+"/oauth2/token", "", "application/json",
		`{"grant_type":"client_credentials","client_id":"`+testAppID+`","client_secret":"dummy"}`, &anonTok); code != 200 {
		t.Fatalf("anonymous token: %d", code)
	}
	for i := range 12 {
		var got, retry string
		if i%2 == 0 {
			got = ask(guesser, fmt.Sprint("guess", i))
		} else {
			got, retry = restFrom(t, "127.0.0.2", base, anonTok.AccessToken, "vt", fmt.Sprint("guess", i))
		}
		want := "429 TOO_MANY_REQUESTS"
		if i < 4 {
			want = "403 WRONG_PASSWORD"
		}
		if got != want {
			t.Fatalf("guess %d: %s, want %s", i, got, want)
		}
		if i >= 4 && i%2 == 1 && retry == "" {
			t.Fatalf("guess %d: 429 without Retry-After", i)
		}
		if got := ask(device, "right"); got != "200 " {
			t.Fatalf("device over MQTT after guess %d: %s", i, got)
		}
		if got, _ := restFrom(t, "127.0.0.1", base, anonTok.AccessToken, "vt", "right"); got != "200" {
			t.Fatalf("device over REST after guess %d: %s", i, got)
		}
	}
}

// TestRehashAfterCostRaise: a server restarted with a higher
// --password-hash-* cost replaces the app key's hash at the first
// onboarding CONNECT with the right key, and a thing's at its next
// onboarding, each by a hash at the new cost.
func TestRehashAfterCostRaise(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s := startServer(t, cfg)
	h := &hostileEnv{t: t, s: s, onboardAddr: s.Addr("onboard-tcp").String()}
	if got := h.anon().ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "pw"))); got != "200 " {
		t.Fatalf("first onboarding: %s", got)
	}
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	cfg.PasswordCost = secret.Cost{Time: 2, Memory: 128, Threads: 1}
	s = startServer(t, cfg)
	const prefix = "$argon2id$v=19$m=128,t=2,p=1$"
	app, err := s.store.App(ctx, testAppID)
	if err != nil || strings.HasPrefix(app.KeyHash, prefix) {
		t.Fatalf("app key before any CONNECT: %v %s (want it still at the old cost)", err, app.KeyHash)
	}
	h = &hostileEnv{t: t, s: s, onboardAddr: s.Addr("onboard-tcp").String()}
	anon := h.anon() // the CONNECT checks the app key
	if app, _ := s.store.App(ctx, testAppID); !strings.HasPrefix(app.KeyHash, prefix) {
		t.Fatalf("app key after a CONNECT: %s, want %s…", app.KeyHash, prefix)
	}
	if got := anon.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", "pw"))); got != "200 " {
		t.Fatalf("re-onboarding: %s", got)
	}
	th, err := s.store.ThingByVendorID(ctx, testAppID, "vt")
	if err != nil || !strings.HasPrefix(th.PasswordHash, prefix) {
		t.Fatalf("thing password after re-onboarding: %v %s, want %s…", err, th.PasswordHash, prefix)
	}
	if ok, _ := secret.VerifyPassword(th.PasswordHash, "pw"); !ok {
		t.Fatal("the rehashed thing password does not verify")
	}
}
