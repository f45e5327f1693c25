package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

func dialAnonymous(t *testing.T, s *Server) *v3Client {
	t.Helper()
	c, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func dialThing(t *testing.T, s *Server, ob onboardResult) *v3Client {
	t.Helper()
	ep := ob.MQTTEndpoint
	c, err := dialV3(t, brokerURL(s, "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitDisconnected fails unless the client's connection is closed by the
// server within waitFor.
func waitDisconnected(t *testing.T, c mqttClient) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("the server did not close the connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIsolation: a thing can reach nothing of another thing's, by
// subscription, publish, will message or API call, and never receives
// another thing's commands or answers.
func TestIsolation(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	anon := dialAnonymous(t, s)
	a := onboard(t, anon, "vt-a", "pw-a")
	b := onboard(t, anon, "vt-b", "pw-b")
	ca, cb := dialThing(t, s, a), dialThing(t, s, b)
	cb.Subscribe(t, b.MQTTEndpoint.MQTTTopic, 0)

	for _, filter := range []string{
		b.MQTTEndpoint.MQTTTopic, "#", "+", "p/#", "$SYS/#", "p/" + b.MQTTEndpoint.MQTTTopic + "/#",
		"p/+/thing-if/apps/" + testAppID + "/onboardings", a.MQTTEndpoint.MQTTTopic + "/#", "+/#",
	} {
		if got := ca.Subscribe(t, filter, 0); got != 0x80 {
			t.Errorf("thing A subscribing to %q: SUBACK %#x, want 0x80", filter, got)
		}
	}
	ca.Subscribe(t, a.MQTTEndpoint.MQTTTopic, 0)

	// A command to B reaches B only.
	cid := sendCommand(t, s, admin, b.ThingID, `[{"turnPower":{"power":true}}]`)
	if m := await(t, cb, b.MQTTEndpoint.MQTTTopic); !strings.Contains(string(m.Payload), cid) {
		t.Fatalf("B got %s", m.Payload)
	}
	// B's API answer reaches B only.
	res := call(t, cb, apiTopic(b, "targets/thing:"+b.ThingID+"/states"), "PUT",
		map[string]string{"Authorization": "Bearer " + b.AccessToken, "Content-Type": "application/json"}, `{"power":true}`)
	if res.StatusCode != 204 {
		t.Fatalf("B's state upload: %d %s", res.StatusCode, res.Body)
	}

	// A calling the API for B through its own request space is refused,
	// with its own token and with B's.
	for name, tok := range map[string]string{"A's token": a.AccessToken, "B's token": b.AccessToken} {
		res := call(t, ca, apiTopic(a, "targets/thing:"+b.ThingID+"/states"), "PUT",
			map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, `{"power":false}`)
		if res.StatusCode != 403 {
			t.Errorf("A writing B's state with %s: %d %s, want 403", name, res.StatusCode, res.Body)
		}
	}
	var st map[string]any
	if code := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+b.ThingID+"/states", admin, "", "", &st); code != 200 || st["power"] != true {
		t.Fatalf("B's state changed by A: %v", st)
	}
	quiet(t, ca, 100*time.Millisecond)

	// A publishing into B's request space is disconnected; B gets nothing.
	ca.c.Publish(apiTopic(b, "targets/thing:"+b.ThingID+"/states"), 1, false, "PUT\n\n{}")
	waitDisconnected(t, ca)
	quiet(t, cb, 100*time.Millisecond)

	// A will message aimed at B's topic is dropped, not delivered when A's
	// connection breaks (mochi publishes wills without an ACL check).
	ep := a.MQTTEndpoint
	conn := rawConnect(t, s.Addr("mqtt-tcp").String(), packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: ep.MQTTTopic,
		UsernameFlag: true, Username: []byte(ep.Username), PasswordFlag: true, Password: []byte(ep.Password),
		WillFlag: true, WillTopic: b.MQTTEndpoint.MQTTTopic,
		WillPayload: []byte(`{"commandID":"forged","actions":[{"turnPower":{"power":false}}]}`),
	})
	conn.Close() // no DISCONNECT: the will would fire
	quiet(t, cb, 300*time.Millisecond)
}

// rawConnect opens a TCP connection, sends an MQTT 3.1.1 CONNECT and
// checks the CONNACK accepts it.
func rawConnect(t *testing.T, addr string, p packets.ConnectParams) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4, Connect: p}
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x, %v", ack, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn
}

// TestOnboardingBrokerScope: on the onboarding broker a device may subscribe
// only to its own onboarding topic, gets exactly one answer even when
// subscribed, gets an error for API calls, and is disconnected for
// publishes elsewhere.
func TestOnboardingBrokerScope(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	c := dialAnonymous(t, s)
	for _, filter := range []string{"#", "p/#", "$SYS/#", "p/anonymous/thing-if/apps/other/onboardings", "p/anonymous/#"} {
		if got := c.Subscribe(t, filter, 0); got != 0x80 {
			t.Errorf("subscribe %q: SUBACK %#x, want 0x80", filter, got)
		}
	}
	if got := c.Subscribe(t, onboardTopic, 0); got != 0 {
		t.Fatalf("subscribe to own onboarding topic: SUBACK %#x", got)
	}
	ob := onboard(t, c, "vt-scope", "pw")
	quiet(t, c, 200*time.Millisecond) // exactly one copy

	// A second device, connected meanwhile, saw none of it.
	other := dialAnonymous(t, s)
	other.Subscribe(t, onboardTopic, 0)
	onboard(t, c, "vt-scope-2", "pw")
	quiet(t, other, 200*time.Millisecond)

	// API calls on the onboarding broker get an error answer.
	res := call(t, c, "p/anonymous/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", "PUT",
		map[string]string{"Authorization": "Bearer " + ob.AccessToken, "Content-Type": "application/json"}, `{"power":true}`)
	if res.StatusCode < 400 {
		t.Fatalf("API call on the onboarding broker: %d %s", res.StatusCode, res.Body)
	}
	// Publishing outside the app's request space ends the connection.
	other.c.Publish("p/"+ob.MQTTEndpoint.MQTTTopic+"/thing-if/apps/"+testAppID+"/onboardings", 1, false, "POST\n\n{}")
	waitDisconnected(t, other)
	if !c.Connected() {
		t.Fatal("an innocent connection was closed")
	}
}

// TestOnboardingErrors: each bad onboarding gets its error answer on the
// same topic, nothing changes in storage, and the broker goes on serving.
func TestOnboardingErrors(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	c := dialAnonymous(t, s)
	ob := onboard(t, c, "vt-err", "right")
	ctx := context.Background()
	before, err := s.Store().Thing(ctx, testAppID, ob.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	installs, _ := s.Store().Installations(ctx, ob.ThingID)
	const vendorCT = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"
	tests := []struct {
		name, payload string
		status        int
		code          string
	}{
		{"wrong password", "POST\nContent-Type: " + vendorCT + "\n\n" + onboardingBody("vt-err", "wrong"), 403, "WRONG_PASSWORD"},
		{"wrong password by thingID", "POST\nContent-Type: application/vnd.kii.OnboardingWithThingIDByThing+json\n\n" +
			`{"thingID":"` + ob.ThingID + `","thingPassword":"wrong"}`, 403, "WRONG_PASSWORD"},
		{"unknown thingID", "POST\nContent-Type: application/vnd.kii.OnboardingWithThingIDByThing+json\n\n" +
			`{"thingID":"th.nope","thingPassword":"x"}`, 404, "THING_NOT_FOUND"},
		{"invalid JSON", "POST\nContent-Type: " + vendorCT + "\n\n{\"vendorThingID\":", 400, "INVALID_INPUT_DATA"},
		{"missing password", "POST\nContent-Type: " + vendorCT + "\n\n" + `{"vendorThingID":"vt-new"}`, 400, "INVALID_INPUT_DATA"},
		{"wrong content type", "POST\nContent-Type: text/plain\n\n" + onboardingBody("vt-new", "x"), 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"malformed payload", "POST /onboardings HTTP/1.1\n\n{}", 400, "INVALID_INPUT_DATA"},
		{"bad layoutPosition", "POST\nContent-Type: " + vendorCT + "\n\n" + `{"vendorThingID":"vt-new","thingPassword":"x","layoutPosition":"SIDEWAYS"}`, 400, "INVALID_INPUT_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.c.Publish(onboardTopic, 1, false, tt.payload).WaitTimeout(waitFor)
			m := await(t, c, onboardTopic)
			var body struct {
				ErrorCode string `json:"errorCode"`
				Message   string `json:"message"`
			}
			status := string(m.Payload[:3])
			i := bytes.Index(m.Payload, []byte("\r\n\r\n"))
			if i < 0 || json.Unmarshal(m.Payload[i+4:], &body) != nil {
				t.Fatalf("answer %q has no JSON error body", m.Payload)
			}
			if status != strconv.Itoa(tt.status) || body.ErrorCode != tt.code || body.Message == "" {
				t.Fatalf("answer %q, want %d %s", m.Payload, tt.status, tt.code)
			}
		})
	}
	after, _ := s.Store().Thing(ctx, testAppID, ob.ThingID)
	installsAfter, _ := s.Store().Installations(ctx, ob.ThingID)
	if after.PasswordHash != before.PasswordHash || !after.ModifiedAt.Equal(before.ModifiedAt) || len(installsAfter) != len(installs) {
		t.Fatal("a failed onboarding changed the stored thing")
	}
	if _, err := s.Store().ThingByVendorID(ctx, testAppID, "vt-new"); err == nil {
		t.Fatal("a failed onboarding registered a thing")
	}
	again := onboard(t, c, "vt-err", "right")
	if again.ThingID != ob.ThingID {
		t.Fatalf("re-onboarding gave thing %s, want %s", again.ThingID, ob.ThingID)
	}
	// Both endpoints work: the new one and the one issued before.
	dialThing(t, s, again)
	dialThing(t, s, ob)
}

// TestKeepAlive: a connection silent for 1.5 × its keep-alive is closed, on
// both brokers. Uses a raw socket: a client library would send PINGREQs.
func TestKeepAlive(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	start := time.Now()
	conn := rawConnect(t, s.Addr("onboard-tcp").String(), packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 1, ClientIdentifier: "anonymous",
		UsernameFlag: true, Username: []byte("type=oauth2&client_id=" + testAppID),
		PasswordFlag: true, Password: []byte("client_secret=" + testAppKey),
	})
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := conn.Read(ack); err == nil {
		t.Fatalf("read %d bytes from a silent connection, want it closed", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent connection open")
	}
	if el := time.Since(start); el < time.Second {
		t.Fatalf("closed after %v, before the keep-alive ran out", el)
	}
}
