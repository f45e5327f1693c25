package endpoint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

const waitFor = 10 * time.Second

// recorder is a Handler that accepts every CONNECT whose client ID does
// not start with "refuse", allows every PUBLISH whose topic does not start
// with "forbidden/" (answering on "answer/{topic}"), grants subscriptions
// to "ok/..." only, and records what it was called with.
type recorder struct {
	mu        sync.Mutex
	publishes []string
	pubacks   []uint16
	ended     []error
	conns     []*Conn
	refusal   Refusal
}

func (r *recorder) Connect(_ context.Context, c *Conn, pk *packets.Packet) Refusal {
	if bytes.HasPrefix([]byte(pk.Connect.ClientIdentifier), []byte("refuse")) {
		return RefuseCredentials
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, c)
	return r.refusal
}

func (r *recorder) Publish(_ context.Context, c *Conn, pk *packets.Packet) (*packets.Packet, bool) {
	if bytes.HasPrefix([]byte(pk.TopicName), []byte("forbidden/")) {
		return nil, false
	}
	r.mu.Lock()
	r.publishes = append(r.publishes, pk.TopicName+" "+string(pk.Payload))
	r.mu.Unlock()
	return &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "answer/" + pk.TopicName, Payload: pk.Payload}, true
}

func (r *recorder) Subscribe(_ *Conn, sub packets.Subscription) bool {
	return bytes.HasPrefix([]byte(sub.Filter), []byte("ok/"))
}

func (r *recorder) Subscribed(*Conn, *packets.Packet, []byte) {}

func (r *recorder) Unsubscribe(_ *Conn, filter string) bool { return filter == "ok/1" }

func (r *recorder) Puback(_ *Conn, id uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubacks = append(r.pubacks, id)
}

func (r *recorder) Disconnected(_ *Conn, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, cause)
}

func (r *recorder) published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.publishes...)
}

// start runs a server on a loopback TCP listener.
func start(t *testing.T, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	l, err := Listen(TCP, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, h, l)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	return s, l.Addr().String()
}

// client is a raw MQTT client: it writes encoded packets and reads what
// comes back, decoded.
type client struct {
	t       *testing.T
	c       net.Conn
	r       *bufio.Reader
	version byte
}

func dial(t *testing.T, addr string, version byte) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c), version: version}
}

func (c *client) send(pk packets.Packet) {
	c.t.Helper()
	c.write(encode(c.t, c.version, pk))
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next packet, or an error (io.EOF: the server closed
// the connection; a timeout: nothing came within d).
func (c *client) read(d time.Duration) (packets.Packet, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	b, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = c.version
	pk.FixedHeader.Remaining = n
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// outcome names the next packet briefly ("CONNACK 0x00", "PUBLISH
// answer/x", "closed", "silent").
func (c *client) outcome(d time.Duration) string {
	pk, err := c.read(d)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), isReset(err):
		return "closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "silent"
	case err != nil:
		return "error " + err.Error()
	}
	name := strings.ToLower(packets.PacketNames[pk.FixedHeader.Type])
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return fmt.Sprintf("%s %s", name, pk.TopicName)
	case packets.Puback, packets.Pubrec:
		return fmt.Sprintf("%s %d", name, pk.PacketID)
	case packets.Pubcomp:
		return fmt.Sprintf("%s %d %#02x", name, pk.PacketID, pk.ReasonCode)
	case packets.Suback, packets.Unsuback:
		return fmt.Sprintf("%s %x", name, pk.ReasonCodes)
	case packets.Pingresp:
		return name
	}
	return fmt.Sprintf("%s %#02x", name, pk.ReasonCode)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func connectPacket(id string, keepalive uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, ClientIdentifier: id, Keepalive: keepalive}}
}

// connect dials and completes a CONNECT of the given version.
func connect(t *testing.T, addr string, version byte, id string) *client {
	t.Helper()
	c := dial(t, addr, version)
	pk := connectPacket(id, 0)
	if version == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	c.send(pk)
	if got := c.outcome(waitFor); got != "connack 0x00" {
		t.Fatalf("CONNECT: %s", got)
	}
	return c
}

func publish(topic string, qos byte, id uint16, payload string) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(payload)}
}

