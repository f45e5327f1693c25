package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// startNodes starts n servers on one PostgreSQL database, named n0, n1, …
func startNodes(t *testing.T, n int) []*Server {
	t.Helper()
	dsn := pgtest.DSN(t)
	nodes := make([]*Server, n)
	for i := range nodes {
		cfg := testConfig(t, t.TempDir())
		cfg.Store = dsn
		cfg.Node = fmt.Sprintf("n%d", i)
		nodes[i] = startServer(t, cfg)
	}
	return nodes
}

// nodeOf returns the index of the node whose API broker mqttEndpoint
// names.
func nodeOf(t *testing.T, nodes []*Server, ob onboardResult) int {
	t.Helper()
	for i, s := range nodes {
		if ob.MQTTEndpoint.PortTCP == s.Port("mqtt-tcp") && ob.MQTTEndpoint.PortSSL == s.Port("mqtt-tls") &&
			ob.MQTTEndpoint.PortWS == s.Port("mqtt-ws") && ob.MQTTEndpoint.PortWSS == s.Port("mqtt-wss") {
			return i
		}
	}
	t.Fatalf("mqttEndpoint %+v names no node", ob.MQTTEndpoint)
	return -1
}

// TestClusterPlacement: onboardings on one node spread the things evenly
// over the nodes, and a thing onboarding again, on any node, keeps its
// node.
func TestClusterPlacement(t *testing.T) {
	nodes := startNodes(t, 3)
	anon, err := dialV3(t, brokerURL(nodes[0], "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	count := make([]int, len(nodes))
	placed := map[string]int{}
	for i := range 9 {
		ob := onboard(t, anon, fmt.Sprintf("v%d", i), "pw")
		n := nodeOf(t, nodes, ob)
		count[n]++
		placed[fmt.Sprintf("v%d", i)] = n
	}
	for i, c := range count {
		if c != 3 {
			t.Fatalf("things per node %v, want 3 each (node %d)", count, i)
		}
	}
	// Again, through another node's onboarding broker: the same nodes.
	anon2, err := dialV3(t, brokerURL(nodes[2], "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer anon2.Close()
	for v, want := range placed {
		if got := nodeOf(t, nodes, onboard(t, anon2, v, "pw")); got != want {
			t.Fatalf("%s placed on node %d, then on %d", v, want, got)
		}
	}
}

// TestClusterPushAndTakeover: a command sent on one node reaches the thing
// on another; the thing's connection on a third node takes its client ID
// over, ending the first connection; a command sent then arrives once, on
// the live connection.
func TestClusterPushAndTakeover(t *testing.T) {
	nodes := startNodes(t, 3)
	anon, err := dialV3(t, brokerURL(nodes[0], "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "vt", "pw")
	anon.Close()
	ep := ob.MQTTEndpoint
	home := nodeOf(t, nodes, ob)
	other, third := (home+1)%3, (home+2)%3

	first, err := dialV3(t, brokerURL(nodes[home], "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.Subscribe(t, ep.MQTTTopic, 1)
	admin := adminToken(t, nodes[other])
	cid := sendCommand(t, nodes[other], admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
	if m := await(t, first, ep.MQTTTopic); !contains(m.Payload, cid) {
		t.Fatalf("push %q, want command %s", m.Payload, cid)
	}
	waitState(t, nodes[third], admin, ob.ThingID, cid, "DELIVERED")

	// The same client ID on the third node: the first connection ends.
	second, err := dialV3(t, brokerURL(nodes[third], "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.Subscribe(t, ep.MQTTTopic, 1)
	for deadline := time.Now().Add(waitFor); first.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first connection is still up after the takeover")
		}
	}
	cid2 := sendCommand(t, nodes[home], admin, ob.ThingID, `[{"turnPower":{"power":false}}]`)
	if m := await(t, second, ep.MQTTTopic); !contains(m.Payload, cid2) {
		t.Fatalf("push %q, want command %s", m.Payload, cid2)
	}
	waitState(t, nodes[other], admin, ob.ThingID, cid2, "DELIVERED")
	quiet(t, second, 300*time.Millisecond)

	// A new endpoint password issued on another node (the mqtt-endpoint
	// call of Kii's embedded SDK) ends the connection that logged in with
	// the old one.
	path := "/api/apps/" + testAppID + "/installations/" + ep.InstallationID + "/mqtt-endpoint"
	if code := rest(t, nodes[home], "GET", path, ob.AccessToken, "", "", nil); code != 200 {
		t.Fatalf("new mqtt-endpoint on node %d: %d", home, code)
	}
	for deadline := time.Now().Add(waitFor); second.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the connection on node %d is still up with replaced credentials", third)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestClusterNodesAndRevocation: every node lists the cluster, a node that
// left is listed dead at once, the console says on which node a thing is
// connected, and a token revoked on one node is refused by the others
// within the cache's TTL.
func TestClusterNodesAndRevocation(t *testing.T) {
	nodes := startNodes(t, 3)
	admin := adminToken(t, nodes[0])
	type nodeJSON struct {
		Name        string `json:"name"`
		Alive       bool   `json:"alive"`
		PortTCP     int    `json:"portTCP"`
		Connections int64  `json:"connections"`
	}
	list := func(s *Server) []nodeJSON {
		var out struct {
			Nodes []nodeJSON `json:"nodes"`
		}
		if code := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/nodes", admin, "", "", &out); code != 200 {
			t.Fatalf("GET nodes: %d", code)
		}
		return out.Nodes
	}
	got := list(nodes[1])
	if len(got) != 3 {
		t.Fatalf("nodes %+v, want 3", got)
	}
	for i, n := range got {
		if n.Name != fmt.Sprintf("n%d", i) || !n.Alive || n.PortTCP != nodes[i].Port("mqtt-tcp") {
			t.Fatalf("node %d: %+v", i, n)
		}
	}

	// A thing connected on its node: the console of another says where.
	anon, err := dialV3(t, brokerURL(nodes[0], "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "vt", "pw")
	anon.Close()
	home := nodeOf(t, nodes, ob)
	c, err := dialV3(t, brokerURL(nodes[home], "mqtt-tcp"), ob.MQTTEndpoint.MQTTTopic, ob.MQTTEndpoint.Username, ob.MQTTEndpoint.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	away := (home + 1) % 3
	var conn struct {
		Nodes []string `json:"nodes"`
	}
	if code := rest(t, nodes[away], "GET", "/console/api/connection?app="+testAppID+"&thing="+ob.ThingID, admin, "", "", &conn); code != 200 ||
		len(conn.Nodes) != 1 || conn.Nodes[0] != fmt.Sprintf("n%d", home) {
		t.Fatalf("console connection on node %d: %d %+v, want [n%d]", away, code, conn, home)
	}

	// Revoked on node 0, used on node 1 (which has it cached).
	tok := adminToken(t, nodes[0])
	if code := rest(t, nodes[1], "GET", "/thing-if/apps/"+testAppID+"/nodes", tok, "", "", nil); code != 200 {
		t.Fatalf("fresh token on node 1: %d", code)
	}
	if code := rest(t, nodes[0], "POST", "/api/apps/"+testAppID+"/oauth2/revoke", tok, "application/json", `{"token":"`+tok+`"}`, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	for rest(t, nodes[1], "GET", "/thing-if/apps/"+testAppID+"/nodes", tok, "", "", nil) == 200 {
		if time.Since(revoked) > 5*pgCacheTTL {
			t.Fatalf("revoked token still works on node 1 after %v", time.Since(revoked))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("revoked token refused by node 1 after %v", time.Since(revoked))

	// Node 2 leaves: listed dead at once.
	nodes[2].Close(t.Context())
	if got := list(nodes[0]); got[2].Alive {
		t.Fatalf("node 2 after Close: %+v", got[2])
	}
}
