package storetest

import (
	"encoding/json"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

// RunDurable checks that everything a store acknowledged is there after it
// is closed and opened again. open must open (creating if needed) the store
// kept in dir; RunDurable calls it several times with the same dir and
// closes every store it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	t.Helper()
	dir := t.TempDir()
	ctx := t.Context()

	s := open(t, dir)
	app := newApp("app1")
	o := onboarding("app1", "th.1", "v1", "in1", "tok1")
	extraToken := store.Token{Hash: "tok-app", AppID: "app1", Kind: store.TokenApp, CreatedAt: at(3), ExpiresAt: at(60)}
	c1 := newCommand("th.1", "c1", 1)
	c2 := newCommand("th.1", "c2", 2)
	c3 := newCommand("th.1", "c3", 3)
	results := json.RawMessage(`[{"a":[{"x":{"succeeded":true}}]}]`)
	steps := []struct {
		name string
		err  error
	}{
		{"PutApp", s.PutApp(ctx, app)},
		{"SaveOnboarding", s.SaveOnboarding(ctx, o)},
		{"PutToken", s.PutToken(ctx, extraToken)},
		{"CreateCommand c1", s.CreateCommand(ctx, c1, 0)},
		{"CreateCommand c2", s.CreateCommand(ctx, c2, 0)},
		{"CreateCommand c3", s.CreateCommand(ctx, c3, 0)},
		{"MarkDelivered c2", func() error { _, err := s.MarkDelivered(ctx, "th.1", "c2", at(4)); return err }()},
		{"SetActionResults c3", func() error {
			_, err := s.SetActionResults(ctx, "th.1", "c3", results, store.CommandDone, at(5))
			return err
		}()},
		{"WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(6),
			Aliases: map[string]json.RawMessage{"a": raw(`{"x":1}`), "b": raw(`{"y":2}`)}})},
		{"WriteStates merge", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(7),
			Aliases: map[string]json.RawMessage{"a": raw(`{"z":3}`)}})},
	}
	for _, st := range steps {
		must(t, st.name, st.err)
	}
	must(t, "Close", s.Close())

	c2.State, c2.ModifiedAt = store.CommandDelivered, at(4)
	c3.State, c3.ActionResults, c3.ModifiedAt = store.CommandDone, results, at(5)
	for range 2 { // the second reopen checks that opening changes nothing
		s := open(t, dir)
		check := func(what string, got, want any, err error) {
			t.Helper()
			must(t, what, err)
			diff(t, what, got, want)
		}
		got, err := s.App(ctx, "app1")
		check("App", got, app, err)
		th, err := s.Thing(ctx, "app1", "th.1")
		check("Thing", th, o.Thing, err)
		in, err := s.InstallationByUsername(ctx, o.Installation.Username)
		check("Installation", in, o.Installation, err)
		tok, err := s.Token(ctx, "tok1")
		check("Token", tok, o.Token, err)
		tok, err = s.Token(ctx, "tok-app")
		check("app Token", tok, extraToken, err)
		cmds, _, err := s.Commands(ctx, "th.1", "", 0)
		check("Commands", cmds, []store.Command{c3, c2, c1}, err)
		pending, err := s.PendingCommands(ctx, "th.1", "", 0)
		check("PendingCommands", pending, []store.Command{c1}, err)
		states, err := s.States(ctx, "th.1")
		check("States", states, []store.State{
			{ThingID: "th.1", Alias: "a", Body: raw(`{"x":1,"z":3}`), ModifiedAt: at(7)},
			{ThingID: "th.1", Alias: "b", Body: raw(`{"y":2}`), ModifiedAt: at(6)},
		}, err)
		// The reopened store keeps working: unique rules still hold.
		err = s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v1", "in2", "tok2"))
		wantErr(t, "duplicate vendorThingID after reopen", err, store.ErrConflict)
		must(t, "Close", s.Close())
	}
}
