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
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
