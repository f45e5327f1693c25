package server

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestTriggersAcrossRestart drives a trigger through the assembled server:
// created over REST, evaluated on state uploads, and still knowing its last
// result after a restart on the same data directory.
func TestTriggersAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, testConfig(t, dir))
	admin := adminToken(t, s)
	var th struct{ AccessToken, ThingID string }
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/onboardings", admin, "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
		`{"vendorThingID":"trig-1","thingPassword":"pw"}`, &th); st != 200 {
		t.Fatalf("onboard: %d", st)
	}
	target := "/thing-if/apps/" + testAppID + "/targets/thing:" + th.ThingID
	var created struct{ TriggerID string }
	if st := rest(t, s, "POST", target+"/triggers", admin, "application/json",
		`{"predicate":{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"},"command":{"actions":[{"off":{}}],"schema":"S","schemaVersion":1}}`, &created); st != 201 {
		t.Fatalf("create trigger: %d", st)
	}
	put := func(s *Server, body string) {
		t.Helper()
		if st := rest(t, s, "PUT", target+"/states", th.AccessToken, "application/json", body, nil); st != 204 {
			t.Fatalf("put state: %d", st)
		}
	}
	count := func(s *Server) int {
		t.Helper()
		var list struct {
			Commands []struct{ CommandState string }
		}
		if st := rest(t, s, "GET", target+"/commands?bestEffortLimit=100", admin, "", "", &list); st != 200 {
			t.Fatalf("list commands: %d", st)
		}
		return len(list.Commands)
	}
	put(s, `{"power":true}`)
	if n := count(s); n != 1 {
		t.Fatalf("%d commands after false→true, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, testConfig(t, dir))
	admin = adminToken(t, s)
	put(s, `{"power":true}`)
	if n := count(s); n != 1 {
		t.Fatalf("%d commands after a restart and true→true, want 1", n)
	}
	put(s, `{"power":false}`)
	put(s, `{"power":true}`)
	if n := count(s); n != 2 {
		t.Fatalf("%d commands, want 2", n)
	}

	// Never-delivered commands expire (the thing has no live connection).
	s.housekeeping(context.Background(), time.Now().Add(DefaultCommandExpiry+time.Minute))
	var c struct{ CommandState string }
	var list struct{ Commands []struct{ CommandID string } }
	rest(t, s, "GET", target+"/commands", admin, "", "", &list)
	if st := rest(t, s, "GET", fmt.Sprintf("%s/commands/%s", target, list.Commands[0].CommandID), admin, "", "", &c); st != 200 || c.CommandState != "EXPIRED" {
		t.Fatalf("command after expiry: %d %q", st, c.CommandState)
	}
}

func TestAppSideConfig(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AppSide.WebhookURL = "ftp://example"
	if err := cfg.Validate(); err == nil {
		t.Fatal("an ftp webhook URL is valid")
	}
	cfg.AppSide.WebhookURL = "https://example/hook"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
