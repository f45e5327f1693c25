package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pahov5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
)

const (
	testAppID  = "app1"
	testAppKey = "key1"
	waitFor    = 30 * time.Second
)

// testCost keeps password hashing cheap in tests.
var testCost = secret.Cost{Time: 1, Memory: 64, Threads: 1}

// testConfig binds every listener to a free loopback port.
func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	return Config{
		DataDir:    dir,
		Apps:       []AppCredential{{ID: testAppID, Key: testAppKey}},
		PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", OnboardTLS: "127.0.0.1:0", OnboardWS: "127.0.0.1:0", OnboardWSS: "127.0.0.1:0",
		MQTTTCP: "127.0.0.1:0", MQTTTLS: "127.0.0.1:0", MQTTWS: "127.0.0.1:0", MQTTWSS: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0",
		PasswordCost: testCost,
		// Tests onboard hundreds of things from 127.0.0.1 in a burst; the
		// registration rate has its own test (TestRegistrationRate).
		Limits: Limits{
			RegistrationsPerAddr: limit.BucketConfig{Rate: -1},
			RegistrationsPerApp:  limit.BucketConfig{Rate: -1},
		},
	}
}

// startServer runs a server on a fresh data dir (or dir, if given).
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

// clientTLS trusts the server's generated certificate.
func clientTLS(t testing.TB, s *Server) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// brokerURL returns a paho URL for a listener of s.
func brokerURL(s *Server, name string) string {
	scheme := map[string]string{"tcp": "tcp", "tls": "ssl", "ws": "ws", "wss": "wss"}[name[strings.LastIndex(name, "-")+1:]]
	u := fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.Port(name))
	if scheme == "ws" || scheme == "wss" {
		u += "/mqtt"
	}
	return u
}

type message struct {
	Topic   string
	Payload []byte
	QoS     byte
}

// mqttClient is what the tests need of an MQTT client, whatever its
// protocol version.
type mqttClient interface {
	Publish(t testing.TB, topic string, qos byte, payload []byte)
	Subscribe(t testing.TB, topic string, qos byte) byte // granted QoS or failure code
	Messages() <-chan message
	Connected() bool
	Close()
}

// v3Client is Eclipse Paho's MQTT 3.1 / 3.1.1 client.
type v3Client struct {
	c    paho.Client
	msgs chan message
}

// dialV3 connects with MQTT 3.1 (version 3) or 3.1.1 (version 4) and
// returns the client, or the CONNACK error.
func dialV3(t testing.TB, url, clientID, user, pass string, version uint, tlsConf *tls.Config) (*v3Client, error) {
	t.Helper()
	cl := &v3Client{msgs: make(chan message, 256)}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(version).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(waitFor).SetOrderMatters(false).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			cl.msgs <- message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos()}
		})
	if tlsConf != nil {
		opts.SetTLSConfig(tlsConf)
	}
	cl.c = paho.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(cl.Close)
	return cl, nil
}

func (c *v3Client) Publish(t testing.TB, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.c.Publish(topic, qos, false, payload)
	if qos > 0 && !tok.WaitTimeout(waitFor) {
		t.Fatalf("publish %s: no PUBACK", topic)
	}
}

func (c *v3Client) Subscribe(t testing.TB, topic string, qos byte) byte {
	t.Helper()
	tok := c.c.Subscribe(topic, qos, nil)
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("subscribe %s: no SUBACK", topic)
	}
	return tok.(*paho.SubscribeToken).Result()[topic]
}

func (c *v3Client) Messages() <-chan message { return c.msgs }
func (c *v3Client) Connected() bool          { return c.c.IsConnectionOpen() }
func (c *v3Client) Close()                   { c.c.Disconnect(0) }

// v5Client is Eclipse Paho's MQTT 5 client (paho.golang) over TCP.
type v5Client struct {
	c    *pahov5.Client
	msgs chan message
	done chan struct{}
}

func dialV5(t testing.TB, addr, clientID, user, pass string) (*v5Client, *pahov5.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	cl := &v5Client{msgs: make(chan message, 256), done: make(chan struct{})}
	cl.c = pahov5.NewClient(pahov5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(pahov5.PublishReceived) (bool, error){func(pr pahov5.PublishReceived) (bool, error) {
			cl.msgs <- message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, QoS: pr.Packet.QoS}
			return true, nil
		}},
		OnClientError:      func(error) {},
		OnServerDisconnect: func(*pahov5.Disconnect) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := cl.c.Connect(ctx, &pahov5.Connect{
		ClientID: clientID, Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true,
		KeepAlive: 60, CleanStart: true,
	})
	if err != nil {
		conn.Close()
		return nil, ack, err
	}
	t.Cleanup(cl.Close)
	return cl, ack, nil
}

