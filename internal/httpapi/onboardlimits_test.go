package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

const ctByVendor = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"

// onboardFrom onboards vendorThingID with password as the app admin from
// the local address from.
func (e *env) onboardFrom(from, tok, vendorThingID, password string) resp {
	e.t.Helper()
	return e.doFrom(from, "POST", "/thing-if/apps/"+testApp+"/onboardings",
		fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":%q}`, vendorThingID, password),
		with(bearer(tok), "Content-Type", ctByVendor)...)
}

// TestGuesserCannotLockOutThing: a guesser at 127.0.0.2 is blocked (429
// with Retry-After) after its free failures, while the device at 127.0.0.1
// keeps onboarding with its right password every time.
func TestGuesserCannotLockOutThing(t *testing.T) {
	_, opt := withLimiter(3) // the limiter's clock never moves: blocks never end here
	e := newEnv(t, opt)
	admin := e.appToken(testApp, testAppKey)
	check(t, e.onboardFrom("127.0.0.1", admin, "v-1", "right"), 200, "")
	for i := range 20 {
		r := e.onboardFrom("127.0.0.2", admin, "v-1", fmt.Sprint("guess", i))
		if i < 4 {
			check(t, r, http.StatusForbidden, "WRONG_PASSWORD")
		} else {
			check(t, r, http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
			if r.header.Get("Retry-After") == "" {
				t.Fatalf("guess %d: 429 without Retry-After", i)
			}
		}
		check(t, e.onboardFrom("127.0.0.1", admin, "v-1", "right"), 200, "")
	}
	// The guesser is refused even with the right password: its address is
	// blocked, and it is not the thing's.
	check(t, e.onboardFrom("127.0.0.2", admin, "v-1", "right"), http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
}

// TestDistributedGuesserIsBoundedPerThing: a guesser spreading over many
// addresses, one guess each, gets its guesses verified only until the
// thing's own budget is spent; the thing's own address is still served.
func TestDistributedGuesserIsBoundedPerThing(t *testing.T) {
	const free = 3
	_, opt := withLimiter(free)
	e := newEnv(t, opt)
	admin := e.appToken(testApp, testAppKey)
	check(t, e.onboardFrom("127.0.0.1", admin, "v-1", "right"), 200, "")
	verified := 0
	for i := range 50 {
		r := e.onboardFrom(fmt.Sprintf("127.0.1.%d", i+1), admin, "v-1", fmt.Sprint("guess", i))
		switch r.status {
		case http.StatusForbidden:
			verified++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("guess %d: %d %s", i, r.status, r.body)
		}
		check(t, e.onboardFrom("127.0.0.1", admin, "v-1", "right"), 200, "")
	}
	if got, want := verified, free+1; got != want {
		t.Fatalf("guesses verified from 50 addresses = %d, want %d (the free failures and the one that blocks)", got, want)
	}
	// An address the thing never onboarded from waits out the thing's
	// block like the guessers.
	check(t, e.onboardFrom("127.0.2.1", admin, "v-1", "right"), http.StatusTooManyRequests, "TOO_MANY_REQUESTS")
}

// TestGuesserOverMQTTCannotLockOutThing is TestGuesserCannotLockOutThing
// for requests that arrived on the onboarding broker (their RemoteAddr is
// the connection's).
func TestGuesserOverMQTTCannotLockOutThing(t *testing.T) {
	_, opt := withLimiter(3)
	e := newEnv(t, opt)
	topic := "p/anonymous/thing-if/apps/" + testApp + "/onboardings"
	caller := Caller{Broker: OnboardingBroker, AppID: testApp}
	ask := func(from, password string) mqttAnswer {
		t.Helper()
		return e.mqttFrom(from+":40000", caller, topic, "POST\nContent-Type: "+ctByVendor+"\n\n"+
			fmt.Sprintf(`{"vendorThingID":"v-1","thingPassword":%q}`, password))
	}
	checkMQTT(t, ask("127.0.0.1", "right"), 200, "")
	for i := range 10 {
		a := ask("127.0.0.2", fmt.Sprint("guess", i))
		if i < 4 {
			checkMQTT(t, a, 403, "WRONG_PASSWORD")
		} else {
			checkMQTT(t, a, 429, "TOO_MANY_REQUESTS")
			if !strings.Contains(string(a.raw), "Retry-After: ") {
				t.Fatalf("429 without Retry-After:\n%s", a.raw)
			}
		}
		checkMQTT(t, ask("127.0.0.1", "right"), 200, "")
	}
}

// withBuckets sets the registration limits with a shared injected clock.
func withBuckets(c *limitClock, perAddr, perApp limit.BucketConfig) func(*Config) {
	perAddr.Now, perApp.Now = c.now, c.now
	return func(cfg *Config) {
		cfg.RegistrationsPerAddr = limit.NewBuckets(perAddr)
		cfg.RegistrationsPerApp = limit.NewBuckets(perApp)
	}
}

func TestRegistrationRate(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		clock := &limitClock{t: time.Unix(1_700_000_000, 0)}
		e := newEnv(t, withBuckets(clock, limit.BucketConfig{Rate: 1, Burst: 2}, limit.BucketConfig{Rate: -1}))
		admin := e.appToken(testApp, testAppKey)
		check(t, e.onboardFrom("127.0.0.1", admin, "a1", "pw"), 200, "")
		check(t, e.onboardFrom("127.0.0.1", admin, "a2", "pw"), 200, "")
		r := e.onboardFrom("127.0.0.1", admin, "a3", "pw")
		check(t, r, http.StatusTooManyRequests, "TOO_MANY_REGISTRATIONS")
		if got, want := r.header.Get("Retry-After"), "1"; got != want {
			t.Fatalf("Retry-After %q, want %q", got, want)
		}
		if _, err := e.st.ThingByVendorID(context.Background(), testApp, "a3"); err == nil {
			t.Fatal("a refused registration stored its thing")
		}
		// Re-onboarding a known thing costs no token.
		for range 5 {
			check(t, e.onboardFrom("127.0.0.1", admin, "a1", "pw"), 200, "")
		}
		// Another address has its own bucket.
		check(t, e.onboardFrom("127.0.0.2", admin, "b1", "pw"), 200, "")
		clock.add(time.Second)
		check(t, e.onboardFrom("127.0.0.1", admin, "a3", "pw"), 200, "")
	})
	t.Run("per app", func(t *testing.T) {
		clock := &limitClock{t: time.Unix(1_700_000_000, 0)}
		e := newEnv(t, withBuckets(clock, limit.BucketConfig{Rate: -1}, limit.BucketConfig{Rate: 0.5, Burst: 3}))
		admin := e.appToken(testApp, testAppKey)
		for i := range 3 {
			check(t, e.onboardFrom(fmt.Sprintf("127.0.3.%d", i+1), admin, fmt.Sprint("t", i), "pw"), 200, "")
		}
		r := e.onboardFrom("127.0.3.9", admin, "t3", "pw")
		check(t, r, http.StatusTooManyRequests, "TOO_MANY_REGISTRATIONS")
		if got, want := r.header.Get("Retry-After"), "2"; got != want {
			t.Fatalf("Retry-After %q, want %q", got, want)
		}
		check(t, e.onboardFrom("127.0.3.9", admin, "t0", "pw"), 200, "") // known thing
		clock.add(2 * time.Second)
		check(t, e.onboardFrom("127.0.3.9", admin, "t3", "pw"), 200, "")
	})
}

