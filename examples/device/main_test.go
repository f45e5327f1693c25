package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

// TestDevice builds the example, runs it against an in-process server,
// sends it a command and sees the command DONE and the state uploaded.
func TestDevice(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "device")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s, err := server.New(context.Background(), server.Config{
		DataDir: filepath.Join(dir, "data"), PublicHost: "127.0.0.1",
		Apps:       []server.AppCredential{{ID: "app1", Key: "key1"}},
		OnboardTCP: "127.0.0.1:0", MQTTTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	cmd := exec.Command(bin, "-server", fmt.Sprintf("tcp://127.0.0.1:%d", s.Port("onboard-tcp")), "-app", "app1:key1")
	cmd.Dir = dir
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	rest := func(method, path, token, body string, out any) int {
		req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.Port("http"), path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if out != nil {
			json.Unmarshal(b, out)
		}
		return res.StatusCode
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	rest("POST", "/api/apps/app1/oauth2/token", "", `{"grant_type":"client_credentials","client_id":"app1","client_secret":"key1"}`, &tok)

	deadline := time.Now().Add(30 * time.Second)
	var thingID string
	for thingID == "" {
		if th, err := s.Store().ThingByVendorID(context.Background(), "app1", "example-lamp"); err == nil {
			thingID = th.ID
		} else if time.Now().After(deadline) {
			t.Fatalf("device did not onboard; its log:\n%s", logs.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The device may still be connecting: the command waits for it.
	var sent struct{ CommandID string }
	if st := rest("POST", "/thing-if/apps/app1/targets/thing:"+thingID+"/commands", tok.AccessToken,
		`{"schema":"Lamp","schemaVersion":1,"issuer":"user:u1","actions":[{"turnPower":{"power":true}}]}`, &sent); st != 201 {
		t.Fatalf("send command: %d", st)
	}
	for {
		var c struct{ CommandState string }
		rest("GET", "/thing-if/apps/app1/targets/thing:"+thingID+"/commands/"+sent.CommandID, tok.AccessToken, "", &c)
		var state json.RawMessage
		rest("GET", "/thing-if/apps/app1/targets/thing:"+thingID+"/states", tok.AccessToken, "", &state)
		if c.CommandState == "DONE" && string(state) == `{"power":true}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s, state %s; device log:\n%s", c.CommandState, state, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The device saves its credentials before it connects.
	if _, err := os.Stat(filepath.Join(dir, "thing.json")); err != nil {
		t.Fatalf("credentials not kept: %v", err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("device exit: %v\n%s", err, logs.String())
	}
}
