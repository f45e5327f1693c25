package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func testStatesReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))

	states, err := s.States(ctx, "th.1")
	must(t, "States before any upload", err)
	if len(states) != 0 {
		t.Fatalf("States before any upload=%v, want none", states)
	}

	must(t, "WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(1),
		Aliases: map[string]json.RawMessage{"a": raw(`{"x":1,"y":2}`), "b": raw(`{"on":true}`)}}))
	must(t, "WriteStates th.2", s.WriteStates(ctx, store.StateWrite{ThingID: "th.2", Mode: store.StateReplace, At: at(1),
		Aliases: map[string]json.RawMessage{"a": raw(`{"other":true}`)}}))
	must(t, "WriteStates replace", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(2),
		Aliases: map[string]json.RawMessage{"b": raw(`{"on":false}`), "c": raw(`{"z":[1,2]}`)}}))

	states, err = s.States(ctx, "th.1")
	must(t, "States", err)
	diff(t, "replaced states", states, []store.State{
		{ThingID: "th.1", Alias: "b", Body: raw(`{"on":false}`), ModifiedAt: at(2)},
		{ThingID: "th.1", Alias: "c", Body: raw(`{"z":[1,2]}`), ModifiedAt: at(2)},
	})
	states, err = s.States(ctx, "th.2")
	must(t, "States th.2", err)
	diff(t, "other thing's states", states, []store.State{
		{ThingID: "th.2", Alias: "a", Body: raw(`{"other":true}`), ModifiedAt: at(1)},
	})

	// Replace drops fields too: it is not a merge.
	must(t, "WriteStates replace fields", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(3),
		Aliases: map[string]json.RawMessage{"c": raw(`{"w":0}`)}}))
	states, err = s.States(ctx, "th.1")
	must(t, "States", err)
	diff(t, "replaced fields", states, []store.State{
		{ThingID: "th.1", Alias: "c", Body: raw(`{"w":0}`), ModifiedAt: at(3)},
	})
}

func testStatesMerge(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(1),
		Aliases: map[string]json.RawMessage{"a": raw(`{"x":1,"y":2,"o":{"p":1,"q":2}}`), "b": raw(`{"on":true}`)}}))
	must(t, "WriteStates merge", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(2),
		Aliases: map[string]json.RawMessage{"a": raw(`{"y":3,"z":4,"o":{"p":9}}`), "c": raw(`{"new":"yes"}`)}}))

	states, err := s.States(ctx, "th.1")
	must(t, "States", err)
	diff(t, "merged states", states, []store.State{
		{ThingID: "th.1", Alias: "a", Body: raw(`{"x":1,"y":3,"z":4,"o":{"p":9}}`), ModifiedAt: at(2)},
		{ThingID: "th.1", Alias: "b", Body: raw(`{"on":true}`), ModifiedAt: at(1)},
		{ThingID: "th.1", Alias: "c", Body: raw(`{"new":"yes"}`), ModifiedAt: at(2)},
	})
}

func testStatesV1AndOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "WriteStates v1", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(1),
		Aliases: map[string]json.RawMessage{store.V1Alias: raw(`{"power":true,"presetTemperature":25}`)}}))
	states, err := s.States(ctx, "th.1")
	must(t, "States", err)
	diff(t, "v1 state", states, []store.State{
		{ThingID: "th.1", Alias: store.V1Alias, Body: raw(`{"power":true,"presetTemperature":25}`), ModifiedAt: at(1)},
	})

	must(t, "WriteStates merge", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(2),
		Aliases: map[string]json.RawMessage{
			"Zeta": raw(`{}`), "alpha": raw(`{"a":1}`), "Mid": raw(`{"m":1}`), "beta": raw(`{"b":1}`),
			store.V1Alias: raw(`{"presetTemperature":20}`),
		}}))
	states, err = s.States(ctx, "th.1")
	must(t, "States", err)
	var aliases []string
	for _, st := range states {
		aliases = append(aliases, st.Alias)
	}
	diff(t, "alias order", aliases, []string{store.V1Alias, "Mid", "Zeta", "alpha", "beta"})
	diff(t, "merged v1 state", states[0].Body, raw(`{"power":true,"presetTemperature":20}`))
	diff(t, "state with empty object", states[2].Body, raw(`{}`))
}

func testStatesErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(1),
		Aliases: map[string]json.RawMessage{"a": raw(`{"x":1}`)}}))
	before, err := s.States(ctx, "th.1")
	must(t, "States", err)

	for _, body := range []string{`[1]`, `"s"`, `1`, `null`, `{"x":`} {
		err := s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(2),
			Aliases: map[string]json.RawMessage{"a": raw(`{"x":2}`), "b": raw(body)}})
		if err == nil {
			t.Fatalf("WriteStates merge with body %s: no error", body)
		}
		after, err := s.States(ctx, "th.1")
		must(t, "States", err)
		diff(t, fmt.Sprintf("states after failed merge of %s", body), after, before)
	}

	err = s.WriteStates(ctx, store.StateWrite{ThingID: "th.nope", Mode: store.StateMerge, At: at(2),
		Aliases: map[string]json.RawMessage{"a": raw(`{"x":2}`)}})
	wantErr(t, "WriteStates merge of unknown thing", err, store.ErrNotFound)
	err = s.WriteStates(ctx, store.StateWrite{ThingID: "th.nope", Mode: store.StateReplace, At: at(2),
		Aliases: map[string]json.RawMessage{"a": raw(`{"x":2}`)}})
	wantErr(t, "WriteStates replace of unknown thing", err, store.ErrNotFound)
}

// testConcurrentWrites runs commands and state merges from several
// goroutines on one thing: every command is stored and no merge is lost.
func testConcurrentWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("c-%d-%d", w, i)
				if err := s.CreateCommand(ctx, newCommand("th.1", id, i), 0); err != nil {
					errs <- fmt.Errorf("CreateCommand %s: %w", id, err)
				}
				if err := s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(i),
					Aliases: map[string]json.RawMessage{"a": raw(fmt.Sprintf(`{"f%d_%d":%d}`, w, i, i))}}); err != nil {
					errs <- fmt.Errorf("WriteStates %s: %w", id, err)
				}
				if _, err := s.PendingCommands(ctx, "th.1", "", 0); err != nil {
					errs <- fmt.Errorf("PendingCommands: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	all, _, err := s.Commands(ctx, "th.1", "", 0)
	must(t, "Commands", err)
	if got, want := len(all), workers*each; got != want {
		t.Fatalf("stored %d commands, want %d", got, want)
	}
	states, err := s.States(ctx, "th.1")
	must(t, "States", err)
	if len(states) != 1 {
		t.Fatalf("States=%v, want one alias", states)
	}
	var fields map[string]int
	must(t, "state body", json.Unmarshal(states[0].Body, &fields))
	if got, want := len(fields), workers*each; got != want {
		t.Fatalf("merged state has %d fields, want %d (lost updates)", got, want)
	}
}
