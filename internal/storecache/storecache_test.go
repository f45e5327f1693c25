package storecache_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/store/storetest"
	"github.com/thingif/thingif/internal/storecache"
)

func openSQLite(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "thingif.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConformance: the wrapper is a store like any other.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return storecache.New(openSQLite(t), storecache.Config{})
	})
}

// TestCachedRolesDeclared: every method of a role whose writes the cache
// invalidates is declared on Store itself, none reached through an embedded
// field. Then a method added to such a role does not compile until Store
// implements it, deciding its invalidation, and the roles cannot be passed
// through wholesale again by embedding them.
func TestCachedRolesDeclared(t *testing.T) {
	cached := []reflect.Type{
		reflect.TypeFor[store.Things](),
		reflect.TypeFor[store.Installations](),
		reflect.TypeFor[store.Tokens](),
		reflect.TypeFor[store.Users](),
		reflect.TypeFor[store.Triggers](),
	}
	for f := range reflect.TypeFor[storecache.Store]().Fields() {
		if !f.Anonymous {
			continue
		}
		promoted := f.Type
		if k := promoted.Kind(); k != reflect.Interface && k != reflect.Pointer {
			promoted = reflect.PointerTo(promoted)
		}
		for _, role := range cached {
			for m := range role.Methods() {
				if _, ok := promoted.MethodByName(m.Name); ok {
					t.Errorf("storecache.Store passes %s.%s through its embedded %s: implement it on Store, invalidating what it writes or saying why it needs not",
						role, m.Name, f.Name)
				}
			}
		}
	}
}

// closeStore records that it was closed.
type closeStore struct {
	store.Store
	closed bool
}

func (s *closeStore) Close() error { s.closed = true; return nil }

func TestCloseClosesInner(t *testing.T) {
	under := &closeStore{Store: openSQLite(t)}
	if err := storecache.New(under, storecache.Config{}).Close(); err != nil {
		t.Fatal(err)
	}
	if !under.closed {
		t.Fatal("Close did not close the inner store")
	}
}

// countingStore counts the reads that reach the store, and can hold a
// Token read until released.
type countingStore struct {
	store.Store
	tokens, installations, things, triggers atomic.Int64
	holdToken                               chan chan struct{} // if set, each Token read waits
}

func (s *countingStore) Token(ctx context.Context, hash string) (store.Token, error) {
	s.tokens.Add(1)
	t, err := s.Store.Token(ctx, hash)
	if s.holdToken != nil {
		release := <-s.holdToken
		<-release
	}
	return t, err
}

func (s *countingStore) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	s.installations.Add(1)
	return s.Store.InstallationByUsername(ctx, username)
}

func (s *countingStore) Thing(ctx context.Context, appID, thingID string) (store.Thing, error) {
	s.things.Add(1)
	return s.Store.Thing(ctx, appID, thingID)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	under *countingStore
	c     *storecache.Store
	clock *clock
}