// TestRehashOnLogin: a thing password or app key hashed below the
// configured cost is replaced, on its next success, by a hash at that cost;
// a current hash is left as it is, and a wrong password changes nothing.
func TestRehashOnLogin(t *testing.T) {
	target := secret.Cost{Time: 2, Memory: 128, Threads: 1}
	e := newEnv(t, func(c *Config) { c.Verifier = secret.NewVerifier(secret.VerifierConfig{Cost: target}) })
	ctx := context.Background()
	prefix := "$argon2id$v=19$m=128,t=2,p=1$"

	// App key: stored at testCost by newEnv.
	if app, _ := e.st.App(ctx, testApp); strings.HasPrefix(app.KeyHash, prefix) {
		t.Fatal("setup: app key already at the target cost")
	}
	admin := e.appToken(testApp, testAppKey)
	app, err := e.st.App(ctx, testApp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(app.KeyHash, prefix) || !app.AllowAnonymous {
		t.Fatalf("app after a token request: %+v; want its key at %s", app, prefix)
	}
	if ok, _ := secret.VerifyPassword(app.KeyHash, testAppKey); !ok {
		t.Fatal("the rehashed app key does not verify")
	}

	// Thing password: a thing registered at a lower cost.
	old, _ := secret.HashPassword("pw", testCost)
	now := time.Now()
	if err := e.st.SaveOnboarding(ctx, store.Onboarding{
		NewThing:     true,
		Thing:        store.Thing{ID: "th.old", AppID: testApp, VendorThingID: "old", PasswordHash: old, CreatedAt: now, ModifiedAt: now},
		Installation: store.Installation{ID: "in.old", AppID: testApp, ThingID: "th.old", DeviceType: "MQTT", MQTTTopic: "topic.old", Username: "user.old", CreatedAt: now},
		Token:        store.Token{Hash: "tok.old", AppID: testApp, Kind: store.TokenThing, Subject: "th.old", CreatedAt: now},
	}); err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		th, err := e.st.Thing(ctx, testApp, "th.old")
		if err != nil {
			t.Fatal(err)
		}
		return th.PasswordHash
	}
	check(t, e.onboardRaw(admin, "old", "wrong", ""), 403, "WRONG_PASSWORD")
	if got := stored(); got != old {
		t.Fatalf("a wrong password changed the hash to %s", got)
	}
	check(t, e.onboardRaw(admin, "old", "pw", ""), 200, "")
	rehashed := stored()
	if !strings.HasPrefix(rehashed, prefix) {
		t.Fatalf("hash after onboarding %s, want one at %s", rehashed, prefix)
	}
	if ok, _ := secret.VerifyPassword(rehashed, "pw"); !ok {
		t.Fatal("the rehashed password does not verify")
	}
	check(t, e.onboardRaw(admin, "old", "pw", ""), 200, "")
	if got := stored(); got != rehashed {
		t.Fatal("a current hash was replaced again")
	}
	// A thing registered now gets the target cost at once.
	e.onboard("new", "pw")
	if th, _ := e.st.ThingByVendorID(ctx, testApp, "new"); !strings.HasPrefix(th.PasswordHash, prefix) {
		t.Fatalf("new thing's hash %s, want %s", th.PasswordHash, prefix)
	}
}
