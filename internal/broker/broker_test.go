package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
)

const waitFor = 10 * time.Second

// fixture is an API broker on loopback TCP and WS with one thing and its
// installation in a real SQLite store. The handler answers every request
// with 200 and the request path, which is all these tests need of it.
type fixture struct {
	api      *API
	store    store.Store
	tcp, ws  *Listener
	thing    store.Thing
	inst     store.Installation
	password string
}

func newFixture(t *testing.T, cfg Config) *fixture { return newFixtureStore(t, cfg, nil) }

// newFixtureStore is newFixture with the broker's view of the store wrapped.
func newFixtureStore(t *testing.T, cfg Config, wrap func(store.Store) store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f := &fixture{store: db, password: secret.NewToken()}
	f.thing = store.Thing{ID: "th.1", AppID: "app", VendorThingID: "v1", PasswordHash: "x", CreatedAt: now, ModifiedAt: now}
	f.inst = store.Installation{ID: "in1", AppID: "app", ThingID: "th.1", DeviceType: "MQTT", MQTTTopic: "topic1",
		Username: "user1", PasswordHash: secret.HashToken(f.password), ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	if err := db.PutApp(ctx, store.App{ID: "app", KeyHash: "x", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveOnboarding(ctx, store.Onboarding{Thing: f.thing, NewThing: true, Installation: f.inst,
		Token: store.Token{Hash: "tok", AppID: "app", Kind: store.TokenThing, Subject: "th.1", CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if cfg.Handler == nil {
		cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.URL.Path)
		})
	}
	if f.tcp, err = Listen(TCP, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	if f.ws, err = Listen(WS, "127.0.0.1:0", nil); err != nil {
		t.Fatal(err)
	}
	var bs store.Store = db
	if wrap != nil {
		bs = wrap(db)
	}
	f.api, err = NewAPI(APIConfig{Config: cfg, Store: bs}, f.tcp, f.ws)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.api.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.api.Close()
		db.Close()
	})
	return f
}

// dial connects the fixture's thing with MQTT 3.1.1 and returns the client
// and the channel its messages arrive on.
func (f *fixture) dial(t *testing.T, url string) (paho.Client, chan paho.Message) {
	t.Helper()
	msgs := make(chan paho.Message, 1024)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(f.inst.MQTTTopic).
		SetUsername(f.inst.Username).SetPassword(f.password).SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m }))
	if tok := c.Connect(); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, msgs
}

