package endpoint

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// encode returns the wire form of packets (fuzz seeds, what test clients
// send).
func encode(t testing.TB, version byte, pks ...packets.Packet) []byte {
	var buf bytes.Buffer
	for _, pk := range pks {
		pk.ProtocolVersion = version
		var err error
		switch pk.FixedHeader.Type {
		case packets.Connect:
			err = pk.ConnectEncode(&buf)
		case packets.Publish:
			err = pk.PublishEncode(&buf)
		case packets.Puback:
			err = pk.PubackEncode(&buf)
		case packets.Pubrel:
			err = pk.PubrelEncode(&buf)
		case packets.Subscribe:
			err = pk.SubscribeEncode(&buf)
		case packets.Unsubscribe:
			err = pk.UnsubscribeEncode(&buf)
		case packets.Pingreq:
			err = pk.PingreqEncode(&buf)
		case packets.Disconnect:
			err = pk.DisconnectEncode(&buf)
		default:
			t.Fatalf("encode: type %d", pk.FixedHeader.Type)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzConn feeds a random packet stream, after a valid CONNECT of the
// version the first byte picks, into one connection's state machine: it
// must end when the stream does, never panic, and call Disconnected once.
func FuzzConn(f *testing.F) {
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "ok/1", Qos: 1}, {Filter: "x/#"}}}
	unsub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 2,
		Filters: packets.Subscriptions{{Filter: "ok/1"}}}
	rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 3}
	ping := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 4}
	for _, v := range []byte{3, 4, 5} {
		f.Add(append([]byte{v}, encode(f, v, publish("req/a", 0, 0, "x"), publish("req/b", 1, 1, "y"),
			publish("req/c", 2, 3, "z"), publish("req/c", 2, 3, "z"), rel, sub, ack, unsub, ping)...))
		f.Add(append([]byte{v}, encode(f, v, publish("forbidden/a", 1, 1, "x"))...))
		f.Add(append([]byte{v}, encode(f, v, connectPacket("again", 0))...))
	}
	f.Add([]byte{5, 0x32, 0x08, 0, 3, 'r', 'e', 'q', 0, 0, 0})
	f.Add([]byte{4, 0xf0, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		version := 3 + in[0]%3
		h := &recorder{}
		s, err := New(Config{MaxInflight: 4, MaxPacketSize: 1 << 12, ConnectTimeout: time.Second, WriteTimeout: time.Second}, h)
		if err != nil {
			t.Fatal(err)
		}
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() {
			s.serveConn(server)
			close(done)
		}()
		go io.Copy(io.Discard, client) //nolint:errcheck // drains the answers until the pipe closes
		pk := connectPacket("a", 0)
		if version == 3 {
			pk.Connect.ProtocolName = []byte("MQIsdp")
		}
		stream := append(encode(t, version, pk), in[1:]...)
		_ = client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = client.Write(stream)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the connection did not end with its stream")
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.ended) != len(h.conns) {
			t.Fatalf("%d connections accepted, %d Disconnected calls", len(h.conns), len(h.ended))
		}
		if s.Connections() != 0 {
			t.Fatalf("%d connections counted after the end", s.Connections())
		}
	})
}
