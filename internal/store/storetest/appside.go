package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

// appSideTests check the store.AppSide methods.
var appSideTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"Users", testUsers},
	{"DeleteUser", testDeleteUser},
	{"Groups", testGroups},
	{"Owners", testOwners},
	{"ThingsPagination", testThingsPagination},
	{"ThingsSearch", testThingsSearch},
	{"EndNodes", testEndNodes},
	{"ExpireCommands", testExpireCommands},
	{"TriggerRoundTrip", testTriggerRoundTrip},
	{"TriggersPerThingBound", testTriggersPerThingBound},
	{"TriggersPerThingBoundConcurrent", testTriggersPerThingBoundConcurrent},
	{"TriggersPagination", testTriggersPagination},
	{"EnabledTriggers", testEnabledTriggers},
	{"UpdateTrigger", testUpdateTrigger},
	{"DeleteTrigger", testDeleteTrigger},
	{"TriggerResults", testTriggerResults},
}

func newUser(appID, id, username string) store.User {
	return store.User{ID: id, AppID: appID, Username: username, PasswordHash: "$argon2id$" + id, CreatedAt: at(3)}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))
	u := newUser("app1", "u.1", "alice")
	must(t, "CreateUser", s.CreateUser(ctx, u))
	got, err := s.User(ctx, "app1", "u.1")
	must(t, "User", err)
	diff(t, "User", got, u)
	got, err = s.UserByUsername(ctx, "app1", "alice")
	must(t, "UserByUsername", err)
	diff(t, "UserByUsername", got, u)

	wantErr(t, "CreateUser taken username", s.CreateUser(ctx, newUser("app1", "u.2", "alice")), store.ErrConflict)
	wantErr(t, "CreateUser taken ID", s.CreateUser(ctx, newUser("app1", "u.1", "bob")), store.ErrConflict)
	wantErr(t, "CreateUser unknown app", s.CreateUser(ctx, newUser("nope", "u.3", "carol")), store.ErrNotFound)
	must(t, "CreateUser same username in another app", s.CreateUser(ctx, newUser("app2", "u.4", "alice")))
	_, err = s.User(ctx, "app2", "u.1")
	wantErr(t, "User of another app", err, store.ErrNotFound)
	_, err = s.UserByUsername(ctx, "app1", "nobody")
	wantErr(t, "UserByUsername missing", err, store.ErrNotFound)

	// Users pages in creation order and sees only the app's users.
	must(t, "CreateUser u.5", s.CreateUser(ctx, newUser("app1", "u.5", "bob")))
	must(t, "CreateUser u.6", s.CreateUser(ctx, newUser("app1", "u.6", "carol")))
	var ids []string
	for key, pages := "", 0; ; pages++ {
		page, next, err := s.Users(ctx, "app1", key, 2)
		must(t, "Users", err)
		for _, u := range page {
			ids = append(ids, u.ID)
		}
		if next == "" {
			if got, want := pages, 1; got != want {
				t.Errorf("Users took %d more pages, want %d", got, want)
			}
			break
		}
		key = next
	}
	diff(t, "Users", ids, []string{"u.1", "u.5", "u.6"})
	all, next, err := s.Users(ctx, "app2", "", 0)
	must(t, "Users app2", err)
	if got, want := len(all), 1; got != want || next != "" {
		t.Errorf("Users app2: %d users, next %q; want %d, none", got, next, want)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))
	for _, u := range []store.User{newUser("app1", "u.1", "alice"), newUser("app1", "u.2", "bob"), newUser("app2", "u.9", "zoe")} {
		must(t, "CreateUser", s.CreateUser(ctx, u))
	}
	must(t, "CreateGroup", s.CreateGroup(ctx, store.Group{ID: "g.1", AppID: "app1", Name: "home", Owner: "u.2", Members: []string{"u.1", "u.2"}, CreatedAt: at(4)}))
	must(t, "PutToken", s.PutToken(ctx, store.Token{Hash: "tok-u1", AppID: "app1", Kind: store.TokenUser, Subject: "u.1", CreatedAt: at(5)}))
	must(t, "PutToken", s.PutToken(ctx, store.Token{Hash: "tok-u2", AppID: "app1", Kind: store.TokenUser, Subject: "u.2", CreatedAt: at(5)}))
	must(t, "AddOwner", s.AddOwner(ctx, "app1", "th.1", "USER:u.1", at(5)))

	wantErr(t, "DeleteUser of another app", s.DeleteUser(ctx, "app2", "u.1"), store.ErrNotFound)
	wantErr(t, "DeleteUser missing", s.DeleteUser(ctx, "app1", "u.404"), store.ErrNotFound)
	must(t, "DeleteUser", s.DeleteUser(ctx, "app1", "u.1"))
	_, err := s.User(ctx, "app1", "u.1")
	wantErr(t, "User deleted", err, store.ErrNotFound)
	_, err = s.Token(ctx, "tok-u1")
	wantErr(t, "Token of the deleted user", err, store.ErrNotFound)
	_, err = s.Token(ctx, "tok-u2")
	must(t, "Token of another user", err)
	g, err := s.Group(ctx, "app1", "g.1")
	must(t, "Group", err)
	diff(t, "members after delete", g.Members, []string{"u.2"})
	_, err = s.ThingOwner(ctx, "th.1")
	wantErr(t, "owner of the deleted user's thing", err, store.ErrNotFound)
	must(t, "AddOwner after delete", s.AddOwner(ctx, "app1", "th.1", "USER:u.2", at(6)))
	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx, "app1", "u.1"), store.ErrNotFound)
	// The username is free again.
	must(t, "CreateUser reusing the name", s.CreateUser(ctx, newUser("app1", "u.3", "alice")))
}

func testGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))
	for _, u := range []store.User{newUser("app1", "u.1", "a"), newUser("app1", "u.2", "b"), newUser("app2", "u.9", "z")} {
		must(t, "CreateUser", s.CreateUser(ctx, u))
	}
	g := store.Group{ID: "g.1", AppID: "app1", Name: "home", Owner: "u.1", Members: []string{"u.1", "u.2"}, CreatedAt: at(4)}
	must(t, "CreateGroup", s.CreateGroup(ctx, g))
	got, err := s.Group(ctx, "app1", "g.1")
	must(t, "Group", err)
	diff(t, "Group", got, g)
	must(t, "CreateGroup g.2", s.CreateGroup(ctx, store.Group{ID: "g.2", AppID: "app1", Name: "solo", Owner: "u.2", Members: []string{"u.2"}, CreatedAt: at(5)}))

	ids, err := s.GroupsOfUser(ctx, "app1", "u.2")
	must(t, "GroupsOfUser", err)
	diff(t, "groups of u.2", ids, []string{"g.1", "g.2"})
	ids, err = s.GroupsOfUser(ctx, "app1", "u.1")
	must(t, "GroupsOfUser", err)
	diff(t, "groups of u.1", ids, []string{"g.1"})
	ids, err = s.GroupsOfUser(ctx, "app2", "u.1")
	must(t, "GroupsOfUser other app", err)
	if len(ids) != 0 {
		t.Fatalf("groups of u.1 in app2=%v, want none", ids)
	}

	wantErr(t, "CreateGroup unknown member", s.CreateGroup(ctx, store.Group{ID: "g.3", AppID: "app1", Name: "x", Owner: "u.1", Members: []string{"u.1", "u.nope"}, CreatedAt: at(5)}), store.ErrNotFound)
	wantErr(t, "CreateGroup member of another app", s.CreateGroup(ctx, store.Group{ID: "g.4", AppID: "app1", Name: "x", Owner: "u.1", Members: []string{"u.9"}, CreatedAt: at(5)}), store.ErrNotFound)
	_, err = s.Group(ctx, "app1", "g.3")
	wantErr(t, "failed group stored nothing", err, store.ErrNotFound)
	_, err = s.Group(ctx, "app2", "g.1")
	wantErr(t, "Group of another app", err, store.ErrNotFound)
}

func testOwners(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	_, err := s.ThingOwner(ctx, "th.1")
	wantErr(t, "ThingOwner before any", err, store.ErrNotFound)
	must(t, "AddOwner", s.AddOwner(ctx, "app1", "th.1", "USER:u.1", at(5)))
	must(t, "AddOwner again, same owner", s.AddOwner(ctx, "app1", "th.1", "USER:u.1", at(6)))
	wantErr(t, "AddOwner another owner", s.AddOwner(ctx, "app1", "th.1", "GROUP:g.1", at(7)), store.ErrConflict)
	wantErr(t, "AddOwner missing thing", s.AddOwner(ctx, "app1", "th.nope", "USER:u.1", at(7)), store.ErrNotFound)
	wantErr(t, "AddOwner thing of another app", s.AddOwner(ctx, "app2", "th.1", "USER:u.1", at(7)), store.ErrNotFound)
	owner, err := s.ThingOwner(ctx, "th.1")
	must(t, "ThingOwner", err)
	if owner != "USER:u.1" {
		t.Fatalf("ThingOwner=%q, want USER:u.1", owner)
	}
}

func testThingsPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))
	for i := 2; i <= 5; i++ {
		must(t, "SaveOnboarding", s.SaveOnboarding(ctx, onboarding("app1", fmt.Sprintf("th.%d", i), fmt.Sprintf("v%d", i), fmt.Sprintf("in%d", i), fmt.Sprintf("tok%d", i))))
	}
	must(t, "SaveOnboarding app2", s.SaveOnboarding(ctx, onboarding("app2", "th.x", "vx", "inx", "tokx")))

	var ids []string
	key, pages := "", 0
	for {
		things, next, err := s.Things(ctx, "app1", "", key, 2)
		must(t, "Things", err)
		for _, th := range things {
			ids = append(ids, th.ID)
		}
		pages++
		if next == "" {
			break
		}
		key = next
		if pages > 10 {
			t.Fatal("Things never ends")
		}
	}
	diff(t, "things of app1", ids, []string{"th.1", "th.2", "th.3", "th.4", "th.5"})
	if pages != 3 {
		t.Fatalf("pages=%d, want 3", pages)
	}
	all, next, err := s.Things(ctx, "app1", "", "", 0)
	must(t, "Things all", err)
	if len(all) != 5 || next != "" {
		t.Fatalf("Things all: %d things, next %q", len(all), next)
	}
	diff(t, "first thing", all[0], newThing("app1", "th.1", "v1"))
	_, _, err = s.Things(ctx, "app1", "", "junk", 2)
	if err == nil {
		t.Fatal("Things with a junk pagination key: no error")
	}
}

func testThingsSearch(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s) // th.1, vendor v1
	must(t, "PutApp app2", s.PutApp(ctx, newApp("app2")))
	for i, v := range []string{"Lamp-Kitchen", "lamp-hall", "AC_1", "ACX1", "100%", "back\\slash"} {
		must(t, "SaveOnboarding", s.SaveOnboarding(ctx, onboarding("app1", fmt.Sprintf("th.s%d", i), v, fmt.Sprintf("ins%d", i), fmt.Sprintf("toks%d", i))))
	}
	must(t, "SaveOnboarding app2", s.SaveOnboarding(ctx, onboarding("app2", "th.other", "lamp-other", "ino", "toko")))
	// search walks all pages of matches, 1 per page
	search := func(q string) []string {
		t.Helper()
		var ids []string
		key := ""
		for range 20 {
			things, next, err := s.Things(ctx, "app1", q, key, 1)
			must(t, "Things "+q, err)
			for _, th := range things {
				ids = append(ids, th.VendorThingID)
			}
			if next == "" {
				return ids
			}
			key = next
		}
		t.Fatalf("search %q never ends", q)
		return nil
	}
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"lamp", []string{"Lamp-Kitchen", "lamp-hall"}}, // either case, this app only
		{"KITCHEN", []string{"Lamp-Kitchen"}},           // substring, either case
		{"AC_", []string{"AC_1"}},                       // _ is itself, not any character
		{"%", []string{"100%"}},                         // % is itself
		{"\\", []string{"back\\slash"}},                 // so is \
		{"th.s3", []string{"ACX1"}},                     // the thing ID matches too
		{"nothing like it", nil},
	} {
		diff(t, "search "+tt.q, search(tt.q), tt.want)
	}
	all, _, err := s.Things(ctx, "app1", "", "", 0)
	must(t, "Things", err)
	if len(all) != 7 {
		t.Fatalf("no search: %d things, want 7", len(all))
	}
}

func testEndNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	_, err := s.EndNode(ctx, "th.2")
	wantErr(t, "EndNode before any", err, store.ErrNotFound)
	e := store.EndNode{ThingID: "th.2", GatewayID: "th.1", Online: true, ModifiedAt: at(5)}
	must(t, "PutEndNode", s.PutEndNode(ctx, e))
	got, err := s.EndNode(ctx, "th.2")
	must(t, "EndNode", err)
	diff(t, "EndNode", got, e)
	e.Online, e.ModifiedAt = false, at(6)
	must(t, "PutEndNode offline", s.PutEndNode(ctx, e))
	got, err = s.EndNode(ctx, "th.2")
	must(t, "EndNode", err)
	diff(t, "EndNode replaced", got, e)
	wantErr(t, "PutEndNode missing gateway", s.PutEndNode(ctx, store.EndNode{ThingID: "th.2", GatewayID: "th.nope", ModifiedAt: at(7)}), store.ErrNotFound)
	wantErr(t, "PutEndNode missing end node", s.PutEndNode(ctx, store.EndNode{ThingID: "th.nope", GatewayID: "th.1", ModifiedAt: at(7)}), store.ErrNotFound)
}

