package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/postgres/pgtest"
	"github.com/thingif/thingif/thing"
)

// clusterNode is one `thingif serve` child process of a cluster test.
type clusterNode struct {
	name  string
	cmd   *exec.Cmd
	addrs map[string]string // listener name → host:port, from the ready line
	logs  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	clusterApp = "clusterapp"
	clusterKey = "cluster-key"
	// clusterDeadAfter keeps the failover short in the test.
	clusterDeadAfter = 2 * time.Second
)

// startClusterNode starts `thingif serve` on the database dsn as node name.
func startClusterNode(t *testing.T, bin, dsn, name string) *clusterNode {
	t.Helper()
	args := append(loopbackArgs(t.TempDir()), "--store", dsn, "--node", name, "--node-dead-after", clusterDeadAfter.String(),
		"--app", clusterApp+":"+clusterKey, "--password-hash-memory", "64", "--password-hash-time", "1",
		"--registrations-per-addr", "-1", "--registrations-per-app", "-1", "--log-level", "debug")
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{name: name, cmd: cmd, addrs: map[string]string{}, logs: &lockedBuffer{}}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("node %s logs:\n%s", name, n.logs.String())
		}
	})
	ch := scanLines(stderr)
	ready := waitReady(t, ch)
	n.logs.Write([]byte(ready + "\n"))
	go func() {
		for b := range ch {
			n.logs.Write(b)
		}
	}()
	for _, f := range strings.Fields(ready) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasPrefix(v, "127.0.0.1:") {
			n.addrs[k] = v
		}
	}
	return n
}

// storeOf is a credential store holding creds with their API broker port
// replaced by port.
func storeOf(creds *thing.Credentials, port string) thing.Store {
	c := *creds
	fmt.Sscan(port, &c.Endpoint.PortTCP)
	st := new(thing.MemoryStore)
	st.Save(context.Background(), &c)
	return st
}

// kill ends the node with SIGKILL: nothing of it runs after this.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n.cmd.Wait()
}

func (n *clusterNode) port(name string) string {
	_, p, _ := strings.Cut(n.addrs[name], ":")
	return p
}

// call makes a REST call on the node and decodes a JSON answer into out.
func (n *clusterNode) call(t *testing.T, method, path, token, contentType, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.addrs["http"]+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, n.name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

func (n *clusterNode) adminToken(t *testing.T) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s"}`, clusterApp, clusterKey)
	if code := n.call(t, "POST", "/api/apps/"+clusterApp+"/oauth2/token", "", "application/json", body, &tok); code != 200 {
		t.Fatalf("admin token on %s: %d", n.name, code)
	}
	return tok.AccessToken
}

func (n *clusterNode) sendCommand(t *testing.T, admin, thingID, power string) string {
	t.Helper()
	var out struct {
		CommandID string `json:"commandID"`
	}
	body := `{"schema":"S","schemaVersion":1,"actions":[{"turnPower":{"power":` + power + `}}],"issuer":"user:u"}`
	if code := n.call(t, "POST", "/thing-if/apps/"+clusterApp+"/targets/thing:"+thingID+"/commands", admin, "application/json", body, &out); code != 201 {
		t.Fatalf("send command on %s: %d", n.name, code)
	}
	return out.CommandID
}

func (n *clusterNode) commandState(t *testing.T, admin, thingID, cid string) string {
	t.Helper()
	var out struct {
		CommandState string `json:"commandState"`
	}
	if code := n.call(t, "GET", "/thing-if/apps/"+clusterApp+"/targets/thing:"+thingID+"/commands/"+cid, admin, "", "", &out); code != 200 {
		t.Fatalf("command %s on %s: %d", cid, n.name, code)
	}
	return out.CommandState
}