func newFixture(t *testing.T, cfg storecache.Config) *fixture {
	t.Helper()
	f := &fixture{under: &countingStore{Store: openSQLite(t)}, clock: &clock{t: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)}}
	cfg.Now = f.clock.now
	f.c = storecache.New(f.under, cfg)
	ctx := t.Context()
	if err := f.c.PutApp(ctx, store.App{ID: "app1", KeyHash: "h"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func onboarding(thing, inst, user string, newThing bool) store.Onboarding {
	return store.Onboarding{
		Thing:    store.Thing{ID: thing, AppID: "app1", VendorThingID: "v-" + thing, PasswordHash: "p", ThingType: "lamp"},
		NewThing: newThing,
		Installation: store.Installation{ID: inst, AppID: "app1", ThingID: thing, MQTTTopic: "topic-" + inst,
			Username: user, PasswordHash: "ph", ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		Token: store.Token{Hash: "tok-" + user, AppID: "app1", Kind: store.TokenThing, Subject: thing},
	}
}

func TestInstallationCachedAtOnboarding(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user1", true)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		in, err := f.c.InstallationByUsername(ctx, "user1")
		if err != nil || in.ID != "in1" {
			t.Fatalf("InstallationByUsername = %+v, %v", in, err)
		}
	}
	if n := f.under.installations.Load(); n != 0 {
		t.Fatalf("%d store reads for an installation cached at onboarding, want 0", n)
	}

	// Onboarding again replaces the installation's credentials: the old
	// username stops working at once, the new one works.
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user2", false)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.InstallationByUsername(ctx, "user1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("old username after re-onboarding: err=%v, want ErrNotFound", err)
	}
	if in, err := f.c.InstallationByUsername(ctx, "user2"); err != nil || in.ID != "in1" {
		t.Fatalf("new username: %+v, %v", in, err)
	}

	if err := f.c.DeleteInstallation(ctx, "in1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.InstallationByUsername(ctx, "user2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted installation: err=%v, want ErrNotFound", err)
	}
}

func TestTokenCachedUntilDeleted(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	tok := store.Token{Hash: "h1", AppID: "app1", Kind: store.TokenApp, Subject: "app1"}
	if _, err := f.c.Token(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before PutToken: err=%v", err)
	}
	if err := f.c.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if got, err := f.c.Token(ctx, "h1"); err != nil || got.Subject != "app1" {
			t.Fatalf("Token = %+v, %v", got, err)
		}
	}
	// One miss before the put (not cached), one fill after it.
	if n := f.under.tokens.Load(); n != 2 {
		t.Fatalf("%d store reads, want 2", n)
	}
	if err := f.c.DeleteToken(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Token(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked token: err=%v, want ErrNotFound", err)
	}
}

// TestDeletedUsersTokenRefusedAtOnce: a cached token of a user stops
// working when the user is deleted, not a TTL later.
func TestDeletedUsersTokenRefusedAtOnce(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.CreateUser(ctx, store.User{ID: "u.1", AppID: "app1", Username: "alice", PasswordHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := f.c.PutToken(ctx, store.Token{Hash: "hu", AppID: "app1", Kind: store.TokenUser, Subject: "u.1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Token(ctx, "hu"); err != nil {
		t.Fatalf("Token before the delete: %v", err)
	}
	if err := f.c.DeleteUser(ctx, "app1", "u.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Token(ctx, "hu"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token of the deleted user: err=%v, want ErrNotFound", err)
	}
}

// TestFillRacingRevocation: a read that got the token from the store before
// it was revoked must not put it in the cache after the revocation.
func TestFillRacingRevocation(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.PutToken(ctx, store.Token{Hash: "h1", AppID: "app1", Kind: store.TokenApp}); err != nil {
		t.Fatal(err)
	}
	f.under.holdToken = make(chan chan struct{})
	read := make(chan error, 1)
	go func() {
		_, err := f.c.Token(ctx, "h1") // reads the row, then waits
		read <- err
	}()
	release := make(chan struct{})
	f.under.holdToken <- release // the read has the row
	if err := f.c.DeleteToken(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-read; err != nil {
		t.Fatalf("racing read: %v", err) // it did see the token: it read before the revocation
	}
	f.under.holdToken = nil
	if _, err := f.c.Token(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the revocation: err=%v, want ErrNotFound (the racing fill was kept)", err)
	}
}

func TestThingInvalidatedByUpdate(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user1", true)); err != nil {
		t.Fatal(err)
	}
	th, err := f.c.Thing(ctx, "app1", "th.1")
	if err != nil || th.ThingType != "lamp" {
		t.Fatalf("Thing = %+v, %v", th, err)
	}
	th.ThingType = "fan"
	if err := f.c.UpdateThing(ctx, th); err != nil {
		t.Fatal(err)
	}
	if got, err := f.c.Thing(ctx, "app1", "th.1"); err != nil || got.ThingType != "fan" {
		t.Fatalf("after UpdateThing: %+v, %v", got, err)
	}
	o := onboarding("th.1", "in1", "user2", false)
	o.Thing.ThingType = "heater"
	if err := f.c.SaveOnboarding(ctx, o); err != nil {
		t.Fatal(err)
	}
	if got, err := f.c.Thing(ctx, "app1", "th.1"); err != nil || got.ThingType != "heater" {
		t.Fatalf("after re-onboarding: %+v, %v", got, err)
	}
	if n := f.under.things.Load(); n != 3 {
		t.Fatalf("%d store reads, want 3 (one after each invalidation)", n)
	}
}

func TestThingInvalidatedByVendorThingIDUpdate(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user1", true)); err != nil {
		t.Fatal(err)
	}
	before, err := f.c.Thing(ctx, "app1", "th.1")
	if err != nil {
		t.Fatal(err)
	}
	u := store.VendorThingIDUpdate{AppID: "app1", ThingID: "th.1", VendorThingID: "renamed", PasswordHash: "new-hash"}
	if err := f.c.UpdateVendorThingID(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := f.c.Thing(ctx, "app1", "th.1")
	if err != nil {
		t.Fatal(err)
	}
	if got.VendorThingID != "renamed" || got.PasswordHash != "new-hash" {
		t.Fatalf("after UpdateVendorThingID: %q %q (was %q %q), want the new ones",
			got.VendorThingID, got.PasswordHash, before.VendorThingID, before.PasswordHash)
	}
}

func TestTTLAndBound(t *testing.T) {
	f := newFixture(t, storecache.Config{TTL: time.Minute, MaxEntries: 2})
	ctx := t.Context()
	for _, h := range []string{"a", "b", "c"} {
		if err := f.c.PutToken(ctx, store.Token{Hash: h, AppID: "app1", Kind: store.TokenApp}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Token(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	// Three fills into a table of two.
	if _, tokens, _, _ := f.c.Stats(); tokens.Entries != 2 {
		t.Fatalf("%d entries in a table of 2", tokens.Entries)
	}
	if _, err := f.c.Token(ctx, "c"); err != nil { // the last fill stays
		t.Fatal(err)
	}
	f.clock.add(time.Minute)
	before := f.under.tokens.Load()
	if _, err := f.c.Token(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if n := f.under.tokens.Load() - before; n != 1 {
		t.Fatalf("expired entry served from the cache (%d store reads)", n)
	}
	_, tokens, _, _ := f.c.Stats()
	if tokens.Hits == 0 || tokens.Misses == 0 {
		t.Fatalf("stats %+v", tokens)
	}
}

func (s *countingStore) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	s.triggers.Add(1)
	return s.Store.EnabledTriggers(ctx, thingID, eventSource)
}

// TestStateTriggersCached: the state triggers of a thing are read once and
// then served from memory until a trigger of the thing changes, its run
// state included; a caller's changes to its copy do not reach the cache.
func TestStateTriggersCached(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user1", true)); err != nil {
		t.Fatal(err)
	}
	get := func(want int) []store.Trigger {
		t.Helper()
		trs, err := f.c.EnabledTriggers(ctx, "th.1", store.EventStates)
		if err != nil || len(trs) != want {
			t.Fatalf("EnabledTriggers = %d triggers, %v; want %d", len(trs), err, want)
		}
		return trs
	}
	get(0)
	get(0)
	if n := f.under.triggers.Load(); n != 1 {
		t.Fatalf("%d store reads for two lookups, want 1", n)
	}
	tr := store.Trigger{ID: "tr1", AppID: "app1", ThingID: "th.1", EventSource: store.EventStates,
		Predicate: json.RawMessage(`{"eventSource":"STATES"}`)}
	if err := f.c.CreateTrigger(ctx, tr, 0); err != nil {
		t.Fatal(err)
	}
	trs := get(1)
	trs[0].Run.Satisfied = true // the caller's copy
	if get(1)[0].Run.Satisfied {
		t.Fatal("a caller's change reached the cache")
	}
	if err := f.c.SetTriggerRun(ctx, "th.1", "tr1", store.TriggerRun{Evaluated: true, Satisfied: true}); err != nil {
		t.Fatal(err)
	}
	if !get(1)[0].Run.Satisfied {
		t.Fatal("the stored run state is not seen after SetTriggerRun")
	}
	if err := f.c.DeleteTrigger(ctx, "th.1", "tr1"); err != nil {
		t.Fatal(err)
	}
	get(0)
	if n := f.under.triggers.Load(); n != 4 {
		t.Fatalf("%d store reads, want 4 (one after each change)", n)
	}
}

// TestPrunedTokenRefusedAtOnce: a cached thing token that PruneThingTokens
// deleted is gone from the cache with it, like a revoked one; the kept
// ones are still served from memory.
func TestPrunedTokenRefusedAtOnce(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	if err := f.c.SaveOnboarding(ctx, onboarding("th.1", "in1", "user1", true)); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"old", "new"} {
		if err := f.c.PutToken(ctx, store.Token{Hash: h, AppID: "app1", Kind: store.TokenThing, Subject: "th.1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.Token(ctx, h); err != nil { // cached
			t.Fatal(err)
		}
	}
	pruned, err := f.c.PruneThingTokens(ctx, "th.1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(pruned), 2; got != want {
		t.Fatalf("pruned %v, want %d tokens", pruned, want)
	}
	for _, h := range []string{"tok-user1", "old"} {
		if _, err := f.c.Token(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned token %s: err=%v, want ErrNotFound", h, err)
		}
	}
	reads := f.under.tokens.Load()
	if _, err := f.c.Token(ctx, "new"); err != nil {
		t.Fatalf("kept token: %v", err)
	}
	if got := f.under.tokens.Load(); got != reads {
		t.Fatalf("the kept token was read from the store again (%d reads, want %d)", got, reads)
	}
}

// TestExpiredTokenNotServedFromMemory: a token cached shortly before its
// expiry is read from the store once it has expired, so a token that
// DeleteExpiredTokens deleted is not found, as in the store.
func TestExpiredTokenNotServedFromMemory(t *testing.T) {
	f := newFixture(t, storecache.Config{})
	ctx := t.Context()
	exp := f.clock.now().Add(10 * time.Second)
	if err := f.c.PutToken(ctx, store.Token{Hash: "h1", AppID: "app1", Kind: store.TokenApp, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Token(ctx, "h1"); err != nil { // cached, for up to a minute
		t.Fatal(err)
	}
	f.clock.add(10 * time.Second)
	if n, err := f.c.DeleteExpiredTokens(ctx, f.clock.now()); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredTokens=%d, %v; want 1", n, err)
	}
	if _, err := f.c.Token(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired and deleted token: err=%v, want ErrNotFound", err)
	}
}
