package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/cluster"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/postgres/pgtest"
	"github.com/thingif/thingif/internal/store"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"n0", true}, {"node-a.example_1", true}, {strings.Repeat("a", 48), true},
		{"", false}, {strings.Repeat("a", 49), false}, {"-a", false}, {"a b", false}, {"a/b", false}, {"é", false},
	} {
		if err := cluster.ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// fakeBroker is a broker with no connections, recording what it is asked.
type fakeBroker struct {
	mu     sync.Mutex
	held   map[string]bool
	pushed []string
	ended  []string
}

func (b *fakeBroker) Subscribed(thingID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held[thingID] {
		return 1
	}
	return 0
}

func (b *fakeBroker) PushPending(thingID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pushed = append(b.pushed, thingID)
}

func (b *fakeBroker) EndSession(clientID string, _ int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, clientID)
}

func (b *fakeBroker) Sessions() []cluster.Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []cluster.Session
	for th := range b.held {
		out = append(out, cluster.Session{ClientID: "c-" + th, ThingID: th, ID: 1})
	}
	return out
}
func (b *fakeBroker) Connections() int64 { return 0 }

func (b *fakeBroker) EndInstallation(_ context.Context, thingID, inst string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ended = append(b.ended, thingID+"/"+inst)
}

func (b *fakeBroker) got(what *[]string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), *what...)
}

func start(t *testing.T, db *postgres.DB, name string, port int, b cluster.Broker) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(t.Context(), cluster.Config{Pool: db.Pool(), Node: name, DeadAfter: time.Second,
		Addr: cluster.Addr{Host: "127.0.0.1", PortTCP: port}}, b)
	if err != nil {
		t.Fatalf("Start %s: %v", name, err)
	}
	return c
}

// TestRegistryPlacementSessions: a name held by a live node is refused; a
// thing is placed on the emptiest live node and stays there; a dead node's
// thing moves; a client ID connecting on another node ends the old
// session there.
func TestRegistryPlacementSessions(t *testing.T) {
	db, err := postgres.Open(t.Context(), postgres.Config{DSN: pgtest.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ba, bb := &fakeBroker{held: map[string]bool{}}, &fakeBroker{held: map[string]bool{}}
	a := start(t, db, "a", 1001, ba)
	b := start(t, db, "b", 1002, bb)
	<-a.Listening()
	<-b.Listening()

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if _, err := cluster.Start(ctx, cluster.Config{Pool: db.Pool(), Node: "a", DeadAfter: time.Second}, ba); err == nil ||
		!strings.Contains(err.Error(), `node name "a" is in use by a live node`) {
		t.Fatalf("second node a: %v", err)
	}

	p1, err := a.Place(t.Context(), "th.1")
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := a.Place(t.Context(), "th.2")
	if p1.PortTCP == p2.PortTCP {
		t.Fatalf("two things on one node of two: %v %v", p1, p2)
	}
	if again, _ := b.Place(t.Context(), "th.1"); again != p1 {
		t.Fatalf("th.1 placed on %v, then %v", p1, again)
	}

	// Takeover: c1 on a, then on b: a is told to end it.
	if err := a.Connected(t.Context(), "c1", "th.1", 11); err != nil {
		t.Fatal(err)
	}
	if err := b.Connected(t.Context(), "c1", "th.1", 12); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(ba.got(&ba.ended)) == 1 }, "a to end c1")
	if nodes, _ := a.ThingNodes(t.Context(), "th.1"); len(nodes) != 1 || nodes[0] != "b" {
		t.Fatalf("th.1 on %v, want [b]", nodes)
	}

	// A command stored for th.1 on a wakes b, which holds its session, and
	// b only; so does an installation replaced on a.
	if err := db.PutApp(t.Context(), store.App{ID: "app", KeyHash: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveOnboarding(t.Context(), store.Onboarding{NewThing: true,
		Thing:        store.Thing{ID: "th.1", AppID: "app", VendorThingID: "v", PasswordHash: "p"},
		Installation: store.Installation{ID: "in", AppID: "app", ThingID: "th.1", MQTTTopic: "c1", Username: "u"},
		Token:        store.Token{Hash: "t", AppID: "app", Kind: store.TokenThing}}); err != nil {
		t.Fatal(err)
	}
	bb.mu.Lock()
	bb.held["th.1"] = true
	bb.mu.Unlock()
	if err := db.CreateCommand(t.Context(), store.Command{ID: "cmd", AppID: "app", ThingID: "th.1", State: store.CommandSending}, 0); err != nil {
		t.Fatal(err)
	}
	a.Wake("th.1")
	waitFor(t, func() bool { return len(bb.got(&bb.pushed)) == 1 }, "b to be woken")
	a.EndInstallation("th.1", "in")
	waitFor(t, func() bool { got := bb.got(&bb.ended); return len(got) == 1 && got[0] == "th.1/in" }, "b to end the installation")
	if got := ba.got(&ba.pushed); len(got) != 0 {
		t.Fatalf("a woken for %v", got)
	}

	// Close a: its things move to b.
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, th := range []string{"th.1", "th.2"} {
		if p, _ := b.Place(t.Context(), th); p.PortTCP != 1002 {
			t.Fatalf("%s after a left: %v", th, p)
		}
	}
	ns, err := b.Nodes(t.Context())
	if err != nil || len(ns) != 2 || ns[0].Alive || !ns[1].Alive || ns[1].Assigned != 2 {
		t.Fatalf("Nodes: %+v %v", ns, err)
	}
	b.Close(t.Context())
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// TestListenerLost: when a node's listening connection is killed, the node
// listens again and catches up: it pushes what is pending to the things
// it holds, since wakes sent meanwhile were lost.
func TestListenerLost(t *testing.T) {
	// A name of its own: the listener is found by its application_name,
	// leaving the other tests' listeners on the server alone.
	node := fmt.Sprintf("lost-%d", time.Now().UnixNano())
	db, err := postgres.Open(t.Context(), postgres.Config{DSN: pgtest.DSN(t), Node: node})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := &fakeBroker{held: map[string]bool{"th.9": true}}
	c := start(t, db, node, 1001, b)
	defer c.Close(t.Context())
	<-c.Listening()
	var n int
	if err := db.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`,
		postgres.ApplicationName(node)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the listener: %d, %v", n, err)
	}
	waitFor(t, func() bool {
		for _, th := range b.got(&b.pushed) {
			if th == "th.9" {
				return true
			}
		}
		return false
	}, "the catch-up push to th.9")
}
