package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres/pgtest"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

// TestCommandURLs: per thing, its own node's REST API or another node's,
// spread over the others; a thing on no listed node is an error.
func TestCommandURLs(t *testing.T) {
	nodes := []restNode{{URL: "http://a", Name: "n0", Port: 1000}, {URL: "http://b", Name: "n1", Port: 2000}, {URL: "http://c", Name: "n2", Port: 3000}}
	things := []Thing{{ThingID: "t0", Port: 1000}, {ThingID: "t1", Port: 2000}, {ThingID: "t2", Port: 1000}, {ThingID: "t3", Port: 3000}}
	for _, tt := range []struct {
		name    string
		nodes   []restNode
		things  []Thing
		mode    string
		want    []string
		wantErr string
	}{
		{"same", nodes, things, CommandNodeSame, []string{"http://a", "http://b", "http://a", "http://c"}, ""},
		{"other", nodes, things, CommandNodeOther, []string{"http://b", "http://c", "http://b", "http://b"}, ""},
		{"other with one node", nodes[:1], things[:1], CommandNodeOther, nil, "needs a second node"},
		{"same with one node", nodes[:1], things[:1], CommandNodeSame, []string{"http://a"}, ""},
		{"thing on no node", nodes[:2], things, CommandNodeSame, nil, "t3: its API broker (port 3000) is none of the nodes"},
		{"unknown mode", nodes, things, "any", nil, `unknown CommandNode "any"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := commandURLs(tt.things, tt.nodes, tt.mode)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("commandURLs: err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("commandURLs = %q, want %q", got, tt.want)
			}
			for i, u := range got {
				own := tt.nodes[slices.IndexFunc(tt.nodes, func(n restNode) bool { return n.Port == tt.things[i].Port })].URL
				if (tt.mode == CommandNodeSame) != (u == own) {
					t.Errorf("thing %d (node %s) → %s in mode %s", i, own, u, tt.mode)
				}
			}
		})
	}
}

// TestPushRESTNodesOneNode: a lone SQLite node is a cluster of one to
// push --rest-nodes: commands to the same node arrive; to another node
// there is none.
func TestPushRESTNodesOneNode(t *testing.T) {
	cfg := startThingif(t)
	cfg.Scenario, cfg.K, cfg.Rate, cfg.Duration = "push", 5, 100, 200*time.Millisecond
	cfg.RESTNodes, cfg.REST = []string{cfg.REST}, ""
	cfg.CommandNode = CommandNodeSame
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := metric(t, res, "pushes received"), 20.0; got != want {
		t.Errorf("pushes received = %v, want %v", got, want)
	}
	cfg.CommandNode = CommandNodeOther
	if _, err := Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "needs a second node") {
		t.Fatalf("push to another node of one: err %v", err)
	}
}

// TestPushAcrossNodes: three nodes on one PostgreSQL database; every
// command sent to a node other than its thing's (and then to its own)
// reaches the thing.
func TestPushAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	var urls []string
	var cfg Config
	for i := range 3 {
		srv, err := server.New(t.Context(), server.Config{
			DataDir: t.TempDir(), Store: dsn, Node: fmt.Sprintf("n%d", i),
			Apps:       []server.AppCredential{{ID: "bench", Key: "bench-key"}},
			PublicHost: "127.0.0.1",
			OnboardTCP: "127.0.0.1:0", MQTTTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0",
			PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close(context.Background()) })
		urls = append(urls, "http://"+srv.Addr("http").String())
		if i == 0 {
			cfg = Config{Onboard: srv.Addr("onboard-tcp").String(), AppID: "bench", AppKey: "bench-key", Timeout: 10 * time.Second}
		}
	}
	cfg.Scenario, cfg.K, cfg.Rate, cfg.Duration = "push", 6, 100, 300*time.Millisecond
	// One onboarding at a time, so that placement is even.
	cfg.RESTNodes, cfg.ThingsFile, cfg.Concurrency = urls, t.TempDir()+"/things.json", 1
	for _, mode := range []string{CommandNodeOther, CommandNodeSame} {
		t.Run(mode, func(t *testing.T) {
			cfg.CommandNode = mode
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"REST accepted (201)", "pushes received", "action results answered (DONE)"} {
				if got, want := metric(t, res, name), 30.0; got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if got, want := res.Notes[0], "things per node: n0 2 n1 2 n2 2"; got != want {
				t.Errorf("note %q, want %q", got, want)
			}
		})
	}
}