func (f *fixture) newCommand(t *testing.T, i int) store.Command {
	t.Helper()
	now := time.Now()
	c := store.Command{ID: fmt.Sprintf("c%03d", i), AppID: "app", ThingID: f.thing.ID, State: store.CommandSending,
		Schema: "S", SchemaVersion: 1, Actions: json.RawMessage(`[{"a":{"v":1}}]`), CreatedAt: now, ModifiedAt: now}
	if err := f.store.CreateCommand(context.Background(), c, 0); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPushExactlyOnce: many concurrent Push calls for one thing deliver
// every pending command once, in order, and mark each DELIVERED.
func TestPushExactlyOnce(t *testing.T) {
	f := newFixture(t, Config{})
	c, msgs := f.dial(t, "tcp://"+f.tcp.Addr().String())
	if tok := c.Subscribe(f.inst.MQTTTopic, 0, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		cmd := f.newCommand(t, i)
		wg.Add(2)
		// The hand-over of the new command races a scan that finds it too.
		// (Concurrent hand-overs are not ordered; sequential ones are:
		// TestPushHandsOverWithoutScan.)
		go func() { defer wg.Done(); f.api.Push(context.Background(), cmd) }()
		go func() { defer wg.Done(); f.api.PushPending(f.thing.ID) }()
	}
	wg.Wait()
	got := map[string]bool{}
	for len(got) < n {
		select {
		case m := <-msgs:
			var p struct{ CommandID string }
			if err := json.Unmarshal(m.Payload(), &p); err != nil || !strings.HasPrefix(p.CommandID, "c0") {
				t.Fatalf("push %s (%v)", m.Payload(), err)
			}
			if got[p.CommandID] {
				t.Fatalf("%s pushed twice", p.CommandID)
			}
			got[p.CommandID] = true
			if m.Qos() != 0 {
				t.Fatalf("push QoS %d to a QoS 0 subscription", m.Qos())
			}
		case <-time.After(waitFor):
			t.Fatalf("only %d of %d commands pushed", len(got), n)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("pushed twice: %s", m.Payload())
	case <-time.After(200 * time.Millisecond):
	}
	pending, err := f.store.PendingCommands(context.Background(), f.thing.ID, "", 0)
	if err != nil || len(pending) != 0 {
		t.Fatalf("%d commands still SENDING (%v)", len(pending), err)
	}
}

// TestPushWithoutSubscriberKeepsCommand: with no live subscription a
// command stays SENDING and is pushed by the SUBACK of the next SUBSCRIBE.
func TestPushWithoutSubscriberKeepsCommand(t *testing.T) {
	f := newFixture(t, Config{})
	f.api.Push(context.Background(), f.newCommand(t, 1))
	c, msgs := f.dial(t, "tcp://"+f.tcp.Addr().String())
	f.api.PushPending(f.thing.ID) // connected, not subscribed: nothing to do
	if pending, _ := f.store.PendingCommands(context.Background(), f.thing.ID, "", 0); len(pending) != 1 {
		t.Fatalf("%d pending before SUBSCRIBE, want 1", len(pending))
	}
	if tok := c.Subscribe(f.inst.MQTTTopic, 1, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	select {
	case m := <-msgs:
		if m.Qos() != 1 || !strings.Contains(string(m.Payload()), `"c001"`) {
			t.Fatalf("push %s at QoS %d", m.Payload(), m.Qos())
		}
	case <-time.After(waitFor):
		t.Fatal("pending command not pushed on SUBSCRIBE")
	}
}

// TestConnectTimeout: a connection that sends no CONNECT is closed.
func TestConnectTimeout(t *testing.T) {
	f := newFixture(t, Config{ConnectTimeout: 200 * time.Millisecond})
	for _, addr := range []string{f.tcp.Addr().String()} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("silent connection: read %v, want EOF from the server closing it", err)
		}
	}
}

// TestWebSocket: any path upgrades; a text frame ends the connection.
func TestWebSocket(t *testing.T) {
	f := newFixture(t, Config{})
	for _, path := range []string{"/mqtt", "/", "/anything/else"} {
		c, msgs := f.dial(t, "ws://"+f.ws.Addr().String()+path)
		tok := c.Publish("p/topic1/thing-if/apps/app/targets/thing:th.1/states", 1, false, "GET\n\n")
		if !tok.WaitTimeout(waitFor) {
			t.Fatal("publish")
		}
		select {
		case m := <-msgs:
			if !strings.HasSuffix(string(m.Payload()), "/thing-if/apps/app/targets/thing:th.1/states") {
				t.Fatalf("answer %q", m.Payload())
			}
		case <-time.After(waitFor):
			t.Fatalf("no answer over ws path %s", path)
		}
		c.Disconnect(0)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+f.ws.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitFor))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("a text frame did not end the connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a text frame left the connection open")
	}
}

// TestCloseLeavesNoGoroutines: after clients came and went and the broker
// closed, none of its goroutines is left.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFixture(t, Config{})
	c, _ := f.dial(t, "tcp://"+f.tcp.Addr().String())
	c.Subscribe(f.inst.MQTTTopic, 0, nil).WaitTimeout(waitFor)
	f.api.Push(context.Background(), f.newCommand(t, 1))
	c2, _ := f.dial(t, "ws://"+f.ws.Addr().String()+"/mqtt")
	idle, err := net.Dial("tcp", f.tcp.Addr().String()) // never sends CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond)
	c.Disconnect(0)
	c2.Disconnect(0)
	if err := f.api.Close(); err != nil {
		t.Fatal(err)
	}
	f.store.Close()
	time.Sleep(100 * time.Millisecond) // let paho's own goroutines end
}

// dialManualAck connects the fixture's thing with MQTT 5 (paho.golang)
// acknowledging nothing by itself, subscribed to its topic at QoS 1.
func (f *fixture) dialManualAck(t *testing.T) (*pahov5.Client, chan *pahov5.Publish) {
	t.Helper()
	c, _, msgs := f.dialManualAckConn(t, 0)
	return c, msgs
}

