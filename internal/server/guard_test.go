package server

import (
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// TestBruteForceAcrossNodes: two nodes on one PostgreSQL database share the
// brute-force counts. Wrong thing passwords from one address, alternated
// between the nodes, block the thing and the address on both after the
// free failures in total (on one node each would still have free ones);
// the address that registered the thing on one node passes the thing's
// block on the other. Wrong app keys alternated between the nodes' onboarding
// brokers block their address on both in the same way.
func TestBruteForceAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	var nodes [2]*Server
	for i, name := range []string{"a", "b"} {
		cfg := testConfig(t, t.TempDir())
		cfg.Store, cfg.Node = dsn, name
		cfg.Limits.BruteForce = limit.Config{Free: 3, Base: time.Minute, Max: 4 * time.Minute}
		nodes[i] = startServer(t, cfg)
	}
	anonFrom := func(from string, node int) *rawConn {
		c := dialRawFrom(t, from, nodes[node].Addr("onboard-tcp").String())
		c.connect(4, "anonymous", anonUser, anonPass)
		return c
	}
	ask := func(c *rawConn, password string) string {
		return c.ask(onboardTopic, reqPayload("POST", map[string]string{"Content-Type": ctVTID}, onboardingBody("vt", password)))
	}
	device := [2]*rawConn{anonFrom("127.0.0.1", 0), anonFrom("127.0.0.1", 1)}
	guesser := [2]*rawConn{anonFrom("127.0.0.2", 0), anonFrom("127.0.0.2", 1)}
	stranger := [2]*rawConn{anonFrom("127.0.0.3", 0), anonFrom("127.0.0.3", 1)}

	steps := []struct {
		name string
		c    *rawConn
		pw   string
		want string
	}{
		{"registration on a", device[0], "right", "200 "},
		{"guess 1 on a", guesser[0], "g1", "403 WRONG_PASSWORD"},
		{"guess 2 on b", guesser[1], "g2", "403 WRONG_PASSWORD"},
		{"guess 3 on a", guesser[0], "g3", "403 WRONG_PASSWORD"},
		{"guess 4 on b, blocks", guesser[1], "g4", "403 WRONG_PASSWORD"},
		{"the guesser's right password on a", guesser[0], "right", "429 TOO_MANY_REQUESTS"},
		{"the guesser's right password on b", guesser[1], "right", "429 TOO_MANY_REQUESTS"},
		{"another address on a: the thing is blocked", stranger[0], "right", "429 TOO_MANY_REQUESTS"},
		{"another address on b", stranger[1], "right", "429 TOO_MANY_REQUESTS"},
		{"the registering address on b passes", device[1], "right", "200 "},
		{"and on a", device[0], "right", "200 "},
	}
	for _, s := range steps {
		if got := ask(s.c, s.pw); got != s.want {
			t.Fatalf("%s: %q, want %q", s.name, got, s.want)
		}
	}

	connect := func(node int, pass string) string {
		c := dialRawFrom(t, "127.0.0.4", nodes[node].Addr("onboard-tcp").String())
		c.write(connectPacket(4, "anonymous", anonUser, pass))
		return c.outcome()
	}
	for i, want := range []string{"CONNACK 0x04", "CONNACK 0x04", "CONNACK 0x04", "CONNACK 0x04"} {
		if got := connect(i%2, "client_secret=wrong"); got != want {
			t.Fatalf("wrong app key %d on node %d: %s, want %s", i+1, i%2, got, want)
		}
	}
	for node := range nodes {
		if got := connect(node, anonPass); got != "CONNACK 0x03" {
			t.Fatalf("right app key on node %d after 4 wrong ones on two nodes: %s, want CONNACK 0x03", node, got)
		}
	}
}
