package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

func newCommand(thingID, id string, created int) store.Command {
	return store.Command{
		ID: id, AppID: "app1", ThingID: thingID, State: store.CommandSending, Issuer: "user:u1",
		Actions:   json.RawMessage(`[{"AirConditionerAlias":[{"turnPower":true},{"setTemp":25}]}]`),
		CreatedAt: at(created), ModifiedAt: at(created),
	}
}

func testCommandRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	v1 := store.Command{
		ID: "c-v1", AppID: "app1", ThingID: "th.1", State: store.CommandSending, Issuer: "user:u1",
		Schema: "HelloThingIF-Schema", SchemaVersion: 1,
		Actions:       json.RawMessage(`[{"turnPower":{"power":true}},{"setFanSpeed":{"fanSpeed":5}}]`),
		ActionResults: json.RawMessage(`[{"turnPower":{"succeeded":true}}]`),
		Title:         "Power on", Description: "turn it on",
		Metadata:  json.RawMessage(`{"k":"v"}`),
		CreatedAt: at(10), ModifiedAt: at(11),
	}
	v2 := newCommand("th.1", "c-v2", 12) // nil ActionResults and Metadata
	v2.Issuer = "group:g1"
	empties := newCommand("th.1", "c-empties", 13)
	empties.Issuer = ""
	empties.Metadata = json.RawMessage(`{}`)
	empties.ActionResults = json.RawMessage(`[]`)
	zeroTimes := newCommand("th.1", "c-zero", 0)
	zeroTimes.CreatedAt = time.Time{}
	zeroTimes.ModifiedAt = time.Time{}
	done := newCommand("th.1", "c-done", 14)
	done.State = store.CommandIncomplete

	for _, c := range []store.Command{v1, v2, empties, zeroTimes, done} {
		must(t, "CreateCommand "+c.ID, s.CreateCommand(ctx, c, 0))
		got, err := s.Command(ctx, "th.1", c.ID)
		must(t, "Command "+c.ID, err)
		diff(t, "Command "+c.ID, got, c)
	}
}

func testCommandNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", "c1", 1), 0))

	_, err := s.Command(ctx, "th.1", "nope")
	wantErr(t, "Command missing", err, store.ErrNotFound)
	_, err = s.Command(ctx, "th.2", "c1")
	wantErr(t, "Command of other thing", err, store.ErrNotFound)
	wantErr(t, "CreateCommand for unknown thing", s.CreateCommand(ctx, newCommand("th.nope", "c2", 1), 0), store.ErrNotFound)
	wantErr(t, "CreateCommand with taken ID", s.CreateCommand(ctx, newCommand("th.1", "c1", 2), 0), store.ErrConflict)
	_, err = s.SetActionResults(ctx, "th.1", "nope", json.RawMessage(`[]`), store.CommandDone, at(5))
	wantErr(t, "SetActionResults missing", err, store.ErrNotFound)
	_, err = s.SetActionResults(ctx, "th.2", "c1", json.RawMessage(`[]`), store.CommandDone, at(5))
	wantErr(t, "SetActionResults of other thing", err, store.ErrNotFound)
	_, err = s.MarkDelivered(ctx, "th.1", "nope", at(5))
	wantErr(t, "MarkDelivered missing", err, store.ErrNotFound)

	got, err := s.Command(ctx, "th.1", "c1")
	must(t, "Command c1", err)
	diff(t, "c1 untouched", got, newCommand("th.1", "c1", 1))
}

func testPendingCommands(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))

	pending, err := s.PendingCommands(ctx, "th.1", "", 0)
	must(t, "PendingCommands on no commands", err)
	if len(pending) != 0 {
		t.Fatalf("PendingCommands=%v, want none", pending)
	}
	for i := range 5 {
		must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", fmt.Sprint("c", i), i), 0))
	}
	must(t, "CreateCommand th.2", s.CreateCommand(ctx, newCommand("th.2", "other", 0), 0))
	ok, err := s.MarkDelivered(ctx, "th.1", "c1", at(10))
	if err != nil || !ok {
		t.Fatalf("MarkDelivered(c1)=%v, %v; want true, nil", ok, err)
	}
	_, err = s.SetActionResults(ctx, "th.1", "c3", json.RawMessage(`[]`), store.CommandDone, at(11))
	must(t, "SetActionResults", err)

	pending, err = s.PendingCommands(ctx, "th.1", "", 0)
	must(t, "PendingCommands", err)
	diff(t, "PendingCommands oldest first", pending, []store.Command{
		newCommand("th.1", "c0", 0), newCommand("th.1", "c2", 2), newCommand("th.1", "c4", 4),
	})
	things, err := s.PendingThings(ctx)
	must(t, "PendingThings", err)
	diff(t, "PendingThings", things, []string{"th.1", "th.2"})
	// The pending bound counts SENDING commands only, per thing.
	for _, tt := range []struct {
		thing string
		max   int
		want  error
	}{{"th.1", 4, nil}, {"th.1", 4, store.ErrTooManyPending}, {"th.1", 0, nil}, {"th.2", 2, nil}, {"th.2", 2, store.ErrTooManyPending}} {
		id := fmt.Sprintf("bound-%s-%d", tt.thing, tt.max)
		if tt.want != nil {
			id += "-refused"
		}
		err := s.CreateCommand(ctx, newCommand(tt.thing, id, 20), tt.max)
		if !errors.Is(err, tt.want) {
			t.Errorf("CreateCommand(%s, max %d) = %v; want %v", tt.thing, tt.max, err, tt.want)
		}
		if _, err := s.Command(ctx, tt.thing, id); (err == nil) != (tt.want == nil) {
			t.Errorf("after CreateCommand(%s, max %d): Command = %v; stored iff accepted", tt.thing, tt.max, err)
		}
	}
}

