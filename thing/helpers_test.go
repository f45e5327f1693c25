package thing_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
	"github.com/thingif/thingif/thing"
)

const (
	testAppID  = "app1"
	testAppKey = "key1"
	waitFor    = 30 * time.Second
)

// testServer is a thingif server running in the test process.
type testServer struct {
	*server.Server
	cfg server.Config
}

// serverConfig binds every listener to a free loopback port.
func serverConfig(dir string) server.Config {
	return server.Config{
		DataDir:    dir,
		Apps:       []server.AppCredential{{ID: testAppID, Key: testAppKey}},
		PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", OnboardTLS: "127.0.0.1:0", OnboardWS: "127.0.0.1:0", OnboardWSS: "127.0.0.1:0",
		MQTTTCP: "127.0.0.1:0", MQTTTLS: "127.0.0.1:0", MQTTWS: "127.0.0.1:0", MQTTWSS: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
	}
}

// startServer runs a server with cfg until the test ends.
func startServer(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := &testServer{Server: s, cfg: cfg}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop closes the server; closing twice is harmless.
func (s *testServer) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Close(ctx)
}

// restart closes the server and starts a new one on the same data dir and
// the same ports.
func (s *testServer) restart(t testing.TB) *testServer {
	t.Helper()
	s.stop(t)
	cfg := s.cfg
	port := func(name string) string { return "127.0.0.1:" + strconv.Itoa(s.Port(name)) }
	cfg.OnboardTCP, cfg.OnboardTLS, cfg.OnboardWS, cfg.OnboardWSS = port("onboard-tcp"), port("onboard-tls"), port("onboard-ws"), port("onboard-wss")
	cfg.MQTTTCP, cfg.MQTTTLS, cfg.MQTTWS, cfg.MQTTWSS = port("mqtt-tcp"), port("mqtt-tls"), port("mqtt-ws"), port("mqtt-wss")
	cfg.HTTP, cfg.HTTPS = port("http"), port("https")
	var (
		ns  *server.Server
		err error
	)
	// The old listeners are closed; the ports are free at once on Linux,
	// but retry briefly in case the system is slower to release them.
	for i := 0; i < 50; i++ {
		if ns, err = server.New(context.Background(), cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	ts := &testServer{Server: ns, cfg: cfg}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// url returns the onboarding broker URL of a transport: tcp, tls, ws, wss.
func (s *testServer) url(transport string) string {
	scheme := map[string]string{"tcp": "tcp", "tls": "ssl", "ws": "ws", "wss": "wss"}[transport]
	u := fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.Port("onboard-"+transport))
	if strings.HasPrefix(scheme, "ws") {
		u += "/mqtt"
	}
	return u
}

// tlsConfig trusts the server's generated certificate.
func (s *testServer) tlsConfig(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in cert.pem")
	}
	return &tls.Config{RootCAs: pool}
}

// thingConfig is a client config for a thing of the test app over TCP,
// with fast reconnection.
func (s *testServer) thingConfig(t testing.TB, vendorThingID string) thing.Config {
	return thing.Config{
		Server:         s.url("tcp"),
		AppID:          testAppID,
		AppKey:         testAppKey,
		VendorThingID:  vendorThingID,
		Password:       "pw-" + vendorThingID,
		TLSConfig:      s.tlsConfig(t),
		Backoff:        thing.ExponentialBackoff(10*time.Millisecond, 200*time.Millisecond),
		ConnectTimeout: 5 * time.Second,
		CallTimeout:    10 * time.Second,
		Logger:         testLogger(t),
	}
}

// testLogger sends logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startClient starts a client and waits for its connection; it is
// disconnected when the test ends.
func startClient(t testing.TB, cfg thing.Config) *thing.Client {
	t.Helper()
	c, err := thing.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { disconnect(t, c) })
	awaitConnection(t, c)
	return c
}

func awaitConnection(t testing.TB, c *thing.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.AwaitConnection(ctx); err != nil {
		t.Fatalf("AwaitConnection: %v", err)
	}
}

func disconnect(t testing.TB, c *thing.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
}

// rest calls the REST API and decodes a JSON answer into out (if not nil),
// returning the status.
func (s *testServer) rest(t testing.TB, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port("http"), path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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

// adminToken returns an app admin token.
func (s *testServer) adminToken(t testing.TB) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s"}`, testAppID, testAppKey)
	if st := s.rest(t, "POST", "/api/apps/"+testAppID+"/oauth2/token", "", body, &tok); st != 200 || tok.AccessToken == "" {
		t.Fatalf("admin token: status %d", st)
	}
	return tok.AccessToken
}

// sendCommand sends a command (body without issuer) over REST and returns
// its ID.
func (s *testServer) sendCommand(t testing.TB, admin, thingID, body string) string {
	t.Helper()
	var out struct {
		CommandID string `json:"commandID"`
	}
	body = `{"issuer":"user:u1",` + strings.TrimPrefix(body, "{")
	if st := s.rest(t, "POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+thingID+"/commands", admin, body, &out); st != 201 || out.CommandID == "" {
		t.Fatalf("send command: status %d", st)
	}
	return out.CommandID
}

const v1Command = `{"schema":"HelloThingIF-Schema","schemaVersion":1,"actions":[{"turnPower":{"power":true}},{"setFanSpeed":{"fanSpeed":5}}]}`

// command is a command as the REST API shows it.
type command struct {
	CommandState  string            `json:"commandState"`
	ActionResults []json.RawMessage `json:"actionResults"`
}

// awaitCommandState polls a command over REST until it reaches one of the
// final states or waitFor passes.
func (s *testServer) awaitCommandState(t testing.TB, admin, thingID, cid string) command {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		var c command
		if st := s.rest(t, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+thingID+"/commands/"+cid, admin, "", &c); st != 200 {
			t.Fatalf("get command: status %d", st)
		}
		if c.CommandState == "DONE" || c.CommandState == "INCOMPLETE" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s still %s after %v", cid, c.CommandState, waitFor)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// states reads the thing's states over REST.
func (s *testServer) states(t testing.TB, admin, thingID string) string {
	t.Helper()
	var raw json.RawMessage
	if st := s.rest(t, "GET", "/thing-if/apps/"+testAppID+"/targets/thing:"+thingID+"/states", admin, "", &raw); st != 200 {
		t.Fatalf("get states: status %d", st)
	}
	return string(raw)
}

// recorder is a command handler that records what it handles and answers
// every action with ok.
type recorder struct {
	mu   sync.Mutex
	cmds []*thing.Command
	ch   chan *thing.Command
	ok   bool
}

func newRecorder(ok bool) *recorder { return &recorder{ch: make(chan *thing.Command, 100), ok: ok} }

func (r *recorder) handle(_ context.Context, cmd *thing.Command) []thing.Result {
	r.mu.Lock()
	r.cmds = append(r.cmds, cmd)
	r.mu.Unlock()
	r.ch <- cmd
	res := make([]thing.Result, len(cmd.Actions))
	for i := range res {
		res[i] = thing.Result{Succeeded: r.ok}
		if !r.ok {
			res[i].ErrorMessage = "refused"
		}
	}
	return res
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds)
}

// await returns the next handled command.
func (r *recorder) await(t testing.TB) *thing.Command {
	t.Helper()
	select {
	case c := <-r.ch:
		return c
	case <-time.After(waitFor):
		t.Fatalf("no command handled within %v", waitFor)
		return nil
	}
}

var _ = net.JoinHostPort
