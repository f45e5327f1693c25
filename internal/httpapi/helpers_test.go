package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
)

// testCost keeps argon2id cheap in tests.
var testCost = secret.Cost{Time: 1, Memory: 64, Threads: 1}

const (
	testApp    = "app1"
	testAppKey = "key-1"
	// closedApp does not allow anonymous tokens.
	closedApp    = "app2"
	closedAppKey = "key-2"
)

var testBroker = BrokerAddr{Host: "api.example", PortTCP: 1883, PortSSL: 8883, PortWS: 12470, PortWSS: 12473}

// recordingPusher records Push calls.
type recordingPusher struct {
	mu    sync.Mutex
	calls []string
}

func (p *recordingPusher) Push(_ context.Context, c store.Command) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c.AppID+"/"+c.ThingID)
}

func (p *recordingPusher) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

// env is a Handler on a real SQLite store, served by an httptest.Server.
type env struct {
	t      testing.TB
	st     store.Store
	h      *Handler
	srv    *httptest.Server
	pusher *recordingPusher
	now    time.Time
	nowMu  sync.Mutex
}

func newEnv(t testing.TB, configure ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "thingif.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, st: db, pusher: &recordingPusher{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, a := range []struct {
		id, key string
		anon    bool
	}{{testApp, testAppKey, true}, {closedApp, closedAppKey, false}} {
		hash, err := secret.HashPassword(a.key, testCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.PutApp(ctx, store.App{ID: a.id, KeyHash: hash, AllowAnonymous: a.anon, CreatedAt: e.now}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		Store:        db,
		Logger:       slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		APIBroker:    func(context.Context, string, string) BrokerAddr { return testBroker },
		PasswordCost: testCost,
		Pusher:       e.pusher,
		Now:          e.clock,
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) clock() time.Time {
	e.nowMu.Lock()
	defer e.nowMu.Unlock()
	e.now = e.now.Add(time.Millisecond) // distinct times, in order
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.nowMu.Lock()
	defer e.nowMu.Unlock()
	e.now = e.now.Add(d)
}

// tWriter sends logs to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// resp is an answer with its raw bytes, for checks of exact header spelling.
type resp struct {
	status int
	header http.Header
	body   []byte
	raw    []byte
}

// errorCode returns the errorCode of an error body, or "".
func (r resp) errorCode() string {
	var b struct {
		ErrorCode string `json:"errorCode"`
	}
	_ = json.Unmarshal(r.body, &b)
	return b.ErrorCode
}

// decode decodes the body into v, failing the test if it cannot.
func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// do sends one HTTP/1.1 request over a raw connection and returns the raw
// answer. Headers are written as given (name: value pairs, in order).
func (e *env) do(method, path string, body string, headers ...string) resp {
	e.t.Helper()
	return e.doFrom("", method, path, body, headers...)
}

// doFrom is do from the local address from ("127.0.0.2"; Linux routes all
// of 127/8 to lo), or from any address if from is empty.
func (e *env) doFrom(from, method, path string, body string, headers ...string) resp {
	e.t.Helper()
	req := requestHead(method, path, headers)
	if body != "" || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		fmt.Fprintf(req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.WriteString(body)
	return e.roundTrip(from, req.Bytes())
}

// requestHead starts an HTTP/1.1 request with its header lines (name,
// value pairs), without the blank line that ends them.
func requestHead(method, path string, headers []string) *bytes.Buffer {
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n", method, path)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&req, "%s: %s\r\n", headers[i], headers[i+1])
	}
	return &req
}

// roundTrip writes the raw request on a new connection from the local
// address from (any if empty) and reads the whole answer.
func (e *env) roundTrip(from string, req []byte) resp {
	e.t.Helper()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		e.t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		e.t.Fatal(err)
	}
	hr, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		e.t.Fatalf("read answer %q: %v", raw, err)
	}
	b, err := io.ReadAll(hr.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: hr.StatusCode, header: hr.Header, body: b, raw: raw}
}

// bearer returns the Authorization header pair for tok.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func with(h []string, more ...string) []string { return append(append([]string(nil), h...), more...) }

// appToken gets an app admin token of testApp.
func (e *env) appToken(appID, key string) string {
	e.t.Helper()
	r := e.do("POST", "/api/apps/"+appID+"/oauth2/token",
		fmt.Sprintf(`{"grant_type":"client_credentials","client_id":%q,"client_secret":%q}`, appID, key),
		"Content-Type", "application/json")
	if r.status != http.StatusOK {
		e.t.Fatalf("token: %d %s", r.status, r.body)
	}
	var tr tokenResponse
	r.decode(e.t, &tr)
	return tr.AccessToken
}

// onboarded is a successful onboarding answer.
type onboarded = onboardingResponse

// onboard onboards vendorThingID with password as the app admin and fails
// the test unless it succeeds.
func (e *env) onboard(vendorThingID, password string) onboarded {
	e.t.Helper()
	r := e.onboardRaw(e.appToken(testApp, testAppKey), vendorThingID, password, "")
	if r.status != http.StatusOK {
		e.t.Fatalf("onboard %s: %d %s", vendorThingID, r.status, r.body)
	}
	var o onboarded
	r.decode(e.t, &o)
	return o
}

func (e *env) onboardRaw(tok, vendorThingID, password, extra string) resp {
	e.t.Helper()
	return e.do("POST", "/thing-if/apps/"+testApp+"/onboardings",
		fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":%q%s}`, vendorThingID, password, extra),
		with(bearer(tok), "Content-Type", "application/vnd.kii.OnboardingWithVendorThingIDByThing+json")...)
}

// check fails the test unless r has the status and (for errors) the code.
func check(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if got := r.errorCode(); got != code {
		t.Fatalf("errorCode %q, want %q; body %s", got, code, r.body)
	}
	if code != "" {
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.kii.") || !strings.HasSuffix(ct, "Exception+json") {
			t.Fatalf("error content type %q", ct)
		}
	}
	if status == http.StatusNoContent && len(r.body) != 0 {
		t.Fatalf("204 with body %q", r.body)
	}
	if status >= 200 && status < 300 && status != http.StatusNoContent {
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q, want application/json", ct)
		}
	}
	if len(r.body) > 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, r.body); err != nil {
			t.Fatalf("body is not JSON: %q", r.body)
		}
		if c.Len() != len(r.body) {
			t.Fatalf("body is not compact: %q", r.body)
		}
	}
}