func testExpireCommands(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	old := newCommand("th.1", "old", 1)
	delivered := newCommand("th.1", "delivered", 1)
	delivered.State = store.CommandDelivered
	young := newCommand("th.1", "young", 10)
	for _, c := range []store.Command{old, delivered, young} {
		must(t, "CreateCommand", s.CreateCommand(ctx, c, 0))
	}
	n, err := s.ExpireCommands(ctx, at(5), at(20))
	must(t, "ExpireCommands", err)
	if n != 1 {
		t.Fatalf("ExpireCommands moved %d, want 1", n)
	}
	got, err := s.Command(ctx, "th.1", "old")
	must(t, "Command old", err)
	old.State, old.ModifiedAt = store.CommandExpired, at(20)
	diff(t, "expired command", got, old)
	for _, c := range []store.Command{delivered, young} {
		got, err := s.Command(ctx, "th.1", c.ID)
		must(t, "Command", err)
		diff(t, "untouched command "+c.ID, got, c)
	}
	pending, err := s.PendingCommands(ctx, "th.1", "", 0)
	must(t, "PendingCommands", err)
	if len(pending) != 1 || pending[0].ID != "young" {
		t.Fatalf("pending after expiry: %v", pending)
	}
	n, err = s.ExpireCommands(ctx, at(5), at(21))
	must(t, "ExpireCommands again", err)
	if n != 0 {
		t.Fatalf("ExpireCommands again moved %d, want 0", n)
	}
}

func newTrigger(thingID, id string, created int) store.Trigger {
	return store.Trigger{
		ID: id, AppID: "app1", ThingID: thingID, EventSource: store.EventStates,
		Predicate: raw(`{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`),
		Command:   raw(`{"issuer":"user:u.1","actions":[{"A":[{"turnPower":false}]}]}`),
		CreatedAt: at(created), ModifiedAt: at(created),
	}
}

func testTriggerRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	full := newTrigger("th.1", "t.full", 5)
	full.Command = nil
	full.ServerCode = raw(`{"endpoint":"notify","parameters":{"k":1}}`)
	full.Title, full.Description, full.Metadata = "hot", "when hot", raw(`{"m":true}`)
	full.Disabled, full.DisabledReason = true, "by owner"
	full.Run = store.TriggerRun{Evaluated: true, Satisfied: true, FiredAt: at(6)}
	for _, tr := range []store.Trigger{newTrigger("th.1", "t.1", 4), full} {
		must(t, "CreateTrigger "+tr.ID, s.CreateTrigger(ctx, tr, 0))
		got, err := s.Trigger(ctx, "th.1", tr.ID)
		must(t, "Trigger", err)
		diff(t, "Trigger "+tr.ID, got, tr)
	}
	wantErr(t, "CreateTrigger taken ID", s.CreateTrigger(ctx, newTrigger("th.1", "t.1", 7), 0), store.ErrConflict)
	wantErr(t, "CreateTrigger unknown thing", s.CreateTrigger(ctx, newTrigger("th.nope", "t.2", 7), 0), store.ErrNotFound)
	_, err := s.Trigger(ctx, "th.2", "t.1")
	wantErr(t, "Trigger of another thing", err, store.ErrNotFound)
}

// testTriggersPerThingBound: CreateTrigger with maxPerThing refuses the
// trigger beyond the bound, per thing, and stores nothing then; 0 is no
// bound; a deleted trigger frees its place.
func testTriggersPerThingBound(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	for _, tt := range []struct {
		thing, id string
		max       int
		want      error
	}{
		{"th.1", "t.1", 2, nil},
		{"th.1", "t.2", 2, nil},
		{"th.1", "t.3", 2, store.ErrTooManyTriggers},
		{"th.1", "t.4", 3, nil},
		{"th.1", "t.5", 0, nil},
		{"th.1", "t.6", 4, store.ErrTooManyTriggers},
		{"th.2", "t.7", 1, nil},
		{"th.2", "t.8", 1, store.ErrTooManyTriggers},
	} {
		err := s.CreateTrigger(ctx, newTrigger(tt.thing, tt.id, 1), tt.max)
		if !errors.Is(err, tt.want) {
			t.Errorf("CreateTrigger(%s %s, max %d) = %v; want %v", tt.thing, tt.id, tt.max, err, tt.want)
		}
		if _, err := s.Trigger(ctx, tt.thing, tt.id); (err == nil) != (tt.want == nil) {
			t.Errorf("after CreateTrigger(%s %s, max %d): Trigger = %v; stored iff accepted", tt.thing, tt.id, tt.max, err)
		}
	}
	must(t, "DeleteTrigger", s.DeleteTrigger(ctx, "th.2", "t.7"))
	must(t, "CreateTrigger after a delete", s.CreateTrigger(ctx, newTrigger("th.2", "t.9", 1), 1))
}