// testPendingCommandsPaging: the SENDING commands page in creation order
// after afterID, at most limit; a page walk survives commands changing state
// and being added meanwhile, and an afterID that is not the thing's reads as
// the start.
func testPendingCommandsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	const n = 7
	var want []string // oldest first
	for i := range n {
		id := fmt.Sprint("c", i)
		must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", id, 0), 0))
		must(t, "CreateCommand th.2", s.CreateCommand(ctx, newCommand("th.2", "other-"+id, 0), 0))
		want = append(want, id)
	}
	walk := func(t *testing.T, limit int, between func(page int)) []string {
		t.Helper()
		var got []string
		after := ""
		for page := 0; ; page++ {
			if page > n+2 {
				t.Fatalf("paging did not end after %d pages; got %v", page, got)
			}
			cmds, err := s.PendingCommands(ctx, "th.1", after, limit)
			must(t, "PendingCommands", err)
			if limit > 0 && len(cmds) > limit {
				t.Fatalf("page %d has %d commands, limit %d", page, len(cmds), limit)
			}
			got = append(got, ids(cmds)...)
			if limit <= 0 || len(cmds) < limit {
				return got
			}
			after = cmds[len(cmds)-1].ID
			if between != nil {
				between(page)
			}
		}
	}
	for _, limit := range []int{-1, 0, 1, 2, 3, n - 1, n, n + 1} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			diff(t, "walked pending commands", walk(t, limit, nil), want)
		})
	}
	t.Run("unknown afterID", func(t *testing.T) {
		for _, after := range []string{"nope", "other-c3"} {
			cmds, err := s.PendingCommands(ctx, "th.1", after, 2)
			must(t, "PendingCommands", err)
			diff(t, "PendingCommands after "+after, ids(cmds), want[:2])
		}
	})
	t.Run("walk while marking and adding", func(t *testing.T) {
		// After the first page of 2 (c0, c1): c1, the afterID of the next
		// page, and c4 are delivered, and a command is added.
		got := walk(t, 2, func(page int) {
			if page != 0 {
				return
			}
			for _, id := range []string{"c1", "c4"} {
				if ok, err := s.MarkDelivered(ctx, "th.1", id, at(9)); err != nil || !ok {
					t.Fatalf("MarkDelivered(%s)=%v, %v; want true, nil", id, ok, err)
				}
			}
			must(t, "CreateCommand late", s.CreateCommand(ctx, newCommand("th.1", "late", 0), 0))
		})
		diff(t, "walk while marking and adding", got, []string{"c0", "c1", "c2", "c3", "c5", "c6", "late"})
	})
	full, err := s.PendingCommands(ctx, "th.1", "c5", 1)
	must(t, "PendingCommands after c5", err)
	diff(t, "full record", full, []store.Command{newCommand("th.1", "c6", 0)})
}

func testMarkDelivered(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", "c1", 1), 0))

	ok, err := s.MarkDelivered(ctx, "th.1", "c1", at(5))
	if err != nil || !ok {
		t.Fatalf("first MarkDelivered=%v, %v; want true, nil", ok, err)
	}
	want := newCommand("th.1", "c1", 1)
	want.State, want.ModifiedAt = store.CommandDelivered, at(5)
	got, err := s.Command(ctx, "th.1", "c1")
	must(t, "Command", err)
	diff(t, "delivered command", got, want)

	ok, err = s.MarkDelivered(ctx, "th.1", "c1", at(6))
	if err != nil || ok {
		t.Fatalf("second MarkDelivered=%v, %v; want false, nil", ok, err)
	}
	got, err = s.Command(ctx, "th.1", "c1")
	must(t, "Command", err)
	diff(t, "command after second MarkDelivered", got, want)

	// A command that already has results stays DONE.
	must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", "c2", 2), 0))
	done, err := s.SetActionResults(ctx, "th.1", "c2", json.RawMessage(`[{"a":{"succeeded":true}}]`), store.CommandDone, at(7))
	must(t, "SetActionResults", err)
	ok, err = s.MarkDelivered(ctx, "th.1", "c2", at(8))
	if err != nil || ok {
		t.Fatalf("MarkDelivered of DONE command=%v, %v; want false, nil", ok, err)
	}
	got, err = s.Command(ctx, "th.1", "c2")
	must(t, "Command", err)
	diff(t, "DONE command after MarkDelivered", got, done)
}

