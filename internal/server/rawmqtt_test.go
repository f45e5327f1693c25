package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/codec"
)

// rawConn is an MQTT connection driven byte by byte, for inputs no client
// library would send.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	v5 bool
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil && !errors.Is(err, net.ErrClosed) {
		r.t.Logf("write: %v", err) // the server may have closed already: the outcome says so
	}
}

// connectPacket encodes a CONNECT; version 3 uses the name MQIsdp.
func connectPacket(version byte, clientID, user, pass string) []byte {
	name := "MQTT"
	if version == 3 {
		name = "MQIsdp"
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte(name), Clean: true, ClientIdentifier: clientID, Keepalive: 60,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: pass != "", Password: []byte(pass)}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func publishPacket(version byte, topic string, qos byte, retain bool, payload []byte) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		ProtocolVersion: version, TopicName: topic, Payload: payload}
	if qos > 0 {
		pk.PacketID = 7
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func subscribePacket(version byte, filter string) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: version,
		PacketID: 1, Filters: packets.Subscriptions{{Filter: filter}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// connect sends a CONNECT and fails unless it is accepted.
func (r *rawConn) connect(version byte, clientID, user, pass string) {
	r.t.Helper()
	r.v5 = version == 5
	r.write(connectPacket(version, clientID, user, pass))
	if got := r.outcome(); got != "CONNACK 0x00" {
		r.t.Fatalf("CONNECT: %s", got)
	}
}

// readPacket reads one packet: its fixed header byte and body.
func (r *rawConn) readPacket(d time.Duration) (byte, []byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var h [1]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		return 0, nil, err
	}
	var n, shift uint
	for i := 0; ; i++ {
		var b [1]byte
		if _, err := io.ReadFull(r.c, b[:]); err != nil {
			return 0, nil, err
		}
		n |= uint(b[0]&0x7f) << shift
		shift += 7
		if b[0]&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r.c, body)
	return h[0], body, err
}

// outcome reads until something decisive happens and describes it:
// "CONNACK 0xNN", "SUBACK 0xNN", "<status> <errorCode>" for an answer,
// "closed" when the server ends the connection (after a DISCONNECT or
// not), "silent" when nothing comes within a few seconds.
func (r *rawConn) outcome() string {
	r.t.Helper()
	for {
		first, body, err := r.readPacket(5 * time.Second)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return "silent"
		case err != nil:
			return "closed"
		}
		switch first >> 4 {
		case packets.Connack:
			if len(body) < 2 {
				return "bad CONNACK"
			}
			return fmt.Sprintf("CONNACK 0x%02x", body[1])
		case packets.Suback:
			i := 2
			if r.v5 {
				l, n := binary.Uvarint(body[2:])
				i += n + int(l)
			}
			if len(body) <= i {
				return "bad SUBACK"
			}
			return fmt.Sprintf("SUBACK 0x%02x", body[i])
		case packets.Publish:
			if len(body) < 2 {
				return "bad PUBLISH"
			}
			tl := int(binary.BigEndian.Uint16(body))
			i := 2 + tl
			if (first>>1)&3 > 0 {
				i += 2
			}
			if r.v5 {
				l, n := binary.Uvarint(body[i:])
				i += n + int(l)
			}
			res, err := codec.ParseResponse(body[i:])
			if err != nil {
				return fmt.Sprintf("bad answer %q", body[i:])
			}
			var e struct {
				ErrorCode string `json:"errorCode"`
			}
			_ = json.Unmarshal(res.Body, &e)
			return fmt.Sprintf("%d %s", res.StatusCode, e.ErrorCode)
		case packets.Disconnect:
			return "closed"
		}
		// PUBACK, PUBREC, PINGRESP: not decisive.
	}
}