// testTriggersPerThingBoundConcurrent: concurrent creates for one thing
// never store more than the bound, and store exactly the bound.
func testTriggersPerThingBoundConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	const n, max = 24, 5
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.CreateTrigger(ctx, newTrigger("th.1", fmt.Sprint("t.", i), 1), max)
		})
	}
	wg.Wait()
	accepted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, store.ErrTooManyTriggers):
			t.Fatalf("CreateTrigger %d: %v, want nil or %v", i, err, store.ErrTooManyTriggers)
		}
	}
	trs, _, err := s.Triggers(ctx, "th.1", "", 0)
	must(t, "Triggers", err)
	if got, want := len(trs), max; got != want || accepted != want {
		t.Fatalf("%d triggers stored, %d creates accepted; want %d of each", got, accepted, want)
	}
}

func testTriggersPagination(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	for i := 1; i <= 5; i++ {
		must(t, "CreateTrigger", s.CreateTrigger(ctx, newTrigger("th.1", fmt.Sprintf("t.%d", i), 5), 0))
	}
	var ids []string
	key := ""
	for range 10 {
		trs, next, err := s.Triggers(ctx, "th.1", key, 2)
		must(t, "Triggers", err)
		for _, tr := range trs {
			ids = append(ids, tr.ID)
		}
		if next == "" {
			break
		}
		key = next
	}
	diff(t, "trigger pages", ids, []string{"t.1", "t.2", "t.3", "t.4", "t.5"})
	all, next, err := s.Triggers(ctx, "th.1", "", 0)
	must(t, "Triggers all", err)
	if len(all) != 5 || next != "" {
		t.Fatalf("Triggers all: %d, next %q", len(all), next)
	}
	_, _, err = s.Triggers(ctx, "th.1", "junk", 2)
	if err == nil {
		t.Fatal("Triggers with a junk key: no error")
	}
}

func testEnabledTriggers(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	states1 := newTrigger("th.1", "s1", 1)
	disabled := newTrigger("th.1", "s2", 2)
	disabled.Disabled = true
	sched := newTrigger("th.1", "c1", 3)
	sched.EventSource = store.EventSchedule
	sched2 := newTrigger("th.2", "c2", 4)
	sched2.EventSource = store.EventSchedule
	states2 := newTrigger("th.2", "s3", 5)
	for _, tr := range []store.Trigger{states1, disabled, sched, sched2, states2} {
		must(t, "CreateTrigger", s.CreateTrigger(ctx, tr, 0))
	}
	ids := func(trs []store.Trigger) []string {
		out := []string{}
		for _, tr := range trs {
			out = append(out, tr.ID)
		}
		return out
	}
	got, err := s.EnabledTriggers(ctx, "th.1", store.EventStates)
	must(t, "EnabledTriggers", err)
	diff(t, "enabled STATES of th.1", ids(got), []string{"s1"})
	got, err = s.EnabledTriggers(ctx, "", store.EventSchedule)
	must(t, "EnabledTriggers all things", err)
	diff(t, "enabled SCHEDULE", ids(got), []string{"c1", "c2"})
	got, err = s.EnabledTriggers(ctx, "", store.EventScheduleOnce)
	must(t, "EnabledTriggers none", err)
	diff(t, "enabled SCHEDULE_ONCE", ids(got), []string{})
}