func (c *v5Client) Publish(t testing.TB, topic string, qos byte, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := c.c.Publish(ctx, &pahov5.Publish{Topic: topic, QoS: qos, Payload: payload}); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

func (c *v5Client) Subscribe(t testing.TB, topic string, qos byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := c.c.Subscribe(ctx, &pahov5.Subscribe{Subscriptions: []pahov5.SubscribeOptions{{Topic: topic, QoS: qos}}})
	if ack != nil && len(ack.Reasons) == 1 {
		return ack.Reasons[0]
	}
	t.Fatalf("subscribe %s: %v", topic, err)
	return 0
}

func (c *v5Client) Messages() <-chan message { return c.msgs }
func (c *v5Client) Connected() bool {
	select {
	case <-c.c.Done():
		return false
	default:
		return true
	}
}
func (c *v5Client) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.c.Disconnect(&pahov5.Disconnect{})
	select {
	case <-c.c.Done():
	case <-ctx.Done():
	}
}

// await returns the next message on topic, failing after waitFor.
func await(t testing.TB, c mqttClient, topic string) message {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-c.Messages():
			if m.Topic == topic {
				return m
			}
			t.Logf("ignoring message on %s", m.Topic)
		case <-deadline:
			t.Fatalf("no message on %s within %v", topic, waitFor)
		}
	}
}

// quiet fails if any message arrives within d.
func quiet(t testing.TB, c mqttClient, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.Messages():
		t.Fatalf("unexpected message on %s: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// call publishes an HTTP-like request and returns the answer on the same
// topic.
func call(t testing.TB, c mqttClient, topic, method string, header map[string]string, body string) *codec.Response {
	t.Helper()
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	c.Publish(t, topic, 1, codec.AppendRequest(nil, method, h, []byte(body)))
	m := await(t, c, topic)
	res, err := codec.ParseResponse(m.Payload)
	if err != nil {
		t.Fatalf("answer on %s: %v: %q", topic, err, m.Payload)
	}
	return res
}

// onboardResult is the onboarding answer.
type onboardResult struct {
	AccessToken  string `json:"accessToken"`
	ThingID      string `json:"thingID"`
	MQTTEndpoint struct {
		InstallationID string `json:"installationID"`
		Username       string `json:"username"`
		Password       string `json:"password"`
		MQTTTopic      string `json:"mqttTopic"`
		Host           string `json:"host"`
		PortTCP        int    `json:"portTCP"`
		PortSSL        int    `json:"portSSL"`
		PortWS         int    `json:"portWS"`
		PortWSS        int    `json:"portWSS"`
		TTL            int64  `json:"ttl"`
	} `json:"mqttEndpoint"`
}

const onboardTopic = "p/anonymous/thing-if/apps/" + testAppID + "/onboardings"

func onboardingBody(vendorThingID, password string) string {
	return fmt.Sprintf(`{"vendorThingID":"%s","thingPassword":"%s"}`, vendorThingID, password)
}

// onboard onboards a thing through an anonymous connection.
func onboard(t testing.TB, c mqttClient, vendorThingID, password string) onboardResult {
	t.Helper()
	res := call(t, c, onboardTopic, "POST",
		map[string]string{"Content-Type": "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"},
		onboardingBody(vendorThingID, password))
	if res.StatusCode != 200 {
		t.Fatalf("onboarding: status %d: %s", res.StatusCode, res.Body)
	}
	var r onboardResult
	if err := json.Unmarshal(res.Body, &r); err != nil {
		t.Fatalf("onboarding answer: %v: %s", err, res.Body)
	}
	return r
}

// apiTopic is the request topic of a thing for a REST path under the app.
func apiTopic(r onboardResult, rest string) string {
	return "p/" + r.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testAppID + "/" + rest
}

// rest calls the REST API over HTTP and decodes a JSON answer into out
// (if not nil), returning the status.
func rest(t testing.TB, s *Server, method, path, token, contentType, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port("http"), path), strings.NewReader(body))
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
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// adminToken gets an app admin token.
func adminToken(t testing.TB, s *Server) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s"}`, testAppID, testAppKey)
	if st := rest(t, s, "POST", "/api/apps/"+testAppID+"/oauth2/token", "", "application/json", body, &tok); st != 200 || tok.AccessToken == "" {
		t.Fatalf("admin token: status %d", st)
	}
	return tok.AccessToken
}

// sendCommand sends a v1 command over REST and returns its ID.
func sendCommand(t testing.TB, s *Server, admin, thingID, actions string) string {
	t.Helper()
	var out struct {
		CommandID string `json:"commandID"`
	}
	body := `{"schema":"HelloThingIF-Schema","schemaVersion":1,"issuer":"user:u1","actions":` + actions + `}`
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+thingID+"/commands", admin, "application/json", body, &out); st != 201 || out.CommandID == "" {
		t.Fatalf("send command: status %d", st)
	}
	return out.CommandID
}

// commandState reads a command's state over REST.
func commandState(t testing.TB, s *Server, admin, thingID, cid string) string {
	t.Helper()
	var out struct {
		CommandState string `json:"commandState"`
	}
	if st := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+thingID+"/commands/"+cid, admin, "", "", &out); st != 200 {
		t.Fatalf("get command: status %d", st)
	}
	return out.CommandState
}
