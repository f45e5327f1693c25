package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
	"github.com/thingif/thingif/thing"
)

const (
	appID     = "app1"
	appKey    = "app-key-not-for-browsers"
	thingPass = "thing-password-not-for-browsers"
	waitFor   = 30 * time.Second
)

// startServer runs a whole thingif server on loopback ports.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.Config{
		DataDir:    t.TempDir(),
		Apps:       []server.AppCredential{{ID: appID, Key: appKey}},
		PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", OnboardTLS: "127.0.0.1:0", OnboardWS: "127.0.0.1:0", OnboardWSS: "127.0.0.1:0",
		MQTTTCP: "127.0.0.1:0", MQTTTLS: "127.0.0.1:0", MQTTWS: "127.0.0.1:0", MQTTWSS: "127.0.0.1:0",
		HTTP: "127.0.0.1:0", HTTPS: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
		Limits: server.Limits{
			RegistrationsPerAddr: limit.BucketConfig{Rate: -1},
			RegistrationsPerApp:  limit.BucketConfig{Rate: -1},
		},
	}
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	return s
}

func baseURL(s *server.Server) string { return fmt.Sprintf("http://127.0.0.1:%d", s.Port("http")) }

// call makes one REST call and decodes a JSON answer into out (if set).
func call(t *testing.T, s *server.Server, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, baseURL(s)+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

func adminToken(t *testing.T, s *server.Server) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if st := call(t, s, "POST", "/api/apps/"+appID+"/oauth2/token", "",
		map[string]string{"grant_type": "client_credentials", "client_id": appID, "client_secret": appKey}, &tok); st != 200 {
		t.Fatalf("admin token: status %d", st)
	}
	return tok.AccessToken
}

// userToken creates a user (password "pw-" + name) and returns its token
// and user ID.
func userToken(t *testing.T, s *server.Server, admin, name string) (token, userID string) {
	t.Helper()
	var u struct {
		UserID string `json:"userID"`
	}
	if st := call(t, s, "POST", "/api/apps/"+appID+"/users", admin, map[string]string{"loginName": name, "password": "pw-" + name}, &u); st != 201 {
		t.Fatalf("create user: status %d", st)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if st := call(t, s, "POST", "/api/apps/"+appID+"/oauth2/token", "",
		map[string]string{"grant_type": "password", "username": name, "password": "pw-" + name}, &tok); st != 200 {
		t.Fatalf("user token: status %d", st)
	}
	return tok.AccessToken, u.UserID
}

// own makes the user the owner of the thing (onboarding by owner, REST).
func own(t *testing.T, s *server.Server, userTok, userID, thingID string) {
	t.Helper()
	onboardingREST(t, s, userTok, "application/vnd.kii.OnboardingWithThingIDByOwner+json",
		map[string]string{"thingID": thingID, "thingPassword": thingPass, "owner": "USER:" + userID})
}

// onboardREST onboards a thing by its vendor thing ID over REST, with the
// app admin's token.
func onboardREST(t *testing.T, s *server.Server, admin, vendorID string) {
	t.Helper()
	onboardingREST(t, s, admin, "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
		map[string]string{"vendorThingID": vendorID, "thingPassword": thingPass})
}

// onboardingREST posts one onboarding of the given kind and wants 200.
func onboardingREST(t *testing.T, s *server.Server, token, contentType string, body map[string]string) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", baseURL(s)+"/thing-if/apps/"+appID+"/onboardings", bytes.NewReader(b))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("onboarding (%s): status %d", contentType, res.StatusCode)
	}
}

// simulatedThing onboards a thing with the SDK, answers every command with
// success and uploads a trait-form state (LampAlias: power, brightness)
// every 200 ms until the test ends.
func simulatedThing(t *testing.T, s *server.Server, vendorID string) *thing.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := thing.NewClient(ctx, thing.Config{
		Server:        fmt.Sprintf("tcp://127.0.0.1:%d", s.Port("onboard-tcp")),
		AppID:         appID,
		AppKey:        appKey,
		VendorThingID: vendorID,
		Password:      thingPass,
		ThingType:     "Lamp",
		Store:         &thing.FileStore{Path: t.TempDir() + "/thing.json"},
		OnCommand: func(ctx context.Context, cmd *thing.Command) []thing.Result {
			r := make([]thing.Result, len(cmd.Actions))
			for i := range r {
				r[i] = thing.Result{Succeeded: true}
			}
			return r
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		c.Disconnect(dctx)
	})
	wctx, wcancel := context.WithTimeout(ctx, waitFor)
	defer wcancel()
	if err := c.AwaitConnection(wctx); err != nil {
		cancel()
		close(done)
		t.Fatalf("thing connection: %v", err)
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				// Trait form, so that the history API (per alias) has it.
				body := fmt.Appendf(nil, `{"LampAlias":{"power":true,"brightness":%d}}`, n%100)
				_, _ = c.Do(pctx, "PUT", "targets/thing:"+c.ThingID()+"/states",
					http.Header{"Content-Type": {"application/vnd.kii.MultipleTraitState+json"}}, body)
				pcancel()
			}
		}
	}()
	return c
}