// TestConnack: the CONNACK codes per protocol version, for what the server
// refuses itself and what the Handler refuses.
func TestConnack(t *testing.T) {
	_, addr := start(t, Config{}, &recorder{})
	for _, tt := range []struct {
		name    string
		version byte
		pk      func() packets.Packet
		want    string
	}{
		{"3.1 accepted", 3, func() packets.Packet {
			pk := connectPacket("a", 0)
			pk.Connect.ProtocolName = []byte("MQIsdp")
			return pk
		}, "connack 0x00"},
		{"3.1.1 accepted", 4, func() packets.Packet { return connectPacket("a", 0) }, "connack 0x00"},
		{"5 accepted", 5, func() packets.Packet { return connectPacket("a", 0) }, "connack 0x00"},
		{"3.1.1 refused by the handler", 4, func() packets.Packet { return connectPacket("refuse", 0) }, "connack 0x04"},
		{"5 refused by the handler", 5, func() packets.Packet { return connectPacket("refuse", 0) }, "connack 0x86"},
		{"3.1.1 wrong protocol name", 4, func() packets.Packet {
			pk := connectPacket("a", 0)
			pk.Connect.ProtocolName = []byte("MQTX")
			return pk
		}, "connack 0x01"},
		{"5 wrong protocol name", 5, func() packets.Packet {
			pk := connectPacket("a", 0)
			pk.Connect.ProtocolName = []byte("MQTX")
			return pk
		}, "connack 0x82"},
		{"3.1.1 persistent session without client ID", 4, func() packets.Packet {
			pk := connectPacket("", 0)
			pk.Connect.Clean = false
			return pk
		}, "connack 0x02"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr, tt.version)
			c.send(tt.pk())
			if got := c.outcome(waitFor); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestConnackProperties: an MQTT 5 client learns the server's limits, and
// a requested session expiry comes back as 0: no session is kept.
func TestConnackProperties(t *testing.T) {
	_, addr := start(t, Config{MaxInflight: 7, MaxPacketSize: 4096}, &recorder{})
	c := dial(t, addr, 5)
	pk := connectPacket("a", 0)
	pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 3600, true
	c.send(pk)
	ack, err := c.read(waitFor)
	if err != nil {
		t.Fatal(err)
	}
	p := ack.Properties
	if p.ReceiveMaximum != 7 || p.MaximumPacketSize != 4096 || !p.SessionExpiryIntervalFlag || p.SessionExpiryInterval != 0 ||
		p.TopicAliasMaximum != 0 || !p.WildcardSubAvailableFlag || p.WildcardSubAvailable != 0 {
		t.Fatalf("CONNACK properties %+v", p)
	}
}

// TestSession walks what an accepted client may do, in order, on one
// connection per protocol version.
func TestSession(t *testing.T) {
	for _, v := range []byte{3, 4, 5} {
		t.Run(fmt.Sprint("version ", v), func(t *testing.T) {
			h := &recorder{}
			_, addr := start(t, Config{}, h)
			c := connect(t, addr, v, "a")
			steps := []struct {
				send packets.Packet
				want []string
			}{
				{publish("req/0", 0, 0, "x"), []string{"publish answer/req/0"}},
				// The answer and the PUBACK of a QoS 1 request, nothing more.
				{publish("req/1", 1, 7, "x"), []string{"publish answer/req/1", "puback 7"}},
				{publish("req/2", 2, 8, "x"), []string{"publish answer/req/2", "pubrec 8"}},
				// A duplicate before the PUBREL is acknowledged, not served again.
				{publish("req/2", 2, 8, "x"), []string{"pubrec 8"}},
				{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 8}, []string{"pubcomp 8 0x00"}},
				{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 2,
					Filters: packets.Subscriptions{{Filter: "ok/1", Qos: 1}, {Filter: "no/1"}, {Filter: "ok/2", Qos: 2}}},
					[]string{map[bool]string{true: "suback 018702", false: "suback 018002"}[v == 5]}},
				{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 3,
					Filters: packets.Subscriptions{{Filter: "ok/1"}, {Filter: "ok/9"}}},
					[]string{map[bool]string{true: "unsuback 0011", false: "unsuback "}[v == 5]}},
				{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}, []string{"pingresp"}},
				{packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 99}, nil},
			}
			for i, st := range steps {
				c.send(st.send)
				for _, want := range st.want {
					if got := c.outcome(waitFor); got != want {
						t.Fatalf("step %d (%s): got %s, want %s", i, packets.PacketNames[st.send.FixedHeader.Type], got, want)
					}
				}
			}
			if got := c.outcome(100 * time.Millisecond); got != "silent" {
				t.Fatalf("after the steps: %s", got)
			}
			if got, want := len(h.published()), 3; got != want {
				t.Fatalf("%d requests served, want %d: %q", got, want, h.published())
			}
			h.mu.Lock()
			acks := h.pubacks
			h.mu.Unlock()
			if len(acks) != 1 || acks[0] != 99 {
				t.Fatalf("PUBACKs handed over: %v", acks)
			}
		})
	}
}