func testUpdateTrigger(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	tr := newTrigger("th.1", "t.1", 1)
	must(t, "CreateTrigger", s.CreateTrigger(ctx, tr, 0))
	tr.EventSource = store.EventScheduleOnce
	tr.Predicate = raw(`{"eventSource":"SCHEDULE_ONCE","scheduleAt":1750000000000}`)
	tr.Command, tr.ServerCode = nil, raw(`{"endpoint":"e"}`)
	tr.Title, tr.Disabled, tr.DisabledReason = "t", true, "r"
	tr.Run = store.TriggerRun{Evaluated: true, FiredAt: at(3)}
	tr.ModifiedAt = at(4)
	tr.CreatedAt = at(99) // not updated
	must(t, "UpdateTrigger", s.UpdateTrigger(ctx, tr))
	got, err := s.Trigger(ctx, "th.1", "t.1")
	must(t, "Trigger", err)
	tr.CreatedAt = at(1)
	diff(t, "updated trigger", got, tr)

	run := store.TriggerRun{Evaluated: true, Satisfied: true, FiredAt: at(8)}
	must(t, "SetTriggerRun", s.SetTriggerRun(ctx, "th.1", "t.1", run))
	got, err = s.Trigger(ctx, "th.1", "t.1")
	must(t, "Trigger", err)
	tr.Run = run
	diff(t, "trigger after SetTriggerRun", got, tr)

	missing := newTrigger("th.1", "nope", 1)
	wantErr(t, "UpdateTrigger missing", s.UpdateTrigger(ctx, missing), store.ErrNotFound)
	wantErr(t, "SetTriggerRun missing", s.SetTriggerRun(ctx, "th.1", "nope", run), store.ErrNotFound)
	wantErr(t, "SetTriggerRun other thing", s.SetTriggerRun(ctx, "th.2", "t.1", run), store.ErrNotFound)
}

func testDeleteTrigger(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "CreateTrigger", s.CreateTrigger(ctx, newTrigger("th.1", "t.1", 1), 0))
	must(t, "CreateTrigger", s.CreateTrigger(ctx, newTrigger("th.1", "t.2", 1), 0))
	must(t, "AddTriggerResult", s.AddTriggerResult(ctx, store.TriggerResult{TriggerID: "t.1", ThingID: "th.1", Succeeded: true, ExecutedAt: at(2)}))
	wantErr(t, "DeleteTrigger other thing", s.DeleteTrigger(ctx, "th.2", "t.1"), store.ErrNotFound)
	must(t, "DeleteTrigger", s.DeleteTrigger(ctx, "th.1", "t.1"))
	_, err := s.Trigger(ctx, "th.1", "t.1")
	wantErr(t, "Trigger after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteTrigger again", s.DeleteTrigger(ctx, "th.1", "t.1"), store.ErrNotFound)
	res, _, err := s.TriggerResults(ctx, "th.1", "t.1", "", 0)
	must(t, "TriggerResults after delete", err)
	if len(res) != 0 {
		t.Fatalf("results outlived their trigger: %v", res)
	}
	// A new trigger with the old ID starts without results.
	must(t, "CreateTrigger reuse ID", s.CreateTrigger(ctx, newTrigger("th.1", "t.1", 3), 0))
	if _, err := s.Trigger(ctx, "th.1", "t.2"); err != nil {
		t.Fatalf("other trigger gone: %v", err)
	}
}

func testTriggerResults(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "CreateTrigger", s.CreateTrigger(ctx, newTrigger("th.1", "t.1", 1), 0))
	want := []store.TriggerResult{}
	for i := 1; i <= 5; i++ {
		r := store.TriggerResult{TriggerID: "t.1", ThingID: "th.1", Succeeded: i%2 == 0, Endpoint: "ep", ExecutedAt: at(i)}
		if r.Succeeded {
			r.ReturnedValue = raw(fmt.Sprintf(`{"n":%d}`, i))
		} else {
			r.Error = "status 500"
		}
		must(t, "AddTriggerResult", s.AddTriggerResult(ctx, r))
		want = append([]store.TriggerResult{r}, want...) // newest first
	}
	wantErr(t, "AddTriggerResult unknown trigger", s.AddTriggerResult(ctx, store.TriggerResult{TriggerID: "nope", ThingID: "th.1", ExecutedAt: at(1)}), store.ErrNotFound)
	var got []store.TriggerResult
	key := ""
	for range 10 {
		page, next, err := s.TriggerResults(ctx, "th.1", "t.1", key, 2)
		must(t, "TriggerResults", err)
		got = append(got, page...)
		if next == "" {
			break
		}
		key = next
	}
	diff(t, "results, newest first", got, want)
	other, _, err := s.TriggerResults(ctx, "th.2", "t.1", "", 0)
	must(t, "TriggerResults other thing", err)
	if len(other) != 0 {
		t.Fatalf("results of another thing's trigger: %v", other)
	}
}