// TestInspectAccess: the inspector stream is the API's to allow: a thing's
// traffic for an admin token or the thing's own, the onboarding broker's
// for an admin token only; anything else is the API's error answer.
func TestInspectAccess(t *testing.T) {
	s := startServer(t)
	admin := adminToken(t, s)
	user, _ := userToken(t, s, admin, "alice")
	owner, ownerID := userToken(t, s, admin, "bob")
	th := simulatedThing(t, s, "lamp-access")
	own(t, s, owner, ownerID, th.ThingID())
	for _, tc := range []struct {
		name, query, token string
		status             int
	}{
		{"admin, thing", "app=" + appID + "&thing=" + th.ThingID(), admin, 200},
		{"admin, onboarding", "app=" + appID + "&broker=onboarding", admin, 200},
		{"thing's own token", "app=" + appID + "&thing=" + th.ThingID(), th.Credentials().AccessToken, 200},
		{"no token", "app=" + appID + "&thing=" + th.ThingID(), "", 401},
		{"owner", "app=" + appID + "&thing=" + th.ThingID(), owner, 200},
		{"user, not the owner", "app=" + appID + "&thing=" + th.ThingID(), user, 403},
		{"owner, onboarding", "app=" + appID + "&broker=onboarding", owner, 403},
		{"user, onboarding", "app=" + appID + "&broker=onboarding", user, 403},
		{"unknown thing", "app=" + appID + "&thing=th.nope", admin, 404},
		{"no app", "thing=" + th.ThingID(), admin, 400},
		{"neither thing nor broker", "app=" + appID, admin, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", baseURL(s)+"/console/api/inspect?"+tc.query, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got, want := res.StatusCode, tc.status; got != want {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("status %d, want %d (%s)", got, want, b)
			}
			if tc.status != 200 {
				var e struct{ ErrorCode string }
				if err := json.NewDecoder(res.Body).Decode(&e); err != nil || e.ErrorCode == "" {
					t.Errorf("error answer without errorCode (%v)", err)
				}
				return
			}
			if got, want := res.Header.Get("Content-Type"), "text/event-stream"; got != want {
				t.Errorf("content type %q, want %q", got, want)
			}
		})
	}
}

// TestInspectStream: an admin watching a thing over HTTP sees the state
// uploads it makes as REQUEST events, without its token.
func TestInspectStream(t *testing.T) {
	s := startServer(t)
	admin := adminToken(t, s)
	th := simulatedThing(t, s, "lamp-stream")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", baseURL(s)+"/console/api/inspect?app="+appID+"&thing="+th.ThingID(), nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		for _, secret := range []string{th.Credentials().AccessToken, thingPass, appKey} {
			if strings.Contains(line, secret) {
				t.Fatalf("event shows a secret: %s", line)
			}
		}
		var e struct{ Kind, Method, Path, ThingID string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event %s: %v", line, err)
		}
		if e.ThingID != th.ThingID() {
			t.Fatalf("event of thing %q on %q's stream", e.ThingID, th.ThingID())
		}
		if e.Kind == "REQUEST" && strings.HasSuffix(e.Path, "/states") {
			return
		}
	}
	t.Fatalf("stream ended without a state upload: %v", sc.Err())
}

// TestPagesSelfContained: the console loads nothing from elsewhere: no
// absolute URL in any embedded page, and the pages are served with a
// same-origin Content-Security-Policy.
func TestPagesSelfContained(t *testing.T) {
	s := startServer(t)
	root := os.DirFS("static")
	files, _ := fs.Glob(root, "*")
	if len(files) == 0 {
		t.Fatal("no static files")
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			res, err := http.Get(baseURL(s) + "/console/" + name)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			// The SVG namespace is a name, not something loaded.
			b = bytes.ReplaceAll(b, []byte(`"http://www.w3.org/2000/svg"`), nil)
			if got, want := res.StatusCode, 200; got != want {
				t.Fatalf("status %d, want %d", got, want)
			}
			for _, bad := range []string{"http://", "https://", "//fonts.", "@import"} {
				if bytes.Contains(b, []byte(bad)) {
					t.Errorf("%s contains %q", name, bad)
				}
			}
			if got, want := res.Header.Get("Content-Security-Policy"), "default-src 'self'; frame-ancestors 'none'"; got != want {
				t.Errorf("CSP %q, want %q", got, want)
			}
		})
	}
}

// TestCloseEndsStreams: stopping the server ends open inspector streams, so
// that the REST listeners shut down cleanly instead of waiting them out.
func TestCloseEndsStreams(t *testing.T) {
	s := startServer(t)
	admin := adminToken(t, s)
	req, _ := http.NewRequest("GET", baseURL(s)+"/console/api/inspect?app="+appID+"&broker=onboarding", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if got, want := res.StatusCode, 200; got != want {
		t.Fatalf("status %d, want %d", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with a stream open: %v", err)
	}
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Logf("stream ended with %v", err)
	}
}

// TestConnection: GET /console/api/connection says whether a thing is
// subscribed on the API broker, to those the API lets see the thing.
func TestConnection(t *testing.T) {
	s := startServer(t)
	admin := adminToken(t, s)
	user, _ := userToken(t, s, admin, "dave")
	th := simulatedThing(t, s, "lamp-conn")
	path := "/console/api/connection?app=" + appID + "&thing=" + th.ThingID()
	subscribed := func() int {
		var c struct{ Subscribed *int }
		if st := call(t, s, "GET", path, admin, nil, &c); st != 200 || c.Subscribed == nil {
			t.Fatalf("connection: status %d, %+v", st, c)
		}
		return *c.Subscribed
	}
	await := func(want int) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for subscribed() != want {
			if time.Now().After(deadline) {
				t.Fatalf("subscribed=%d, want %d", subscribed(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	await(1)
	if got, want := call(t, s, "GET", path, user, nil, nil), 403; got != want {
		t.Errorf("another user: status %d, want %d", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := th.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	await(0)
}