// dialManualAckConn is dialManualAck that also returns the connection, for
// writing packets the client would not, and sends receiveMax (if not 0) as
// the client's Receive Maximum.
func (f *fixture) dialManualAckConn(t *testing.T, receiveMax uint16) (*pahov5.Client, net.Conn, chan *pahov5.Publish) {
	t.Helper()
	conn, err := net.Dial("tcp", f.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *pahov5.Publish, 64)
	c := pahov5.NewClient(pahov5.ClientConfig{
		Conn:                       conn,
		EnableManualAcknowledgment: true,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			msgs <- pr.Packet
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var props *pahov5.ConnectProperties
	if receiveMax != 0 {
		props = &pahov5.ConnectProperties{ReceiveMaximum: &receiveMax}
	}
	if _, err := c.Connect(ctx, &pahov5.Connect{ClientID: f.inst.MQTTTopic, Username: f.inst.Username, UsernameFlag: true,
		Password: []byte(f.password), PasswordFlag: true, KeepAlive: 60, CleanStart: true,
		Properties: props}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: f.inst.MQTTTopic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, conn, msgs
}

func (f *fixture) state(t *testing.T, id string) store.CommandState {
	t.Helper()
	c, err := f.store.Command(context.Background(), f.thing.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	return c.State
}

// awaitState waits for a command to reach a state.
func (f *fixture) awaitState(t *testing.T, id string, want store.CommandState, when string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for f.state(t, id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("command %s not %s %s", id, want, when)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// awaitPush returns the next PUBLISH the thing receives, or fails with
// what was expected.
func awaitPush(t *testing.T, msgs <-chan *pahov5.Publish, what string) *pahov5.Publish {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal(what)
		return nil
	}
}

// awaitPushOf is awaitPush for a PUBLISH whose payload names want.
func awaitPushOf(t *testing.T, msgs <-chan *pahov5.Publish, want, what string) *pahov5.Publish {
	t.Helper()
	m := awaitPush(t, msgs, what)
	if !strings.Contains(string(m.Payload), want) {
		t.Fatalf("pushed %s, want %s", m.Payload, want)
	}
	return m
}

// noPush fails if the thing receives a PUBLISH within 200 ms.
func noPush(t *testing.T, msgs <-chan *pahov5.Publish, what string) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("%s: %s", what, m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestQoS1PushDeliveredOnPuback: a QoS 1 push is DELIVERED when the thing
// acknowledges it, not when it is written; a push never acknowledged (the
// connection died under it) stays SENDING and is pushed again after the
// thing reconnects and subscribes.
func TestQoS1PushDeliveredOnPuback(t *testing.T) {
	f := newFixture(t, Config{})
	c, msgs := f.dialManualAck(t)
	cmd := f.newCommand(t, 1)
	f.api.Push(context.Background(), cmd)
	pub := awaitPush(t, msgs, "no push")
	f.api.PushPending(f.thing.ID) // must not push it again meanwhile
	noPush(t, msgs, "pushed again while awaiting its PUBACK")
	if got := f.state(t, cmd.ID); got != store.CommandSending {
		t.Fatalf("state %s before the PUBACK, want SENDING", got)
	}
	if err := c.Ack(pub); err != nil {
		t.Fatal(err)
	}
	f.awaitState(t, cmd.ID, store.CommandDelivered, "after the PUBACK")

	// Unacknowledged, then the connection dies: pushed again on return.
	cmd2 := f.newCommand(t, 2)
	f.api.Push(context.Background(), cmd2)
	awaitPush(t, msgs, "no push of the second command")
	c.Disconnect(&pahov5.Disconnect{})
	if got := f.state(t, cmd2.ID); got != store.CommandSending {
		t.Fatalf("unacknowledged command is %s, want SENDING", got)
	}
	_, msgs2 := f.dialManualAck(t)
	awaitPushOf(t, msgs2, cmd2.ID, "unacknowledged command not pushed again after reconnecting")
}

// TestInboundPacketIDDoesNotAckPush: a thing's QoS 1 PUBLISH and the
// server's QoS 1 push are numbered independently (MQTT 2.2.1), so the
// thing may publish with the packet ID of a push it has not acknowledged.
// mochi keeps both kinds in one in-flight table by packet ID: the thing's
// PUBLISH took the push's entry, its PUBACK to the thing reached
// OnQosComplete as if it were the thing's PUBACK of the push, and the
// thing's real PUBACK was dropped. The push must stay unacknowledged (a
// connection lost now means pushing it again) until the thing's own PUBACK
// comes, and that PUBACK must still count (a window of one shows a leak).
func TestInboundPacketIDDoesNotAckPush(t *testing.T) {
	f := newFixture(t, Config{MaxInflight: 1})
	c, conn, msgs := f.dialManualAckConn(t, 0)
	cmd := f.newCommand(t, 1)
	f.api.Push(context.Background(), cmd)
	pub := awaitPush(t, msgs, "no push")

	// A request PUBLISH at QoS 1 with the push's packet ID, written raw.
	topic := "p/" + f.inst.MQTTTopic + "/thing-if/apps/app/targets/thing:th.1/states"
	var buf bytes.Buffer
	req := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: pub.PacketID, Payload: []byte("PUT\r\nContent-Type:application/json\r\n\r\n{}")}
	if err := req.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if m := awaitPush(t, msgs, "no answer to the request"); m.Topic != topic { // the request was served
		t.Fatalf("got %s on %s, want the answer on %s", m.Payload, m.Topic, topic)
	}
	time.Sleep(100 * time.Millisecond) // let a wrong acknowledgement be marked
	if got := f.state(t, cmd.ID); got != store.CommandSending {
		t.Fatalf("push is %s after the thing's PUBLISH with its packet ID; want SENDING until its PUBACK", got)
	}

	if err := c.Ack(pub); err != nil {
		t.Fatal(err)
	}
	f.awaitState(t, cmd.ID, store.CommandDelivered, "after the thing's PUBACK")
	cmd2 := f.newCommand(t, 2)
	f.api.Push(context.Background(), cmd2)
	awaitPushOf(t, msgs, cmd2.ID, "window of one still full after the PUBACK: the next command was not pushed")
}

// TestQoS1PushWindow: with more pending commands than the in-flight window
// allows, pushes wait for PUBACKs and all arrive, each once.
func TestQoS1PushWindow(t *testing.T) {
	f := newFixture(t, Config{MaxInflight: 3})
	c, msgs := f.dialManualAck(t)
	const n = 10
	for i := range n {
		f.newCommand(t, i)
	}
	f.api.PushPending(f.thing.ID)
	for i := range n {
		m := awaitPushOf(t, msgs, fmt.Sprintf(`"c%03d"`, i), fmt.Sprintf("only %d of %d pushed", i, n))
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	noPush(t, msgs, "pushed twice")
}

// TestQoS1PushReceiveMaximum: a thing's MQTT 5 Receive Maximum below the
// broker's window bounds its unacknowledged pushes (MQTT 3.3.4).
func TestQoS1PushReceiveMaximum(t *testing.T) {
	f := newFixture(t, Config{})
	c, _, msgs := f.dialManualAckConn(t, 2)
	for i := range 5 {
		f.newCommand(t, i)
	}
	f.api.PushPending(f.thing.ID)
	got := []*pahov5.Publish{awaitPush(t, msgs, "no push"), awaitPush(t, msgs, "only one push")}
	noPush(t, msgs, "a third push before any PUBACK, past the Receive Maximum of 2")
	for i := 2; i < 5; i++ { // each PUBACK lets one more through
		if err := c.Ack(got[0]); err != nil {
			t.Fatal(err)
		}
		got = append(got[1:], awaitPushOf(t, msgs, fmt.Sprintf(`"c%03d"`, i), fmt.Sprintf("push %d not sent after a PUBACK", i)))
	}
}

// countingStore counts the pending-command scans the broker makes.
type countingStore struct {
	store.Store
	scans    atomic.Int64
	failMark atomic.Bool // fail the next MarkDelivered
}

func (c *countingStore) PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error) {
	if afterID == "" {
		c.scans.Add(1) // a scan's first page
	}
	return c.Store.PendingCommands(ctx, thingID, afterID, limit)
}

func (c *countingStore) MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error) {
	if c.failMark.Swap(false) {
		return false, errors.New("store down")
	}
	return c.Store.MarkDelivered(ctx, thingID, id, at)
}

// TestPushHandsOverWithoutScan: a thing with nothing SENDING (or whose
// SENDING commands a scan found all written) gets a new command as it is
// handed over, with no scan of the store; a failed store call ends that,
// and the next command is pushed through a scan that also finds the
// command left SENDING.
func TestPushHandsOverWithoutScan(t *testing.T) {
	cs := &countingStore{}
	f := newFixtureStore(t, Config{}, func(s store.Store) store.Store { cs.Store = s; return cs })
	c, msgs := f.dial(t, "tcp://"+f.tcp.Addr().String())
	defer c.Disconnect(0)
	if tok := c.Subscribe(f.inst.MQTTTopic, 1, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	// The client has the SUBACK before the broker's hook for it has run; a
	// Push in between finds no live connection and leaves the command to
	// the subscription's scan (a loaded machine made that happen once).
	waitSynced(t, f.api, f.thing.ID)
	receive := func(want string) {
		t.Helper()
		select {
		case m := <-msgs:
			var p struct{ CommandID string }
			if err := json.Unmarshal(m.Payload(), &p); err != nil || p.CommandID != want {
				t.Fatalf("pushed %s (%v), want command %s", m.Payload(), err, want)
			}
		case <-time.After(waitFor):
			t.Fatalf("command %s not pushed", want)
		}
	}
	waitDelivered := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(waitFor); ; time.Sleep(2 * time.Millisecond) {
			got, err := f.store.Command(context.Background(), f.thing.ID, id)
			if err == nil && got.State == store.CommandDelivered {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("command %s: %v, %v; want DELIVERED", id, got.State, err)
			}
		}
	}
	const n = 20
	for i := range n {
		cmd := f.newCommand(t, i)
		f.api.Push(context.Background(), cmd)
		receive(cmd.ID)
	}
	// Every mark done before the next one is made to fail: a round marks
	// its acknowledged pushes in no particular order, after its writes.
	for i := range n {
		waitDelivered(fmt.Sprintf("c%03d", i))
	}
	if got := cs.scans.Load(); got != 0 {
		t.Fatalf("%d scans for %d handed-over commands to a thing with nothing pending, want 0", got, n)
	}

	cs.failMark.Store(true) // the PUBACK of the next push is not recorded
	lost := f.newCommand(t, n)
	f.api.Push(context.Background(), lost)
	receive(lost.ID)
	time.Sleep(50 * time.Millisecond) // its PUBACK handled, the mark failed
	if got, _ := f.store.Command(context.Background(), f.thing.ID, lost.ID); got.State != store.CommandSending {
		t.Fatalf("command %s is %s, want SENDING after the failed mark", lost.ID, got.State)
	}
	next := f.newCommand(t, n+1)
	f.api.Push(context.Background(), next)
	receive(lost.ID) // found again by the scan
	receive(next.ID)
	waitDelivered(lost.ID)
	waitDelivered(next.ID)
	if got := cs.scans.Load(); got != 1 {
		t.Fatalf("%d scans, want 1 (after the failure)", got)
	}
}

// TestSubscribeSkipsScanWhenIdle: a thing with no command waiting when the
// broker started is not scanned when it subscribes, until a command is
// pushed for it; a command created while it is away still reaches it.
func TestSubscribeSkipsScanWhenIdle(t *testing.T) {
	cs := &countingStore{}
	f := newFixtureStore(t, Config{}, func(s store.Store) store.Store { cs.Store = s; return cs })
	subscribe := func() (paho.Client, chan paho.Message) {
		c, msgs := f.dial(t, "tcp://"+f.tcp.Addr().String())
		if tok := c.Subscribe(f.inst.MQTTTopic, 0, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			t.Fatal("subscribe")
		}
		return c, msgs
	}
	waitScans := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for cs.scans.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d scans, want %d", cs.scans.Load(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	c, _ := subscribe()
	time.Sleep(100 * time.Millisecond)
	if n := cs.scans.Load(); n != 0 {
		t.Fatalf("%d scans after the SUBSCRIBE of a thing with nothing pending since the start, want 0", n)
	}
	c.Disconnect(0)
	time.Sleep(50 * time.Millisecond)

	cmd := f.newCommand(t, 1) // created while away
	f.api.Push(context.Background(), cmd)
	_, msgs := subscribe()
	select {
	case m := <-msgs:
		if !strings.Contains(string(m.Payload()), cmd.ID) {
			t.Fatalf("push %s", m.Payload())
		}
	case <-time.After(waitFor):
		t.Fatal("a command created while the thing was away was not pushed on SUBSCRIBE")
	}
	waitScans(1)
}

// waitSynced waits until the broker has taken the thing's subscription in
// (live, and synced: its next command is pushed as handed over).
func waitSynced(t *testing.T, b *API, thingID string) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); ; time.Sleep(time.Millisecond) {
		synced, live := b.push.Synced(thingID), b.Subscribed(thingID)
		if synced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thing %s not synced after its SUBACK (live %d)", thingID, live)
		}
	}
}