// TestEnds: what ends a connection, and what an MQTT 5 client is told.
func TestEnds(t *testing.T) {
	h := &recorder{}
	_, addr := start(t, Config{MaxInflight: 2, MaxPacketSize: 1024}, h)
	alias := publish("req/a", 0, 0, "x")
	alias.Properties.TopicAlias, alias.Properties.TopicAliasFlag = 1, true
	for _, tt := range []struct {
		name    string
		version byte
		send    []packets.Packet
		raw     []byte
		want    string
	}{
		{"refused PUBLISH, 3.1.1", 4, []packets.Packet{publish("forbidden/x", 0, 0, "x")}, nil, "closed"},
		{"refused PUBLISH, 5", 5, []packets.Packet{publish("forbidden/x", 0, 0, "x")}, nil, "disconnect 0x87"},
		{"topic alias", 5, []packets.Packet{alias}, nil, "disconnect 0x94"},
		{"receive maximum", 5, []packets.Packet{publish("req/a", 2, 1, "x"), publish("req/b", 2, 2, "x"), publish("req/c", 2, 3, "x")}, nil, "disconnect 0x93"},
		{"packet too large", 5, []packets.Packet{publish("req/a", 0, 0, string(make([]byte, 2000)))}, nil, "disconnect 0x95"},
		{"second CONNECT", 5, []packets.Packet{connectPacket("a", 0)}, nil, "disconnect 0x82"},
		{"QoS 1 without packet ID", 5, nil, []byte{0x32, 0x08, 0, 3, 'r', 'e', 'q', 0, 0, 0}, "disconnect 0x82"},
		{"PUBLISH cut short", 5, nil, []byte{0x32, 0x07, 0, 3, 'r', 'e', 'q', 0, 1}, "disconnect 0x81"},
		{"reserved packet type", 4, nil, []byte{0xf0, 0x00}, "closed"},
		{"DISCONNECT", 4, []packets.Packet{{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}}}, nil, "closed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := connect(t, addr, tt.version, "a")
			for _, pk := range tt.send {
				c.send(pk)
			}
			if tt.raw != nil {
				c.write(tt.raw)
			}
			var got string
			for got = c.outcome(waitFor); got != "closed" && got != tt.want; got = c.outcome(waitFor) {
				if got == "silent" {
					break
				}
			}
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if got != "closed" {
				if next := c.outcome(waitFor); next != "closed" {
					t.Fatalf("after %s: %s, want the connection closed", got, next)
				}
			}
		})
	}
}

// TestKeepAlive: a connection silent for 1.5 × its keep-alive is closed;
// one that pings stays.
func TestKeepAlive(t *testing.T) {
	_, addr := start(t, Config{}, &recorder{})
	silent := dial(t, addr, 4)
	silent.send(connectPacket("a", 1))
	pinging := dial(t, addr, 4)
	pinging.send(connectPacket("b", 1))
	for _, c := range []*client{silent, pinging} {
		if got := c.outcome(waitFor); got != "connack 0x00" {
			t.Fatal(got)
		}
	}
	start := time.Now()
	for range 4 {
		time.Sleep(600 * time.Millisecond)
		pinging.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		if got := pinging.outcome(waitFor); got != "pingresp" {
			t.Fatalf("pinging client: %s", got)
		}
	}
	if got := silent.outcome(waitFor); got != "closed" {
		t.Fatalf("silent client: %s", got)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("silent client closed after %v, before 1.5 × its keep-alive of 1 s", d)
	}
}

// TestConnectTimeout: a connection that sends no CONNECT is closed.
func TestConnectTimeout(t *testing.T) {
	_, addr := start(t, Config{ConnectTimeout: 100 * time.Millisecond}, &recorder{})
	c := dial(t, addr, 4)
	if got := c.outcome(waitFor); got != "closed" {
		t.Fatalf("got %s", got)
	}
}

// TestTakeover: with Takeover a second CONNECT of a client ID ends the
// first connection (MQTT 5: DISCONNECT 0x8E); without it both live.
func TestTakeover(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprint("takeover ", takeover), func(t *testing.T) {
			h := &recorder{}
			s, addr := start(t, Config{Takeover: takeover}, h)
			first := connect(t, addr, 5, "same")
			second := connect(t, addr, 5, "same")
			want := "silent"
			if takeover {
				want = "disconnect 0x8e"
			}
			if got := first.outcome(200 * time.Millisecond); got != want {
				t.Fatalf("first connection: %s, want %s", got, want)
			}
			second.send(publish("req/x", 1, 1, "x"))
			if got := second.outcome(waitFor); got != "publish answer/req/x" {
				t.Fatalf("second connection: %s", got)
			}
			wantConns := int64(2)
			if takeover {
				wantConns = 1
			}
			deadline := time.Now().Add(waitFor)
			for s.Connections() != wantConns && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := s.Connections(); got != wantConns {
				t.Fatalf("%d connections, want %d", got, wantConns)
			}
		})
	}
}

