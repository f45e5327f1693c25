package broker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/store"
)

// rawConnect opens a TCP connection and sends an MQTT 3.1.1 CONNECT with
// keep-alive 0 (no read deadline from mochi), returning the connection and
// the CONNACK return code.
func rawConnect(t *testing.T, addr, clientID, user, pass string) (net.Conn, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: clientID,
			UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pass)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, ack[3]
}

// rawSubscribe sends a SUBSCRIBE at QoS 0 without reading the SUBACK.
func rawSubscribe(t *testing.T, conn net.Conn, filter string) {
	t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4,
		PacketID: 1, Filters: packets.Subscriptions{{Filter: filter}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionsPerAddress: a source address gets MaxConnsPerAddr
// connections over all the broker's listeners, counted from accept, and a
// freed slot can be used again.
func TestConnectionsPerAddress(t *testing.T) {
	f := newFixture(t, Config{MaxConnsPerAddr: 2})
	open := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	waitOpen := func(want int) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for f.api.srv.OpenFrom("127.0.0.1") != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections counted, want %d", f.api.srv.OpenFrom("127.0.0.1"), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	a := open(f.tcp.Addr().String())
	waitOpen(1)
	b := open(f.tcp.Addr().String())
	waitOpen(2)
	third := open(f.tcp.Addr().String())
	_ = third.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := third.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("third connection: read %v, want EOF: the server should close it", err)
	}
	// The first two stay open.
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("second connection: read %v, want a timeout", err)
	}
	a.Close()
	waitOpen(1)
	// A real client gets the freed slot.
	if _, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password); code != 0 {
		t.Fatalf("CONNACK %#x after a slot was freed", code)
	}
}

// TestSlowReaderIsDisconnected: a subscriber that never reads is
// disconnected once a write to it cannot finish within WriteTimeout, and its
// commands stay pending for its next connection: the server holds neither
// memory nor a blocked push for it.
func TestSlowReaderIsDisconnected(t *testing.T) {
	f := newFixture(t, Config{WriteTimeout: 300 * time.Millisecond})
	conn, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
	if code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	// Enough large commands to fill the socket buffers many times over.
	const n = 100
	f.storeBigCommands(t, n, 256<<10)
	rawSubscribe(t, conn, f.inst.MQTTTopic) // the SUBACK starts the push; we never read
	deadline := time.Now().Add(waitFor)
	for f.api.Connections() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the non-reading subscriber is still connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The commands written before the failed write are marked DELIVERED
	// as the push round ends, just after the disconnect.
	var pending []store.Command
	for {
		var err error
		if pending, err = f.store.PendingCommands(context.Background(), f.thing.ID, "", 0); err != nil {
			t.Fatal(err)
		}
		if len(pending) < n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(pending) == 0 || len(pending) == n {
		t.Fatalf("%d of %d commands pending, want some delivered and the rest pending", len(pending), n)
	}
	t.Logf("%d of %d commands written before the disconnect", n-len(pending), n)
}

// TestQoS1RequestAnsweredThenAckedOnce: a QoS 1 request gets its answer and
// then one PUBACK, never a second one.
func TestQoS1RequestAnsweredThenAckedOnce(t *testing.T) {
	f := newFixture(t, Config{})
	conn, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
	if code != 0 {
		t.Fatalf("CONNACK %d", code)
	}
	topic := "p/" + f.inst.MQTTTopic + "/thing-if/apps/app/targets/thing:th.1/states"
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 4,
		TopicName: topic, PacketID: 7, Payload: []byte("PUT\r\n\r\n{}")}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(conn)
	for len(got) < 3 {
		var fh packets.FixedHeader
		b := make([]byte, 1)
		if _, err := io.ReadFull(r, b); err != nil {
			if len(got) == 2 && errors.Is(err, os.ErrDeadlineExceeded) {
				break // nothing after the PUBACK: as it should be
			}
			t.Fatalf("after %v: %v", got, err)
		}
		if err := fh.Decode(b[0]); err != nil {
			t.Fatal(err)
		}
		n, _, err := packets.DecodeLength(r)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		switch fh.Type {
		case packets.Publish:
			got = append(got, "PUBLISH")
		case packets.Puback:
			got = append(got, fmt.Sprintf("PUBACK %d", int(body[0])<<8|int(body[1])))
		default:
			got = append(got, fmt.Sprint("type ", fh.Type))
		}
		if len(got) == 2 { // wait a little for a second PUBACK
			_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		}
	}
	if want := []string{"PUBLISH", "PUBACK 7"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestCloseWhileClientsLeave: closing the broker while its clients are
// leaving finishes. mochi's own listener close (Clients.GetByListener)
// takes the clients' read lock twice, and a leaving client's Delete
// queued between the two hung shutdown for good (disconnectClients).
func TestCloseWhileClientsLeave(t *testing.T) {
	const clients = 40
	for round := range 5 {
		f := newFixture(t, Config{})
		conns := make([]net.Conn, 0, clients)
		for i := range clients {
			inst := f.inst
			inst.ID, inst.MQTTTopic, inst.Username = fmt.Sprint("in-", i), fmt.Sprint("topic-", i), fmt.Sprint("user-", i)
			if err := f.store.PutInstallation(context.Background(), inst); err != nil {
				t.Fatal(err)
			}
			conn, code := rawConnect(t, f.tcp.Addr().String(), inst.MQTTTopic, inst.Username, f.password)
			if code != 0 {
				t.Fatalf("CONNACK %#x", code)
			}
			conns = append(conns, conn)
		}
		start := make(chan struct{})
		for _, c := range conns {
			go func() {
				<-start
				c.Close()
			}()
		}
		closed := make(chan error, 1)
		go func() {
			<-start
			closed <- f.api.Close()
		}()
		close(start)
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitFor):
			t.Fatalf("round %d: Close still running after %v with clients leaving", round, waitFor)
		}
	}
}

