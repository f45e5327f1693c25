package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/thingif/thingif/internal/postgres/pgtest"
)

// TestFlowAllTransports runs the seed's flow over each transport of both
// brokers: onboard as anonymous, connect to the API broker named in the
// answer, subscribe, receive a command sent over REST, report results and a
// state over MQTT, and see the command DONE over REST.
func TestFlowAllTransports(t *testing.T) {
	testFlowAllTransports(t, testConfig(t, t.TempDir()))
}

// TestFlowAllTransportsPostgres is the same flow on a PostgreSQL store.
func TestFlowAllTransportsPostgres(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = pgtest.DSN(t)
	testFlowAllTransports(t, cfg)
}

func testFlowAllTransports(t *testing.T, cfg Config) {
	s := startServer(t, cfg)
	admin := adminToken(t, s)
	for _, tr := range []string{"tcp", "tls", "ws", "wss"} {
		t.Run(tr, func(t *testing.T) {
			var tlsConf = clientTLS(t, s)
			anon, err := dialV3(t, brokerURL(s, "onboard-"+tr), "anonymous",
				"type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, tlsConf)
			if err != nil {
				t.Fatalf("connect onboarding broker: %v", err)
			}
			ob := onboard(t, anon, "vt-"+tr, "pw-"+tr)
			anon.Close()
			ep := ob.MQTTEndpoint
			if !strings.HasPrefix(ob.ThingID, "th.") || ob.AccessToken == "" || ep.MQTTTopic == "" || len(ep.MQTTTopic) > 23 {
				t.Fatalf("onboarding answer %+v", ob)
			}
			if ep.Host != "127.0.0.1" || ep.PortTCP != s.Port("mqtt-tcp") || ep.PortSSL != s.Port("mqtt-tls") ||
				ep.PortWS != s.Port("mqtt-ws") || ep.PortWSS != s.Port("mqtt-wss") || ep.TTL <= 0 {
				t.Fatalf("mqttEndpoint %+v does not name the API broker", ep)
			}
			port := map[string]int{"tcp": ep.PortTCP, "tls": ep.PortSSL, "ws": ep.PortWS, "wss": ep.PortWSS}[tr]
			url := strings.Replace(brokerURL(s, "mqtt-"+tr), fmt.Sprint(s.Port("mqtt-"+tr)), fmt.Sprint(port), 1)
			thing, err := dialV3(t, url, ep.MQTTTopic, ep.Username, ep.Password, 4, tlsConf)
			if err != nil {
				t.Fatalf("connect API broker: %v", err)
			}
			if got := thing.Subscribe(t, ep.MQTTTopic, 0); got != 0 {
				t.Fatalf("SUBACK %#x, want 0", got)
			}

			cid := sendCommand(t, s, admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
			push := await(t, thing, ep.MQTTTopic)
			if push.QoS != 0 {
				t.Fatalf("push QoS %d to a QoS 0 subscriber", push.QoS)
			}
			var cmd struct {
				CommandID string            `json:"commandID"`
				Schema    string            `json:"schema"`
				Actions   []json.RawMessage `json:"actions"`
			}
			if err := json.Unmarshal(push.Payload, &cmd); err != nil || cmd.CommandID != cid || cmd.Schema != "HelloThingIF-Schema" || len(cmd.Actions) != 1 {
				t.Fatalf("push payload %s (%v), want command %s", push.Payload, err, cid)
			}
			waitState(t, s, admin, ob.ThingID, cid, "DELIVERED")

			auth := map[string]string{"Authorization": "Bearer " + ob.AccessToken, "Content-Type": "application/json", "X-Kii-RequestID": "r-" + tr}
			res := call(t, thing, apiTopic(ob, "targets/thing:"+ob.ThingID+"/commands/"+cid+"/action-results"), "PUT", auth,
				`{"actionResults":[{"turnPower":{"succeeded":true}}]}`)
			if res.StatusCode != 204 || res.Header.Get("X-Kii-RequestID") != "r-"+tr {
				t.Fatalf("action results: %d %v %s", res.StatusCode, res.Header, res.Body)
			}
			if got := commandState(t, s, admin, ob.ThingID, cid); got != "DONE" {
				t.Fatalf("command state %s, want DONE", got)
			}
			res = call(t, thing, apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"), "PUT", auth, `{"power":true,"presetTemperature":25}`)
			if res.StatusCode != 204 {
				t.Fatalf("state upload: %d %s", res.StatusCode, res.Body)
			}
			var st map[string]any
			if code := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", admin, "", "", &st); code != 200 || st["presetTemperature"] != 25.0 {
				t.Fatalf("state over REST: %d %v", code, st)
			}
		})
	}
}

func waitState(t *testing.T, s *Server, admin, thingID, cid, want string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := commandState(t, s, admin, thingID, cid)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s state %s, want %s", cid, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProtocolVersions: MQTT 3.1 (MQIsdp), 3.1.1 and 5 clients onboard and
// use the API broker.
func TestProtocolVersions(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	dial := map[string]func(t *testing.T, name, id, user, pass string) (mqttClient, error){
		"3.1": func(t *testing.T, name, id, user, pass string) (mqttClient, error) {
			return dialV3(t, brokerURL(s, name), id, user, pass, 3, nil)
		},
		"3.1.1": func(t *testing.T, name, id, user, pass string) (mqttClient, error) {
			return dialV3(t, brokerURL(s, name), id, user, pass, 4, nil)
		},
		"5": func(t *testing.T, name, id, user, pass string) (mqttClient, error) {
			c, _, err := dialV5(t, s.Addr(name).String(), id, user, pass)
			return c, err
		},
	}
	for _, v := range []string{"3.1", "3.1.1", "5"} {
		t.Run(v, func(t *testing.T) {
			anon, err := dial[v](t, "onboard-tcp", "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey)
			if err != nil {
				t.Fatal(err)
			}
			ob := onboard(t, anon, "vt-v"+v, "pw")
			thing, err := dial[v](t, "mqtt-tcp", ob.MQTTEndpoint.MQTTTopic, ob.MQTTEndpoint.Username, ob.MQTTEndpoint.Password)
			if err != nil {
				t.Fatal(err)
			}
			if got := thing.Subscribe(t, ob.MQTTEndpoint.MQTTTopic, 1); got != 1 {
				t.Fatalf("SUBACK %#x, want 1", got)
			}
			cid := sendCommand(t, s, admin, ob.ThingID, `[{"turnPower":{"power":false}}]`)
			push := await(t, thing, ob.MQTTEndpoint.MQTTTopic)
			if push.QoS != 1 || !strings.Contains(string(push.Payload), cid) {
				t.Fatalf("push QoS %d payload %s", push.QoS, push.Payload)
			}
			res := call(t, thing, apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"), "GET",
				map[string]string{"Authorization": "Bearer " + ob.AccessToken}, "")
			if res.StatusCode != 404 {
				t.Fatalf("GET states before any upload: %d %s", res.StatusCode, res.Body)
			}
		})
	}
}

// TestConcurrentAnonymousOnboardings: 500 devices with client ID
// "anonymous" at once; each gets exactly one answer, its own.
func TestConcurrentAnonymousOnboardings(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	const n = 500
	clients := make([]*v3Client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every client is still connected: none took another's session over.
	for i, c := range clients {
		if !c.Connected() {
			t.Fatalf("client %d was disconnected by a later one", i)
		}
	}
	results := make([]onboardResult, n)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := c.c.Publish(onboardTopic, 1, false, fmt.Sprintf("POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n%s", onboardingBody(fmt.Sprintf("dev-%03d", i), "pw")))
			tok.WaitTimeout(waitFor)
		}()
	}
	wg.Wait()
	for i, c := range clients {
		m := await(t, c, onboardTopic)
		body := m.Payload[strings.Index(string(m.Payload), "\r\n\r\n")+4:]
		if !strings.HasPrefix(string(m.Payload), "200\r\n") || json.Unmarshal(body, &results[i]) != nil {
			t.Fatalf("client %d answer %q", i, m.Payload)
		}
	}
	time.Sleep(200 * time.Millisecond) // let any stray second answer arrive
	seen := map[string]bool{}
	for i, c := range clients {
		select {
		case m := <-c.Messages():
			t.Fatalf("client %d got a second message: %q", i, m.Payload)
		default:
		}
		th, err := s.Store().Thing(context.Background(), testAppID, results[i].ThingID)
		if err != nil || th.VendorThingID != fmt.Sprintf("dev-%03d", i) {
			t.Fatalf("client %d got thing %s (%v, vendorThingID %q): not its own", i, results[i].ThingID, err, th.VendorThingID)
		}
		if seen[results[i].ThingID] {
			t.Fatalf("thing %s answered twice", results[i].ThingID)
		}
		seen[results[i].ThingID] = true
	}
}

// TestConnectRefusals: each bad CONNECT gets its CONNACK code, in MQTT 3.1.1
// and MQTT 5, and the broker goes on serving.
func TestConnectRefusals(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "vt-refusals", "pw")
	expired := onboard(t, anon, "vt-expired", "pw")
	ctx := context.Background()
	in, err := s.Store().Installation(ctx, testAppID, expired.MQTTEndpoint.InstallationID)
	if err != nil {
		t.Fatal(err)
	}
	in.ExpiresAt = time.Now().Add(-time.Second)
	if err := s.Store().PutInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	ep := ob.MQTTEndpoint
	tests := []struct {
		name, listener, id, user, pass string
		v3                             byte
		v5                             byte
	}{
		{"onboard wrong client id", "onboard-tcp", "device-1", "type=oauth2&client_id=" + testAppID, "client_secret=" + testAppKey, 2, 0x85},
		{"onboard wrong key", "onboard-tcp", "anonymous", "type=oauth2&client_id=" + testAppID, "client_secret=nope", 4, 0x86},
		{"onboard unknown app", "onboard-tcp", "anonymous", "type=oauth2&client_id=nope", "client_secret=" + testAppKey, 5, 0x87},
		{"onboard malformed username", "onboard-tcp", "anonymous", testAppID, "client_secret=" + testAppKey, 4, 0x86},
		{"onboard empty key", "onboard-tcp", "anonymous", "type=oauth2&client_id=" + testAppID, "client_secret=", 4, 0x86},
		{"api wrong password", "mqtt-tcp", ep.MQTTTopic, ep.Username, "nope", 4, 0x86},
		{"api unknown user", "mqtt-tcp", ep.MQTTTopic, "nobody", ep.Password, 4, 0x86},
		{"api wrong client id", "mqtt-tcp", "someone-else", ep.Username, ep.Password, 2, 0x85},
		{"api expired endpoint", "mqtt-tcp", expired.MQTTEndpoint.MQTTTopic, expired.MQTTEndpoint.Username, expired.MQTTEndpoint.Password, 4, 0x86},
		{"api onboarding credentials", "mqtt-tcp", "anonymous", "type=oauth2&client_id=" + testAppID, "client_secret=" + testAppKey, 4, 0x86},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/3.1.1", func(t *testing.T) {
			_, err := dialV3(t, brokerURL(s, tt.listener), tt.id, tt.user, tt.pass, 4, nil)
			want := packets.ConnErrors[tt.v3]
			if !errors.Is(err, want) {
				t.Fatalf("connect error %v, want %v", err, want)
			}
		})
		t.Run(tt.name+"/5", func(t *testing.T) {
			_, ack, err := dialV5(t, s.Addr(tt.listener).String(), tt.id, tt.user, tt.pass)
			if err == nil || ack == nil || ack.ReasonCode != tt.v5 {
				t.Fatalf("connect: ack %+v err %v, want reason %#x", ack, err, tt.v5)
			}
		})
	}
	// The good credentials still work after all that.
	if _, err := dialV3(t, brokerURL(s, "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil); err != nil {
		t.Fatalf("good credentials refused after the bad ones: %v", err)
	}
}

// TestRestartKeepsCommandsAndStates: a command sent while the thing is away
// and a stored state survive a restart; the command is pushed when the thing
// subscribes after the restart.
func TestRestartKeepsCommandsAndStates(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := adminToken(t, s)
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "vt-restart", "pw")
	anon.Close()
	thing, err := dialV3(t, brokerURL(s, "mqtt-tcp"), ob.MQTTEndpoint.MQTTTopic, ob.MQTTEndpoint.Username, ob.MQTTEndpoint.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + ob.AccessToken, "Content-Type": "application/vnd.kii.MultipleTraitState+json"}
	if res := call(t, thing, apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"), "PUT", auth, `{"AirConditionerAlias":{"power":true}}`); res.StatusCode != 204 {
		t.Fatalf("state: %d %s", res.StatusCode, res.Body)
	}
	thing.Close()
	cid := sendCommand(t, s, admin, ob.ThingID, `[{"turnPower":{"power":true}}]`)
	if got := commandState(t, s, admin, ob.ThingID, cid); got != "SENDING" {
		t.Fatalf("command to an absent thing is %s, want SENDING", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := startServer(t, testConfig(t, dir))
	thing2, err := dialV3(t, brokerURL(s2, "mqtt-tcp"), ob.MQTTEndpoint.MQTTTopic, ob.MQTTEndpoint.Username, ob.MQTTEndpoint.Password, 4, nil)
	if err != nil {
		t.Fatalf("endpoint credentials after restart: %v", err)
	}
	thing2.Subscribe(t, ob.MQTTEndpoint.MQTTTopic, 0)
	if push := await(t, thing2, ob.MQTTEndpoint.MQTTTopic); !strings.Contains(string(push.Payload), cid) {
		t.Fatalf("pending command not pushed after restart: %s", push.Payload)
	}
	var st map[string]map[string]any
	if code := rest(t, s2, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/states", admin, "", "", &st); code != 200 || st["AirConditionerAlias"]["power"] != true {
		t.Fatalf("state after restart: %d %v", code, st)
	}
	waitState(t, s2, admin, ob.ThingID, cid, "DELIVERED")
}