// TestIdleConnHoldsNoBuffer: once a burst is read, the connection gives
// its read buffer back.
func TestIdleConnHoldsNoBuffer(t *testing.T) {
	h := &recorder{}
	_, addr := start(t, Config{}, h)
	c := connect(t, addr, 4, "a")
	c.send(publish("req/x", 1, 1, "x"))
	c.outcome(waitFor)
	c.outcome(waitFor)
	h.mu.Lock()
	sc := h.conns[0]
	h.mu.Unlock()
	// The read loop is back in its idle read once the PUBACK is written;
	// give it the moment it needs to get there.
	deadline := time.Now().Add(waitFor)
	for {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		c.outcome(waitFor)
		time.Sleep(10 * time.Millisecond)
		if !sc.rd.bufHeld() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the idle connection still holds its read buffer")
		}
	}
}

// TestWriteLargerThanClientMaximum: a packet over the client's MQTT 5
// Maximum Packet Size is not sent; the others of the same write are.
func TestWriteLargerThanClientMaximum(t *testing.T) {
	h := &recorder{}
	_, addr := start(t, Config{}, h)
	c := dial(t, addr, 5)
	pk := connectPacket("a", 0)
	pk.Properties.MaximumPacketSize = 64
	c.send(pk)
	if got := c.outcome(waitFor); got != "connack 0x00" {
		t.Fatal(got)
	}
	c.send(publish("req/x", 1, 5, string(make([]byte, 100))))
	if got := c.outcome(waitFor); got != "puback 5" {
		t.Fatalf("got %s, want the PUBACK alone", got)
	}
}

// TestCloseWithBlockedWriter: Close returns while a write to a client that
// never reads is blocked, and leaves no goroutine behind.
func TestCloseWithBlockedWriter(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := &recorder{}
	l, err := Listen(TCP, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{WriteTimeout: time.Hour}, h, l)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	c := connect(t, l.Addr().String(), 5, "a")
	h.mu.Lock()
	sc := h.conns[0]
	h.mu.Unlock()
	written := make(chan error, 1)
	go func() {
		big := publish("push", 0, 0, string(make([]byte, 64<<20)))
		written <- sc.Write(&big)
	}()
	time.Sleep(100 * time.Millisecond) // the write fills the socket buffers and blocks
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close hangs on a blocked writer")
	}
	if err := <-written; err == nil {
		t.Fatal("the blocked write succeeded")
	}
	c.c.Close()
}

// panicker is a recorder whose Publish panics on topic "panic".
type panicker struct{ recorder }

func (p *panicker) Publish(ctx context.Context, c *Conn, pk *packets.Packet) (*packets.Packet, bool) {
	if pk.TopicName == "panic" {
		panic("handler bug")
	}
	return p.recorder.Publish(ctx, c, pk)
}

// TestHandlerPanic: a panic in a Handler ends its connection (MQTT 5:
// DISCONNECT 0x80), its Disconnected still runs, so no session outlives
// the connection, the panic is logged without its value, and the server
// goes on serving.
func TestHandlerPanic(t *testing.T) {
	var logs syncBuffer
	h := &panicker{}
	_, addr := start(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, h)
	c := connect(t, addr, 5, "a")
	c.send(publish("panic", 0, 0, "secret"))
	if got := c.outcome(waitFor); got != "disconnect 0x80" {
		t.Fatalf("got %s, want disconnect 0x80", got)
	}
	if got := c.outcome(waitFor); got != "closed" {
		t.Fatalf("after the DISCONNECT: %s", got)
	}
	deadline := time.Now().Add(waitFor)
	for !strings.Contains(logs.String(), "panic serving a connection") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	ended := append([]error(nil), h.ended...)
	h.mu.Unlock()
	if len(ended) != 1 || ended[0] == nil {
		t.Fatalf("Disconnected causes %v, want one error", ended)
	}
	if out := logs.String(); !strings.Contains(out, "panic serving a connection") || strings.Contains(out, "handler bug") || strings.Contains(out, "secret") {
		t.Fatalf("log:\n%s", out)
	}
	next := connect(t, addr, 4, "b")
	next.send(publish("req/x", 0, 0, "y"))
	if got := next.outcome(waitFor); got != "publish answer/req/x" {
		t.Fatalf("after the panic, a new connection: %s", got)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
