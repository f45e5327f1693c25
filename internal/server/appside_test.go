package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
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

// TestHousekeepingDeletesExpiredTokens: housekeeping deletes the rows of
// expired tokens of every kind, here an admin token (24 h) and a thing
// token (--thing-token-ttl 1h), and keeps the ones still valid.
func TestHousekeepingDeletesExpiredTokens(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.ThingTokenTTL = time.Hour
	s := startServer(t, cfg)
	admin := adminToken(t, s)
	var th struct{ AccessToken, ThingID string }
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/onboardings", admin, "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
		`{"vendorThingID":"tok-1","thingPassword":"pw"}`, &th); st != 200 {
		t.Fatalf("onboard: %d", st)
	}
	ctx := context.Background()
	exists := func(tok string) bool {
		t.Helper()
		// Below the cache: the rows are what housekeeping deletes (the
		// cache serves no expired token, by the real clock).
		_, err := s.db.Token(ctx, secret.HashToken(tok))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, tt := range []struct {
		name         string
		after        time.Duration
		admin, thing bool
	}{
		{"before either expires", 30 * time.Minute, true, true},
		{"after the thing token's hour", time.Hour + time.Minute, true, false},
		{"after the admin token's day", 24*time.Hour + time.Minute, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.housekeeping(ctx, time.Now().Add(tt.after))
			if got := exists(admin); got != tt.admin {
				t.Errorf("admin token stored=%v, want %v", got, tt.admin)
			}
			if got := exists(th.AccessToken); got != tt.thing {
				t.Errorf("thing token stored=%v, want %v", got, tt.thing)
			}
		})
	}
}
