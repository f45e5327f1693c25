package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

func testThingRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutApp", s.PutApp(ctx, newApp("app1")))

	full := newThing("app1", "th.full", "v-full")
	bare := store.Thing{ID: "th.bare", AppID: "app1", VendorThingID: "v-bare", PasswordHash: "p"} // nil JSON, zero times
	emptyProps := newThing("app1", "th.empty", "v-empty")
	emptyProps.Properties = json.RawMessage(`{}`)

	for i, th := range []store.Thing{full, bare, emptyProps} {
		o := onboarding("app1", th.ID, th.VendorThingID, fmt.Sprint("in", i), fmt.Sprint("tok", i))
		o.Thing = th
		must(t, "SaveOnboarding", s.SaveOnboarding(ctx, o))

		got, err := s.Thing(ctx, "app1", th.ID)
		must(t, "Thing", err)
		diff(t, "Thing "+th.ID, got, th)
		got, err = s.ThingByVendorID(ctx, "app1", th.VendorThingID)
		must(t, "ThingByVendorID", err)
		diff(t, "ThingByVendorID "+th.VendorThingID, got, th)
	}
}

func testThingNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp", s.PutApp(ctx, newApp("app2")))
	tests := []struct {
		name string
		err  error
	}{
		{"Thing missing", func() error { _, err := s.Thing(ctx, "app1", "th.nope"); return err }()},
		{"Thing of other app", func() error { _, err := s.Thing(ctx, "app2", "th.1"); return err }()},
		{"ThingByVendorID missing", func() error { _, err := s.ThingByVendorID(ctx, "app1", "nope"); return err }()},
		{"ThingByVendorID of other app", func() error { _, err := s.ThingByVendorID(ctx, "app2", "v1"); return err }()},
	}
	for _, tt := range tests {
		wantErr(t, tt.name, tt.err, store.ErrNotFound)
	}
}

func testThingConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp", s.PutApp(ctx, newApp("app2")))

	err := s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v1", "in2", "tok2"))
	wantErr(t, "same vendorThingID in one app", err, store.ErrConflict)

	err = s.SaveOnboarding(ctx, onboarding("app1", "th.1", "v2", "in2", "tok2"))
	wantErr(t, "same thing ID", err, store.ErrConflict)

	must(t, "same vendorThingID in another app", s.SaveOnboarding(ctx, onboarding("app2", "th.2", "v1", "in2", "tok2")))
	got, err := s.ThingByVendorID(ctx, "app2", "v1")
	must(t, "ThingByVendorID app2", err)
	if got.ID != "th.2" {
		t.Fatalf("ThingByVendorID(app2, v1).ID=%q, want th.2", got.ID)
	}
	got, err = s.ThingByVendorID(ctx, "app1", "v1")
	must(t, "ThingByVendorID app1", err)
	if got.ID != "th.1" {
		t.Fatalf("ThingByVendorID(app1, v1).ID=%q, want th.1", got.ID)
	}
}

func testUpdateThing(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	orig, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)

	upd := orig
	upd.ThingType = "Heater"
	upd.FirmwareVersion = "v2.0"
	upd.LayoutPosition = "GATEWAY"
	upd.Properties = nil
	upd.DataGroupingInterval = "1_HOUR"
	upd.ModifiedAt = at(100)
	// Immutable fields: must not change.
	upd.VendorThingID = "changed"
	upd.PasswordHash = "changed"
	upd.CreatedAt = at(99)
	must(t, "UpdateThing", s.UpdateThing(ctx, upd))

	want := orig
	want.ThingType, want.FirmwareVersion, want.LayoutPosition = "Heater", "v2.0", "GATEWAY"
	want.Properties, want.DataGroupingInterval, want.ModifiedAt = nil, "1_HOUR", at(100)
	got, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	diff(t, "updated thing", got, want)

	upd.Properties = json.RawMessage(`{"room":"b"}`)
	must(t, "UpdateThing with properties", s.UpdateThing(ctx, upd))
	got, err = s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	diff(t, "updated properties", got.Properties, upd.Properties)

	missing := newThing("app1", "th.nope", "v-nope")
	wantErr(t, "UpdateThing missing", s.UpdateThing(ctx, missing), store.ErrNotFound)
	otherApp := orig
	otherApp.AppID = "app2"
	wantErr(t, "UpdateThing in other app", s.UpdateThing(ctx, otherApp), store.ErrNotFound)
}

