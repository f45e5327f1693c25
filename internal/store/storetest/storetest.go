// Package storetest is the conformance suite for store.Store. Every backend
// runs it from its own tests against real storage:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... open an empty store ... })
//	}
//
// The suite checks the contract written in the store package's doc comments,
// plus the few choices every backend must share so that callers can rely on
// them (listed on Run).
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingif/thingif/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; Run closes it when the subtest that opened it ends.
//
// Beyond the doc comments of store.Store, Run requires that:
//   - PutApp on an existing app keeps its CreatedAt;
//   - creating a command, state or installation that refers to a thing that
//     does not exist fails with store.ErrNotFound;
//   - MarkDelivered of a command that does not exist fails with
//     store.ErrNotFound;
//   - CreateCommand with a command ID the thing already has, and PutToken
//     (or SaveOnboarding) with a token digest that is taken, fail with
//     store.ErrConflict;
//   - commands with equal CreatedAt are ordered by insertion, and pagination
//     keys stay valid while new commands are added;
//   - a StateMerge whose body is not a JSON object fails and changes nothing.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	newStore := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Apps", testApps},
		{"AppsOrder", testAppsOrder},
		{"PutAppReplaces", testPutAppReplaces},
		{"ThingRoundTrip", testThingRoundTrip},
		{"ThingNotFound", testThingNotFound},
		{"ThingConflicts", testThingConflicts},
		{"UpdateThing", testUpdateThing},
		{"UpdateVendorThingID", testUpdateVendorThingID},
		{"SaveOnboardingNewThing", testSaveOnboardingNewThing},
		{"SaveOnboardingExistingThing", testSaveOnboardingExistingThing},
		{"SaveOnboardingAtomic", testSaveOnboardingAtomic},
		{"SaveOnboardingConcurrent", testSaveOnboardingConcurrent},
		{"Installations", testInstallations},
		{"InstallationConflicts", testInstallationConflicts},
		{"DeleteInstallation", testDeleteInstallation},
		{"Tokens", testTokens},
		{"DeleteToken", testDeleteToken},
		{"DeleteExpiredTokens", testDeleteExpiredTokens},
		{"PruneThingTokens", testPruneThingTokens},
		{"CommandRoundTrip", testCommandRoundTrip},
		{"CommandNotFound", testCommandNotFound},
		{"PendingCommands", testPendingCommands},
		{"PendingCommandsPaging", testPendingCommandsPaging},
		{"MarkDelivered", testMarkDelivered},
		{"SetActionResults", testSetActionResults},
		{"CommandsPagination", testCommandsPagination},
		{"InvalidPaginationKey", testInvalidPaginationKey},
		{"StatesReplace", testStatesReplace},
		{"StatesMerge", testStatesMerge},
		{"StatesV1AndOrder", testStatesV1AndOrder},
		{"StatesErrors", testStatesErrors},
		{"ConcurrentWrites", testConcurrentWrites},
	}
	tests = append(tests, appSideTests...)
	tests = append(tests, historyTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

// base is the fixed time the suite's records are stamped from. It has
// millisecond precision, the least every backend keeps.
var base = time.UnixMilli(1_750_000_000_123).UTC()

// at returns base plus n seconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

// cmpOpts compare times by instant and JSON documents by value, keeping nil
// distinct from any document.
var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.Comparer(jsonEqual),
}

func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func diff(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpOpts...); d != "" {
		t.Fatalf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err=%v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Fixtures.

func newApp(id string) store.App {
	return store.App{ID: id, KeyHash: "$argon2id$key-" + id, AllowAnonymous: true, CreatedAt: at(0)}
}

func newThing(appID, id, vendorID string) store.Thing {
	return store.Thing{
		ID: id, AppID: appID, VendorThingID: vendorID, PasswordHash: "$argon2id$pw-" + id,
		ThingType: "AirConditioner", FirmwareVersion: "v1.0", LayoutPosition: "STANDALONE",
		Properties: json.RawMessage(`{"location":"kitchen","floor":2}`), DataGroupingInterval: "15_MINUTES",
		CreatedAt: at(1), ModifiedAt: at(1),
	}
}

func newInstallation(appID, thingID, id string) store.Installation {
	return store.Installation{
		ID: id, AppID: appID, ThingID: thingID, DeviceType: "MQTT",
		MQTTTopic: "topic-" + id, Username: "user-" + id, PasswordHash: "digest-" + id,
		ExpiresAt: at(3600), CreatedAt: at(2),
	}
}

func newToken(appID, subject, hash string) store.Token {
	return store.Token{Hash: hash, AppID: appID, Kind: store.TokenThing, Subject: subject, CreatedAt: at(2)}
}

func onboarding(appID, thingID, vendorID, instID, tokenHash string) store.Onboarding {
	return store.Onboarding{
		Thing: newThing(appID, thingID, vendorID), NewThing: true,
		Installation: newInstallation(appID, thingID, instID),
		Token:        newToken(appID, thingID, tokenHash),
	}
}

// setup stores app "app1" and thing "th.1" (vendor "v1") with installation
// "in1" and token "tok1".
func setup(t *testing.T, s store.Store) {
	t.Helper()
	must(t, "PutApp", s.PutApp(t.Context(), newApp("app1")))
	must(t, "SaveOnboarding", s.SaveOnboarding(t.Context(), onboarding("app1", "th.1", "v1", "in1", "tok1")))
}

// Apps.

func testApps(t *testing.T, s store.Store) {
	ctx := t.Context()
	apps, err := s.Apps(ctx)
	must(t, "Apps on empty store", err)
	if len(apps) != 0 {
		t.Fatalf("Apps on empty store=%v, want none", apps)
	}
	_, err = s.App(ctx, "app1")
	wantErr(t, "App of missing app", err, store.ErrNotFound)

	for _, a := range []store.App{
		newApp("app1"),
		{ID: "app2", KeyHash: "h2", AllowAnonymous: false, CreatedAt: at(5)},
		{ID: "app3", KeyHash: "h3"}, // zero CreatedAt
	} {
		must(t, "PutApp", s.PutApp(ctx, a))
		got, err := s.App(ctx, a.ID)
		must(t, "App", err)
		diff(t, "App "+a.ID, got, a)
	}
}

func testAppsOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, a := range []store.App{
		{ID: "b", KeyHash: "h", CreatedAt: at(2)},
		{ID: "c", KeyHash: "h", CreatedAt: at(3)},
		{ID: "a", KeyHash: "h", CreatedAt: at(1)},
	} {
		must(t, "PutApp", s.PutApp(ctx, a))
	}
	apps, err := s.Apps(ctx)
	must(t, "Apps", err)
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	diff(t, "Apps order", ids, []string{"a", "b", "c"})
}

func testPutAppReplaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutApp", s.PutApp(ctx, store.App{ID: "app1", KeyHash: "old", AllowAnonymous: true, CreatedAt: at(1)}))
	must(t, "PutApp again", s.PutApp(ctx, store.App{ID: "app1", KeyHash: "new", AllowAnonymous: false, CreatedAt: at(9)}))
	got, err := s.App(ctx, "app1")
	must(t, "App", err)
	diff(t, "replaced app", got, store.App{ID: "app1", KeyHash: "new", AllowAnonymous: false, CreatedAt: at(1)})
	apps, err := s.Apps(ctx)
	must(t, "Apps", err)
	if len(apps) != 1 {
		t.Fatalf("Apps after replace: %d apps, want 1", len(apps))
	}
}
