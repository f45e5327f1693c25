package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

const (
	thingTestApp = "app1"
	thingTestKey = "key1"
)

// thingTestServer starts a server with every listener on loopback; with
// like set, on the ports and data dir of like.
func thingTestServer(t *testing.T, dir string, like *server.Server) *server.Server {
	t.Helper()
	addr := func(name string) string {
		if like == nil {
			return "127.0.0.1:0"
		}
		return "127.0.0.1:" + strconv.Itoa(like.Port(name))
	}
	cfg := server.Config{
		DataDir: dir, PublicHost: "127.0.0.1",
		Apps:       []server.AppCredential{{ID: thingTestApp, Key: thingTestKey}},
		OnboardTCP: addr("onboard-tcp"), MQTTTCP: addr("mqtt-tcp"), HTTP: addr("http"),
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
	}
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// thingArgs are the flags naming a thing of the test app on s.
func thingArgs(s *server.Server, vendorThingID string) []string {
	return []string{"--server", fmt.Sprintf("tcp://127.0.0.1:%d", s.Port("onboard-tcp")),
		"--app", thingTestApp + ":" + thingTestKey, "--vendor-thing-id", vendorThingID, "--password", "pw"}
}

// restCall calls the REST API of s and decodes the answer into out.
func restCall(t *testing.T, s *server.Server, method, path, token, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port("http"), path), strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return res.StatusCode
}

func adminTokenOf(t *testing.T, s *server.Server) string {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	restCall(t, s, "POST", "/api/apps/"+thingTestApp+"/oauth2/token", "",
		`{"grant_type":"client_credentials","client_id":"`+thingTestApp+`","client_secret":"`+thingTestKey+`"}`, &tok)
	if tok.AccessToken == "" {
		t.Fatal("no admin token")
	}
	return tok.AccessToken
}

func TestThingOnboard(t *testing.T) {
	s := thingTestServer(t, t.TempDir(), nil)
	var out strings.Builder
	if err := run(context.Background(), append([]string{"thing", "onboard"}, thingArgs(s, "cli-onboard")...), &out, io.Discard); err != nil {
		t.Fatalf("thing onboard: %v", err)
	}
	var ep struct {
		MQTTTopic, Username, Password, Host string
		PortTCP                             int
	}
	if err := json.Unmarshal([]byte(out.String()), &ep); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if ep.MQTTTopic == "" || ep.Username == "" || ep.Password == "" || ep.Host != "127.0.0.1" || ep.PortTCP != s.Port("mqtt-tcp") {
		t.Fatalf("mqttEndpoint %+v", ep)
	}
	args := append([]string{"thing", "onboard"}, thingArgs(s, "cli-onboard")...)
	args[len(args)-1] = "wrong"
	if err := run(context.Background(), args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "WRONG_PASSWORD") {
		t.Fatalf("thing onboard with a wrong password: %v", err)
	}
}

// TestThingRun runs the simulated thing: it prints and answers commands,
// uploads its state, and survives a server restart.
func TestThingRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
		alias string // --trait: the state is uploaded under this alias
	}{
		{"success", nil, "DONE", ""},
		{"failure", []string{"--fail"}, "INCOMPLETE", ""},
		{"trait", []string{"--trait", "AirConditionerAlias"}, "DONE", "AirConditionerAlias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := thingTestServer(t, dir, nil)
			vt := "cli-run-" + tc.name
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			defer pw.Close()
			args := append([]string{"thing", "run", "--state-interval", "50ms"}, thingArgs(s, vt)...)
			args = append(args, tc.flags...)
			stderr := &strings.Builder{}
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, pw, stderr) }()
			lines := bufio.NewScanner(pr)

			admin := adminTokenOf(t, s)
			thingID := awaitThing(t, s, admin, vt)
			sendAndCheck := func(s *server.Server, admin string) {
				t.Helper()
				var out struct{ CommandID string }
				if st := restCall(t, s, "POST", "/thing-if/apps/"+thingTestApp+"/targets/thing:"+thingID+"/commands", admin,
					`{"schema":"S","schemaVersion":1,"issuer":"user:u","actions":[{"turnPower":{"power":false}}]}`, &out); st != 201 {
					t.Fatalf("send command: %d", st)
				}
				if !lines.Scan() {
					t.Fatalf("no output line; stderr:\n%s", stderr)
				}
				var printed struct{ CommandID string }
				if err := json.Unmarshal(lines.Bytes(), &printed); err != nil || printed.CommandID != out.CommandID {
					t.Fatalf("printed %q, want the command %s", lines.Text(), out.CommandID)
				}
				deadline := time.Now().Add(30 * time.Second)
				for {
					var c struct{ CommandState string }
					restCall(t, s, "GET", "/thing-if/apps/"+thingTestApp+"/targets/thing:"+thingID+"/commands/"+out.CommandID, admin, "", &c)
					if c.CommandState == tc.want {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("command state %s, want %s", c.CommandState, tc.want)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			sendAndCheck(s, admin)
			awaitState(t, s, admin, thingID, map[bool]string{true: `"power":false`, false: `"power":true`}[tc.want == "DONE"])
			if tc.alias != "" {
				var raw json.RawMessage
				if st := restCall(t, s, "GET", "/thing-if/apps/"+thingTestApp+"/targets/thing:"+thingID+"/states/aliases/"+tc.alias, admin, "", &raw); st != 200 || !strings.Contains(string(raw), `"power":false`) {
					t.Fatalf("state of alias %s: %d %s, want the uploaded state", tc.alias, st, raw)
				}
			}

			// Restart the server on the same ports and data dir.
			s.Close(context.Background())
			s = thingTestServer(t, dir, s)
			admin = adminTokenOf(t, s)
			sendAndCheck(s, admin)

			cancel()
			if err := <-done; err != nil {
				t.Fatalf("thing run: %v", err)
			}
		})
	}
}

// awaitThing waits until the thing is onboarded and returns its ID.
func awaitThing(t *testing.T, s *server.Server, admin, vendorThingID string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		th, err := s.Store().ThingByVendorID(context.Background(), thingTestApp, vendorThingID)
		if err == nil {
			// Onboarded; wait for the connection by its first state.
			awaitState(t, s, admin, th.ID, `"uptime"`)
			return th.ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("thing %s not onboarded", vendorThingID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitState waits until the thing's state contains want.
func awaitState(t *testing.T, s *server.Server, admin, thingID, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var raw json.RawMessage
		restCall(t, s, "GET", "/thing-if/apps/"+thingTestApp+"/targets/thing:"+thingID+"/states", admin, "", &raw)
		if strings.Contains(string(raw), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want it to contain %s", raw, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