func testSetActionResults(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", "c1", 1), 0))
	_, err := s.MarkDelivered(ctx, "th.1", "c1", at(2))
	must(t, "MarkDelivered", err)

	results := json.RawMessage(`[{"AirConditionerAlias":[{"turnPower":{"succeeded":true}},{"setTemp":{"succeeded":false,"errorMessage":"too hot"}}]}]`)
	got, err := s.SetActionResults(ctx, "th.1", "c1", results, store.CommandIncomplete, at(3))
	must(t, "SetActionResults", err)
	want := newCommand("th.1", "c1", 1)
	want.State, want.ActionResults, want.ModifiedAt = store.CommandIncomplete, results, at(3)
	diff(t, "SetActionResults result", got, want)
	stored, err := s.Command(ctx, "th.1", "c1")
	must(t, "Command", err)
	diff(t, "stored command", stored, want)

	// Results may be reported again; the last report wins.
	results2 := json.RawMessage(`[{"AirConditionerAlias":[{"turnPower":{"succeeded":true}},{"setTemp":{"succeeded":true}}]}]`)
	got, err = s.SetActionResults(ctx, "th.1", "c1", results2, store.CommandDone, at(4))
	must(t, "SetActionResults again", err)
	want.State, want.ActionResults, want.ModifiedAt = store.CommandDone, results2, at(4)
	diff(t, "second SetActionResults", got, want)
}

func testCommandsPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))

	cmds, next, err := s.Commands(ctx, "th.1", "", 10)
	must(t, "Commands of no commands", err)
	if len(cmds) != 0 || next != "" {
		t.Fatalf("Commands of no commands=%v, %q; want none, \"\"", cmds, next)
	}

	// Equal creation times: the order is the order of creation.
	const n = 7
	var want []string // newest first
	for i := range n {
		id := fmt.Sprint("c", i)
		must(t, "CreateCommand", s.CreateCommand(ctx, newCommand("th.1", id, 0), 0))
		must(t, "CreateCommand th.2", s.CreateCommand(ctx, newCommand("th.2", "other-"+id, 0), 0))
		want = append([]string{id}, want...)
	}

	for _, limit := range []int{-1, 0, 1, 2, 3, n - 1, n, n + 1, 100} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			var got []string
			key := ""
			for page := 0; ; page++ {
				if page > n+1 {
					t.Fatalf("pagination did not end after %d pages; got %v", page, got)
				}
				cmds, next, err := s.Commands(ctx, "th.1", key, limit)
				must(t, "Commands", err)
				if limit > 0 && len(cmds) > limit {
					t.Fatalf("page %d has %d commands, limit %d", page, len(cmds), limit)
				}
				for _, c := range cmds {
					got = append(got, c.ID)
				}
				if next == "" {
					break
				}
				if len(cmds) == 0 {
					t.Fatalf("page %d is empty but next=%q", page, next)
				}
				key = next
			}
			diff(t, "walked commands", got, want)
		})
	}

	// A key stays valid while commands are added: the new command is on
	// the first page, not in the middle of the walk.
	first, next, err := s.Commands(ctx, "th.1", "", 3)
	must(t, "Commands first page", err)
	must(t, "CreateCommand during walk", s.CreateCommand(ctx, newCommand("th.1", "late", 0), 0))
	got := ids(first)
	for next != "" {
		var page []store.Command
		page, next, err = s.Commands(ctx, "th.1", next, 3)
		must(t, "Commands", err)
		got = append(got, ids(page)...)
	}
	diff(t, "walk while adding", got, want)
	all, next, err := s.Commands(ctx, "th.1", "", 0)
	must(t, "Commands all", err)
	if next != "" {
		t.Fatalf("Commands with limit 0: next=%q, want \"\"", next)
	}
	diff(t, "all commands", ids(all), append([]string{"late"}, want...))

	// Full records come back, not just IDs.
	diff(t, "newest record", all[1], newCommand("th.1", want[0], 0))
}

func ids(cmds []store.Command) []string {
	var s []string
	for _, c := range cmds {
		s = append(s, c.ID)
	}
	return s
}

// testInvalidPaginationKey: every listing refuses a key it did not issue
// with store.ErrInvalidPaginationKey, which the API answers with a 400.
func testInvalidPaginationKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	const bad = "not a key issued by this store"
	checks := map[string]func() error{
		"Commands": func() error { _, _, err := s.Commands(ctx, "th.1", bad, 10); return err },
		"Things":   func() error { _, _, err := s.Things(ctx, "app", "", bad, 10); return err },
		"Triggers": func() error { _, _, err := s.Triggers(ctx, "th.1", bad, 10); return err },
		"TriggerResults": func() error {
			_, _, err := s.TriggerResults(ctx, "th.1", "tr.1", bad, 10)
			return err
		},
	}
	for name, list := range checks {
		if err := list(); !errors.Is(err, store.ErrInvalidPaginationKey) {
			t.Errorf("%s with a foreign key: %v, want ErrInvalidPaginationKey", name, err)
		}
	}
}