// TestClusterProcesses runs three `thingif serve` processes on one
// PostgreSQL database: things onboarded on one node spread over all three,
// commands sent on any node reach them, a client ID connecting on another
// node takes the session over, a token revoked on one node is refused by
// the others, and after kill -9 of a node its things onboard again onto
// live nodes and get every command sent meanwhile.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three servers")
	}
	dsn := pgtest.DSN(t)
	bin := buildBinary(t)
	var nodes []*clusterNode
	for i := range 3 {
		nodes = append(nodes, startClusterNode(t, bin, dsn, fmt.Sprintf("n%d", i)))
	}
	nodeByPort := map[int]int{}
	for i, n := range nodes {
		var p int
		fmt.Sscan(n.port("mqtt-tcp"), &p)
		nodeByPort[p] = i
	}
	admin := nodes[0].adminToken(t)

	// Six simulated things onboard on node 0 and are spread, two a node.
	type device struct {
		c    *thing.Client
		got  chan string // command IDs handled
		node func() int
		logs *lockedBuffer
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var devices []*device
	for i := range 6 {
		d := &device{got: make(chan string, 100), logs: &lockedBuffer{}}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("device %d logs:\n%s", i, d.logs.String())
			}
		})
		cfg := thing.Config{
			Server: "tcp://" + nodes[0].addrs["onboard-tcp"], AppID: clusterApp, AppKey: clusterKey,
			VendorThingID: fmt.Sprintf("dev-%d", i), Password: "pw",
			Backoff:        thing.ExponentialBackoff(20*time.Millisecond, 200*time.Millisecond),
			ReonboardAfter: 500 * time.Millisecond,
			Logger:         slog.New(slog.NewTextHandler(d.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			OnCommand: func(_ context.Context, cmd *thing.Command) []thing.Result {
				d.got <- cmd.ID
				return []thing.Result{{Succeeded: true}}
			},
		}
		c, err := thing.NewClient(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(context.Background())
		d.c = c
		d.node = func() int {
			n, ok := nodeByPort[c.Credentials().Endpoint.PortTCP]
			if !ok {
				return -1
			}
			return n
		}
		devices = append(devices, d)
	}
	perNode := make([]int, 3)
	for _, d := range devices {
		actx, acancel := context.WithTimeout(ctx, 30*time.Second)
		if err := d.c.AwaitConnection(actx); err != nil {
			t.Fatalf("thing did not connect: %v", err)
		}
		acancel()
		perNode[d.node()]++
	}
	if perNode[0] != 2 || perNode[1] != 2 || perNode[2] != 2 {
		t.Fatalf("things per node %v, want 2 each", perNode)
	}

	// Cross-node push: every thing gets a command sent on each node.
	awaitDone := func(n *clusterNode, thingID, cid string, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
			if st := n.commandState(t, admin, thingID, cid); st == "DONE" {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("command %s of %s is %s after %v", cid, thingID, st, within)
			}
		}
	}
	for _, n := range nodes {
		for _, d := range devices {
			awaitDone(n, d.c.ThingID(), n.sendCommand(t, admin, d.c.ThingID(), "true"), 30*time.Second)
		}
	}

	// A SCHEDULE_ONCE trigger created on one node fires once in the
	// cluster: one command, handled once, whichever node runs schedules.
	sched := devices[0]
	before := len(sched.got)
	at := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	body := fmt.Sprintf(`{"predicate":{"eventSource":"SCHEDULE_ONCE","scheduleAt":%d},"command":{"actions":[{"ping":{}}],"schema":"S","schemaVersion":1}}`, at)
	if code := nodes[1].call(t, "POST", "/thing-if/apps/"+clusterApp+"/targets/thing:"+sched.c.ThingID()+"/triggers", admin, "application/json", body, nil); code != 201 {
		t.Fatalf("create SCHEDULE_ONCE trigger: %d", code)
	}
	for deadline := time.Now().Add(30 * time.Second); len(sched.got) == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the SCHEDULE_ONCE trigger did not fire")
		}
	}
	time.Sleep(3 * time.Second) // time for a second firing, if any node made one
	var cmds struct {
		Commands []json.RawMessage `json:"commands"`
	}
	if code := nodes[2].call(t, "GET", "/thing-if/apps/"+clusterApp+"/targets/thing:"+sched.c.ThingID()+"/commands?bestEffortLimit=100", admin, "", "", &cmds); code != 200 {
		t.Fatalf("list commands: %d", code)
	}
	if n := len(cmds.Commands); n != len(nodes)+1 {
		t.Fatalf("%d commands after the SCHEDULE_ONCE trigger, want %d (one per node, then the trigger's)", n, len(nodes)+1)
	}

	// Takeover across processes: the same client ID on another node ends
	// the thing's connection on its own; the SDK reconnects, taking it
	// back, and commands go on reaching it.
	mover := devices[1]
	creds := mover.c.Credentials()
	away := nodes[(mover.node()+1)%3]
	intruder, err := thing.NewClient(ctx, thing.Config{
		Server: "tcp://" + away.addrs["onboard-tcp"], AppID: clusterApp, AppKey: clusterKey,
		ThingID: creds.ThingID, Password: "pw", Store: storeOf(creds, away.port("mqtt-tcp")),
		Backoff: thing.ExponentialBackoff(20*time.Millisecond, 200*time.Millisecond), ReonboardAfter: -1,
		OnCommand: func(context.Context, *thing.Command) []thing.Result { return []thing.Result{{Succeeded: true}} },
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	if err := intruder.AwaitConnection(actx); err != nil {
		t.Fatalf("second connection of the client ID on %s: %v", away.name, err)
	}
	acancel()
	intruder.Disconnect(context.Background())
	awaitDone(nodes[0], creds.ThingID, nodes[2].sendCommand(t, admin, creds.ThingID, "true"), 30*time.Second)

	// Revocation: a token revoked on node 1 is refused by node 2.
	tok := nodes[1].adminToken(t)
	if code := nodes[2].call(t, "GET", "/thing-if/apps/"+clusterApp+"/nodes", tok, "", "", nil); code != 200 {
		t.Fatalf("fresh token on n2: %d", code)
	}
	if code := nodes[1].call(t, "POST", "/api/apps/"+clusterApp+"/oauth2/revoke", tok, "application/json", `{"token":"`+tok+`"}`, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	for nodes[2].call(t, "GET", "/thing-if/apps/"+clusterApp+"/nodes", tok, "", "", nil) == 200 {
		if time.Since(revoked) > 5*time.Second {
			t.Fatal("revoked token still works on n2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("revoked on n1, refused by n2 after %v", time.Since(revoked).Round(time.Millisecond))

	// kill -9 of node 2 while commands keep coming on node 1: its two
	// things onboard again on n0 or n1 and get every command.
	var victims []*device
	for _, d := range devices {
		if d.node() == 2 {
			victims = append(victims, d)
		}
	}
	for i, d := range devices {
		t.Logf("before the kill: device %d %s on n%d", i, d.c.ThingID(), d.node())
	}
	nodes[2].kill(t)
	killed := time.Now()
	sent := map[*device][]string{}
	for round := range 5 {
		for _, d := range devices {
			sent[d] = append(sent[d], nodes[1].sendCommand(t, admin, d.c.ThingID(), fmt.Sprint(round%2 == 0)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, d := range devices {
		for _, cid := range sent[d] {
			t.Logf("awaiting %s of device %d (now on n%d)", cid, i, d.node())
			awaitDone(nodes[0], d.c.ThingID(), cid, 60*time.Second)
		}
	}
	t.Logf("node n2 killed: its %d things re-placed and every command DONE after %v", len(victims), time.Since(killed).Round(time.Millisecond))
	for _, d := range victims {
		if n := d.node(); n != 0 && n != 1 {
			t.Fatalf("a thing of the dead node is on node %d", n)
		}
	}

	// The registry says n2 is dead.
	var list struct {
		Nodes []struct {
			Name  string `json:"name"`
			Alive bool   `json:"alive"`
		} `json:"nodes"`
	}
	if code := nodes[0].call(t, "GET", "/thing-if/apps/"+clusterApp+"/nodes", admin, "", "", &list); code != 200 || len(list.Nodes) != 3 ||
		!list.Nodes[0].Alive || !list.Nodes[1].Alive || list.Nodes[2].Alive {
		t.Fatalf("nodes after the kill: %d %+v", code, list)
	}
}