func testSaveOnboardingNewThing(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutApp", s.PutApp(ctx, newApp("app1")))
	o := onboarding("app1", "th.1", "v1", "in1", "tok1")
	must(t, "SaveOnboarding", s.SaveOnboarding(ctx, o))

	th, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	diff(t, "thing", th, o.Thing)
	in, err := s.Installation(ctx, "app1", "in1")
	must(t, "Installation", err)
	diff(t, "installation", in, o.Installation)
	tok, err := s.Token(ctx, "tok1")
	must(t, "Token", err)
	diff(t, "token", tok, o.Token)
}

func testSaveOnboardingExistingThing(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	orig, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)

	o := store.Onboarding{Thing: orig, NewThing: false}
	o.Thing.FirmwareVersion = "v9"
	o.Thing.ThingType = "Lamp"
	o.Thing.Properties = json.RawMessage(`{"new":true}`)
	o.Thing.ModifiedAt = at(50)
	o.Installation = newInstallation("app1", "th.1", "in1") // same ID: replaced
	o.Installation.PasswordHash = "rotated"
	o.Installation.MQTTTopic = "topic-rotated"
	o.Installation.ExpiresAt = at(7200)
	o.Token = newToken("app1", "th.1", "tok2")
	must(t, "SaveOnboarding existing", s.SaveOnboarding(ctx, o))

	th, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	diff(t, "updated thing", th, o.Thing)
	in, err := s.Installation(ctx, "app1", "in1")
	must(t, "Installation", err)
	diff(t, "replaced installation", in, o.Installation)
	ins, err := s.Installations(ctx, "th.1")
	must(t, "Installations", err)
	if len(ins) != 1 {
		t.Fatalf("Installations: %d, want 1 (replaced, not added)", len(ins))
	}
	for _, h := range []string{"tok1", "tok2"} {
		_, err := s.Token(ctx, h)
		must(t, "Token "+h, err)
	}

	// A rehash replaces the password hash in the same onboarding; without
	// one (above) the stored hash stays.
	o.Token = newToken("app1", "th.1", "tok3")
	o.PasswordHash = "$argon2id$rehashed"
	must(t, "SaveOnboarding with rehash", s.SaveOnboarding(ctx, o))
	th, err = s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	if got, want := th.PasswordHash, o.PasswordHash; got != want {
		t.Fatalf("PasswordHash after a rehash = %q, want %q", got, want)
	}

	// An existing-thing onboarding of a thing that does not exist stores
	// nothing.
	o = onboarding("app1", "th.ghost", "v-ghost", "in-ghost", "tok-ghost")
	o.NewThing = false
	wantErr(t, "SaveOnboarding of missing thing", s.SaveOnboarding(ctx, o), store.ErrNotFound)
	_, err = s.Installation(ctx, "app1", "in-ghost")
	wantErr(t, "installation after failed onboarding", err, store.ErrNotFound)
	_, err = s.Token(ctx, "tok-ghost")
	wantErr(t, "token after failed onboarding", err, store.ErrNotFound)
}

func testSaveOnboardingAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s) // th.1, v1, in1 (topic-in1, user-in1), tok1

	tests := []struct {
		name   string
		modify func(o *store.Onboarding)
	}{
		{"vendorThingID taken", func(o *store.Onboarding) { o.Thing.VendorThingID = "v1" }},
		{"thing ID taken", func(o *store.Onboarding) { o.Thing.ID = "th.1" }},
		{"mqttTopic taken", func(o *store.Onboarding) { o.Installation.MQTTTopic = "topic-in1" }},
		{"username taken", func(o *store.Onboarding) { o.Installation.Username = "user-in1" }},
		{"token taken", func(o *store.Onboarding) { o.Token.Hash = "tok1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := onboarding("app1", "th.new", "v-new", "in-new", "tok-new")
			tt.modify(&o)
			wantErr(t, "SaveOnboarding", s.SaveOnboarding(ctx, o), store.ErrConflict)

			if o.Thing.ID != "th.1" {
				_, err := s.Thing(ctx, "app1", o.Thing.ID)
				wantErr(t, "thing after failed onboarding", err, store.ErrNotFound)
			}
			if o.Thing.VendorThingID != "v1" {
				_, err := s.ThingByVendorID(ctx, "app1", o.Thing.VendorThingID)
				wantErr(t, "thing by vendor ID after failed onboarding", err, store.ErrNotFound)
			}
			_, err := s.Installation(ctx, "app1", "in-new")
			wantErr(t, "installation after failed onboarding", err, store.ErrNotFound)
			if o.Token.Hash != "tok1" {
				_, err = s.Token(ctx, o.Token.Hash)
				wantErr(t, "token after failed onboarding", err, store.ErrNotFound)
			}
			// The existing records are untouched.
			th, err := s.Thing(ctx, "app1", "th.1")
			must(t, "Thing th.1", err)
			diff(t, "th.1", th, newThing("app1", "th.1", "v1"))
			in, err := s.Installation(ctx, "app1", "in1")
			must(t, "Installation in1", err)
			diff(t, "in1", in, newInstallation("app1", "th.1", "in1"))
			tok, err := s.Token(ctx, "tok1")
			must(t, "Token tok1", err)
			diff(t, "tok1", tok, newToken("app1", "th.1", "tok1"))
		})
	}
}

func testSaveOnboardingConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutApp", s.PutApp(ctx, newApp("app1")))
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.SaveOnboarding(ctx, onboarding("app1", fmt.Sprint("th.", i), "same-vendor-id",
				fmt.Sprint("in", i), fmt.Sprint("tok", i)))
		})
	}
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("SaveOnboarding %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("SaveOnboarding %d: err=%v, want nil or %v", i, err, store.ErrConflict)
		}
	}
	if winner < 0 {
		t.Fatal("no SaveOnboarding succeeded")
	}
	th, err := s.ThingByVendorID(ctx, "app1", "same-vendor-id")
	must(t, "ThingByVendorID", err)
	if want := fmt.Sprint("th.", winner); th.ID != want {
		t.Fatalf("stored thing %q, want the winner's %q", th.ID, want)
	}
	for i := range n {
		_, errIn := s.Installation(ctx, "app1", fmt.Sprint("in", i))
		_, errTok := s.Token(ctx, fmt.Sprint("tok", i))
		if i == winner {
			must(t, "winner's installation", errIn)
			must(t, "winner's token", errTok)
			continue
		}
		wantErr(t, fmt.Sprint("loser ", i, " installation"), errIn, store.ErrNotFound)
		wantErr(t, fmt.Sprint("loser ", i, " token"), errTok, store.ErrNotFound)
	}
}

// Installations.

func testInstallations(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))

	ins, err := s.Installations(ctx, "th.nope")
	must(t, "Installations of unknown thing", err)
	if len(ins) != 0 {
		t.Fatalf("Installations of unknown thing=%v, want none", ins)
	}

	// Not yet issued: empty password hash and zero expiry.
	unissued := store.Installation{ID: "in2", AppID: "app1", ThingID: "th.1", DeviceType: "MQTT",
		MQTTTopic: "t2", Username: "u2", CreatedAt: at(10)}
	must(t, "PutInstallation", s.PutInstallation(ctx, unissued))
	newest := newInstallation("app1", "th.1", "in3")
	newest.CreatedAt = at(20)
	must(t, "PutInstallation", s.PutInstallation(ctx, newest))

	got, err := s.Installation(ctx, "app1", "in2")
	must(t, "Installation", err)
	diff(t, "unissued installation", got, unissued)
	got, err = s.InstallationByUsername(ctx, "u2")
	must(t, "InstallationByUsername", err)
	diff(t, "installation by username", got, unissued)

	ins, err = s.Installations(ctx, "th.1")
	must(t, "Installations", err)
	diff(t, "Installations newest first", ins, []store.Installation{
		newest, unissued, newInstallation("app1", "th.1", "in1"),
	})

	// Replacing by ID keeps one installation.
	issued := unissued
	issued.PasswordHash = "digest"
	issued.ExpiresAt = at(3600)
	must(t, "PutInstallation replace", s.PutInstallation(ctx, issued))
	got, err = s.Installation(ctx, "app1", "in2")
	must(t, "Installation", err)
	diff(t, "issued installation", got, issued)
	ins, err = s.Installations(ctx, "th.1")
	must(t, "Installations", err)
	if len(ins) != 3 {
		t.Fatalf("Installations after replace: %d, want 3", len(ins))
	}

	_, err = s.Installation(ctx, "app1", "nope")
	wantErr(t, "Installation missing", err, store.ErrNotFound)
	_, err = s.Installation(ctx, "app2", "in2")
	wantErr(t, "Installation of other app", err, store.ErrNotFound)
	_, err = s.InstallationByUsername(ctx, "nope")
	wantErr(t, "InstallationByUsername missing", err, store.ErrNotFound)
	err = s.PutInstallation(ctx, newInstallation("app1", "th.nope", "in-x"))
	wantErr(t, "PutInstallation of unknown thing", err, store.ErrNotFound)
}

func testInstallationConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s) // in1: topic-in1, user-in1

	dupTopic := newInstallation("app1", "th.1", "in2")
	dupTopic.MQTTTopic = "topic-in1"
	wantErr(t, "duplicate mqttTopic", s.PutInstallation(ctx, dupTopic), store.ErrConflict)
	dupUser := newInstallation("app1", "th.1", "in2")
	dupUser.Username = "user-in1"
	wantErr(t, "duplicate username", s.PutInstallation(ctx, dupUser), store.ErrConflict)
	_, err := s.Installation(ctx, "app1", "in2")
	wantErr(t, "installation after conflicts", err, store.ErrNotFound)

	// Moving in2 onto in1's topic by replacement is a conflict too.
	must(t, "PutInstallation in2", s.PutInstallation(ctx, newInstallation("app1", "th.1", "in2")))
	moved := newInstallation("app1", "th.1", "in2")
	moved.MQTTTopic = "topic-in1"
	wantErr(t, "replace onto taken mqttTopic", s.PutInstallation(ctx, moved), store.ErrConflict)
	got, err := s.Installation(ctx, "app1", "in2")
	must(t, "Installation in2", err)
	diff(t, "in2 unchanged", got, newInstallation("app1", "th.1", "in2"))
}

func testDeleteInstallation(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "DeleteInstallation", s.DeleteInstallation(ctx, "in1"))
	_, err := s.Installation(ctx, "app1", "in1")
	wantErr(t, "Installation after delete", err, store.ErrNotFound)
	_, err = s.InstallationByUsername(ctx, "user-in1")
	wantErr(t, "InstallationByUsername after delete", err, store.ErrNotFound)
	must(t, "DeleteInstallation again", s.DeleteInstallation(ctx, "in1"))
	must(t, "DeleteInstallation never existed", s.DeleteInstallation(ctx, "nope"))
	// The topic and username are free again.
	must(t, "PutInstallation reusing topic", s.PutInstallation(ctx, newInstallation("app1", "th.1", "in1")))
}

// Tokens.

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, "PutApp", s.PutApp(ctx, newApp("app1")))
	tokens := []store.Token{
		{Hash: "h-app", AppID: "app1", Kind: store.TokenApp, CreatedAt: at(1), ExpiresAt: at(3600)},
		{Hash: "h-anon", AppID: "app1", Kind: store.TokenAnonymous, CreatedAt: at(1)},
		{Hash: "h-thing", AppID: "app1", Kind: store.TokenThing, Subject: "th.1", CreatedAt: at(2)},
		{Hash: "h-user", AppID: "app1", Kind: store.TokenUser, Subject: "user-1", CreatedAt: at(3), ExpiresAt: at(-10)},
	}
	for _, tok := range tokens {
		must(t, "PutToken", s.PutToken(ctx, tok))
	}
	for _, want := range tokens {
		got, err := s.Token(ctx, want.Hash)
		must(t, "Token "+want.Hash, err)
		diff(t, "Token "+want.Hash, got, want) // expired tokens are returned too
	}
	_, err := s.Token(ctx, "nope")
	wantErr(t, "Token missing", err, store.ErrNotFound)
}

func testDeleteToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutToken", s.PutToken(ctx, newToken("app1", "th.1", "tok2")))
	must(t, "DeleteToken", s.DeleteToken(ctx, "tok1"))
	_, err := s.Token(ctx, "tok1")
	wantErr(t, "Token after delete", err, store.ErrNotFound)
	must(t, "DeleteToken again", s.DeleteToken(ctx, "tok1"))
	must(t, "DeleteToken never existed", s.DeleteToken(ctx, "nope"))
	_, err = s.Token(ctx, "tok2")
	must(t, "other token kept", err)
}

func testUpdateVendorThingID(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp", s.PutApp(ctx, newApp("app2")))
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	must(t, "SaveOnboarding app2", s.SaveOnboarding(ctx, onboarding("app2", "th.3", "v-new", "in3", "tok3")))
	orig, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)

	// A vendorThingID taken in another app is free in this one; the new
	// password hash replaces the old.
	must(t, "UpdateVendorThingID", s.UpdateVendorThingID(ctx, store.VendorThingIDUpdate{
		AppID: "app1", ThingID: "th.1", VendorThingID: "v-new", PasswordHash: "$argon2id$new", ModifiedAt: at(50)}))
	want := orig
	want.VendorThingID, want.PasswordHash, want.ModifiedAt = "v-new", "$argon2id$new", at(50)
	got, err := s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	diff(t, "thing after the change", got, want)
	got, err = s.ThingByVendorID(ctx, "app1", "v-new")
	must(t, "ThingByVendorID new", err)
	diff(t, "thing by its new vendorThingID", got, want)
	_, err = s.ThingByVendorID(ctx, "app1", "v1")
	wantErr(t, "ThingByVendorID old", err, store.ErrNotFound)
	got, err = s.ThingByVendorID(ctx, "app2", "v-new")
	must(t, "ThingByVendorID other app", err)
	if got.ID != "th.3" {
		t.Fatalf("ThingByVendorID(app2, v-new).ID=%q, want th.3", got.ID)
	}

	// Without a password hash the password stays; the same vendorThingID
	// again is no conflict.
	must(t, "UpdateVendorThingID same ID", s.UpdateVendorThingID(ctx, store.VendorThingIDUpdate{
		AppID: "app1", ThingID: "th.1", VendorThingID: "v-new", ModifiedAt: at(51)}))
	got, err = s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	if got.PasswordHash != "$argon2id$new" || got.ModifiedAt != at(51) {
		t.Fatalf("after a change without password: hash %q, modified %v", got.PasswordHash, got.ModifiedAt)
	}

	// Another thing's vendorThingID: a conflict, nothing changed.
	err = s.UpdateVendorThingID(ctx, store.VendorThingIDUpdate{
		AppID: "app1", ThingID: "th.1", VendorThingID: "v2", PasswordHash: "$argon2id$x", ModifiedAt: at(52)})
	wantErr(t, "UpdateVendorThingID taken", err, store.ErrConflict)
	got, err = s.Thing(ctx, "app1", "th.1")
	must(t, "Thing", err)
	if got.VendorThingID != "v-new" || got.PasswordHash != "$argon2id$new" {
		t.Fatalf("after a conflict: %q %q, want unchanged", got.VendorThingID, got.PasswordHash)
	}

	// The old vendorThingID is free for a new thing.
	must(t, "SaveOnboarding of the freed vendorThingID", s.SaveOnboarding(ctx, onboarding("app1", "th.4", "v1", "in4", "tok4")))
	got, err = s.ThingByVendorID(ctx, "app1", "v1")
	must(t, "ThingByVendorID freed", err)
	if got.ID != "th.4" {
		t.Fatalf("ThingByVendorID(app1, v1).ID=%q, want th.4", got.ID)
	}

	for _, u := range []store.VendorThingIDUpdate{
		{AppID: "app1", ThingID: "th.nope", VendorThingID: "v-x"},
		{AppID: "app2", ThingID: "th.1", VendorThingID: "v-x"},
	} {
		wantErr(t, "UpdateVendorThingID "+u.AppID+"/"+u.ThingID, s.UpdateVendorThingID(ctx, u), store.ErrNotFound)
	}
}

func testDeleteExpiredTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s) // tok1: a thing token that never expires
	tokens := []struct {
		tok  store.Token
		gone bool
	}{
		{store.Token{Hash: "h-app", AppID: "app1", Kind: store.TokenApp, CreatedAt: at(1), ExpiresAt: at(100)}, true}, // expires at now
		{store.Token{Hash: "h-user", AppID: "app1", Kind: store.TokenUser, Subject: "u1", CreatedAt: at(1), ExpiresAt: at(50)}, true},
		{store.Token{Hash: "h-thing", AppID: "app1", Kind: store.TokenThing, Subject: "th.1", CreatedAt: at(1), ExpiresAt: at(99)}, true},
		{store.Token{Hash: "h-anon", AppID: "app1", Kind: store.TokenAnonymous, CreatedAt: at(1), ExpiresAt: at(101)}, false},
		{store.Token{Hash: "h-forever", AppID: "app1", Kind: store.TokenUser, Subject: "u1", CreatedAt: at(1)}, false},
		{newToken("app1", "th.1", "tok1"), false},
	}
	for _, tt := range tokens[:len(tokens)-1] {
		must(t, "PutToken "+tt.tok.Hash, s.PutToken(ctx, tt.tok))
	}
	n, err := s.DeleteExpiredTokens(ctx, at(100))
	must(t, "DeleteExpiredTokens", err)
	if got, want := n, int64(3); got != want {
		t.Fatalf("DeleteExpiredTokens=%d, want %d", got, want)
	}
	for _, tt := range tokens {
		got, err := s.Token(ctx, tt.tok.Hash)
		if tt.gone {
			wantErr(t, "expired token "+tt.tok.Hash, err, store.ErrNotFound)
			continue
		}
		must(t, "kept token "+tt.tok.Hash, err)
		diff(t, "kept token "+tt.tok.Hash, got, tt.tok)
	}
	n, err = s.DeleteExpiredTokens(ctx, at(100))
	must(t, "DeleteExpiredTokens again", err)
	if n != 0 {
		t.Fatalf("DeleteExpiredTokens again=%d, want 0", n)
	}
}

func testPruneThingTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s) // tok1 of th.1
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok-th2")))
	// Stored in this order, with CreatedAt going backwards: stored order
	// decides which are newest.
	for i := 2; i <= 7; i++ {
		tok := newToken("app1", "th.1", fmt.Sprint("tok", i))
		tok.CreatedAt = at(100 - i)
		must(t, "PutToken", s.PutToken(ctx, tok))
	}
	// A user token whose subject happens to be the thing's ID is not a
	// thing token of it.
	user := store.Token{Hash: "h-user", AppID: "app1", Kind: store.TokenUser, Subject: "th.1", CreatedAt: at(1)}
	must(t, "PutToken user", s.PutToken(ctx, user))

	for _, tt := range []struct {
		name    string
		keep    int
		deleted []string
		kept    []string
	}{
		{"keep 3", 3, []string{"tok1", "tok2", "tok3", "tok4"}, []string{"tok5", "tok6", "tok7"}},
		{"again", 3, nil, []string{"tok5", "tok6", "tok7"}},
		{"keep more than there are", 10, nil, []string{"tok5", "tok6", "tok7"}},
		{"keep 1", 1, []string{"tok5", "tok6"}, []string{"tok7"}},
		{"keep 0", 0, []string{"tok7"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.PruneThingTokens(ctx, "th.1", tt.keep)
			must(t, "PruneThingTokens", err)
			slices.Sort(got)
			if len(got) == 0 {
				got = nil
			}
			diff(t, "deleted", got, tt.deleted)
			for _, h := range tt.deleted {
				_, err := s.Token(ctx, h)
				wantErr(t, "pruned token "+h, err, store.ErrNotFound)
			}
			for _, h := range append(tt.kept, "tok-th2", "h-user") {
				_, err := s.Token(ctx, h)
				must(t, "kept token "+h, err)
			}
		})
	}
	got, err := s.PruneThingTokens(ctx, "th.none", 0)
	must(t, "PruneThingTokens of a thing without tokens", err)
	if len(got) != 0 {
		t.Fatalf("PruneThingTokens of a thing without tokens deleted %v", got)
	}
}