// TestNonReadingSubscriberHoldsLittle: what the server holds for a
// subscribed thing that never reads is bounded by its in-flight window and
// the socket buffers, not by how many commands are pending: 60 commands of
// 900 KB (54 MB) waiting for a connection whose socket is full grow the
// heap by a few pages of the scan, not by all of them (mochi's broker
// queued every one: 150 such commands grew the heap by 225 MB).
func TestNonReadingSubscriberHoldsLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 54 MB of commands")
	}
	f := newFixture(t, Config{WriteTimeout: time.Minute})
	const n = 60
	f.storeBigCommands(t, n, 900<<10)
	conn, code := rawConnect(t, f.tcp.Addr().String(), f.inst.MQTTTopic, f.inst.Username, f.password)
	if code != 0 {
		t.Fatalf("CONNACK %#x", code)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(64 << 10) // a small device
	}
	var before, during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rawSubscribe(t, conn, f.inst.MQTTTopic) // the SUBACK starts the push; we never read
	// The push fills the socket buffers and blocks in its write.
	time.Sleep(time.Second)
	runtime.GC()
	runtime.ReadMemStats(&during)
	if f.api.Connections() != 1 {
		t.Fatal("the subscriber was disconnected before the measure")
	}
	grown := int64(during.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap grew by %.1f MB with %d MB pending", float64(grown)/(1<<20), n*900>>10)
	if limit := int64(16 << 20); grown > limit {
		t.Fatalf("heap grew by %.1f MB for a thing that does not read, want at most %d MB", float64(grown)/(1<<20), limit>>20)
	}
}

// storeBigCommands stores n SENDING commands of about size bytes each for
// the fixture's thing and hands each to the push engine, as REST does.
func (f *fixture) storeBigCommands(t *testing.T, n, size int) {
	t.Helper()
	big := `[{"a":{"v":"` + strings.Repeat("x", size) + `"}}]`
	for i := range n {
		now := time.Now()
		c := store.Command{ID: fmt.Sprintf("c%03d", i), AppID: "app", ThingID: f.thing.ID, State: store.CommandSending,
			Schema: "S", SchemaVersion: 1, Actions: json.RawMessage(big), CreatedAt: now, ModifiedAt: now}
		if err := f.store.CreateCommand(context.Background(), c, 0); err != nil {
			t.Fatal(err)
		}
		f.api.Push(context.Background(), c) // not subscribed yet: kept
	}
}
