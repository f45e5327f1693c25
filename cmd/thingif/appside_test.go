package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestAppSideCLI drives the app-side subcommands against a real server in
// process: a user, a command, its listing, the state and its history, and
// the life of a trigger.
func TestAppSideCLI(t *testing.T) {
	srv := cliServer(t)
	t.Setenv("THINGIF_APP_KEY", "cli-key")

	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, &out, &errOut)
		return out.String(), err
	}
	mustCLI := func(want string, args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("thingif %s: %v", strings.Join(args, " "), err)
		}
		if !regexp.MustCompile(want).MatchString(out) {
			t.Fatalf("thingif %s printed %q, want match for %q", strings.Join(args, " "), out, want)
		}
		return out
	}

	// One server on SQLite: itself, alive, on its API broker's port.
	mustCLI(fmt.Sprintf(`(?m)^NODE +STATE .*\n\S+ +alive +127\.0\.0\.1 +%d/0/0/0 +0 +0 `, srv.Port("mqtt-tcp")), "nodes")
	mustCLI(`"alive": true`, "nodes", "--json")
	mustCLI(`^user alice created: u\.\w+\n$`, "user", "create", "--name", "alice", "--password", "pw-alice")
	if _, err := cli("user", "create", "--name", "alice", "--password", "pw-alice"); err == nil || !strings.Contains(err.Error(), "USER_ALREADY_EXISTS") {
		t.Fatalf("second user create: %v", err)
	}
	mustCLI(`"loginName": "bob"`, "user", "create", "--json", "--name", "bob", "--password", "pw-bob")

	// A thing, onboarded by the app admin over REST.
	var th struct{ AccessToken, ThingID string }
	c := &appClient{server: fmt.Sprintf("http://127.0.0.1:%d", srv.Port("http")), app: "cliapp", key: "cli-key"}
	if _, err := c.call(t.Context(), "POST", "/thing-if/apps/cliapp/onboardings", "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
		[]byte(`{"vendorThingID":"cli-thing","thingPassword":"pw"}`), &th); err != nil {
		t.Fatal(err)
	}

	out := mustCLI(`^command \w+ sent\n$`, "command", "send", "--thing", th.ThingID, "--actions", `[{"AC":[{"turnPower":true}]}]`)
	cid := strings.Fields(out)[1]
	mustCLI(cid+`  SENDING .*\[\{"AC":\[\{"turnPower":true\}\]\}\]`, "command", "list", "--thing", th.ThingID)
	mustCLI(`state +SENDING`, "command", "get", "--thing", th.ThingID, cid)
	if _, err := cli("command", "send", "--thing", th.ThingID, "--actions", `[]`); err == nil || !strings.Contains(err.Error(), "WRONG_COMMAND") {
		t.Fatalf("empty actions: %v", err)
	}
	if _, err := cli("command", "send", "--thing", th.ThingID); err == nil {
		t.Fatal("command send without --actions succeeded")
	}

	// The thing uploads states; the CLI reads them back.
	thingClient := &appClient{server: c.server, app: "cliapp", token: th.AccessToken}
	for _, temp := range []int{20, 24} {
		if _, err := thingClient.call(t.Context(), "PUT", "/thing-if/apps/cliapp/targets/thing:"+th.ThingID+"/states",
			"application/vnd.kii.MultipleTraitState+json", fmt.Appendf(nil, `{"AC":{"temp":%d}}`, temp), nil); err != nil {
			t.Fatal(err)
		}
	}
	mustCLI(`"temp": 24`, "state", "get", "--thing", th.ThingID, "--alias", "AC")
	mustCLI(`(?s)\{"temp":20\}.*\{"temp":24\}`, "state", "history", "--thing", th.ThingID, "--alias", "AC")
	mustCLI(`^MEAN\(temp\) = 22\n$`, "state", "history", "--thing", th.ThingID, "--alias", "AC", "--aggregate", "MEAN:temp")

	// A trigger: create, list, disable, enable, delete.
	out = mustCLI(`^trigger \w+ created\n$`, "trigger", "create", "--thing", th.ThingID, "--title", "hot",
		"--predicate", `{"eventSource":"STATES","condition":{"type":"range","alias":"AC","field":"temp","lowerLimit":30},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`,
		"--command", `{"actions":[{"AC":[{"turnPower":false}]}]}`)
	tid := strings.Fields(out)[1]
	mustCLI(tid+`  enabled +COMMAND .* hot\n`, "trigger", "list", "--thing", th.ThingID)
	mustCLI(`disabled`, "trigger", "disable", "--thing", th.ThingID, tid)
	mustCLI(tid+`  disabled`, "trigger", "list", "--thing", th.ThingID)
	mustCLI(`enabled`, "trigger", "enable", "--thing", th.ThingID, tid)
	mustCLI(`deleted`, "trigger", "delete", "--thing", th.ThingID, tid)
	if _, err := cli("trigger", "delete", "--thing", th.ThingID, tid); err == nil || !strings.Contains(err.Error(), "TRIGGER_NOT_FOUND") {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := cli("trigger", "create", "--thing", th.ThingID, "--predicate", `{"eventSource":"CLOCK"}`, "--command", `{"actions":[{"a":{}}]}`); err == nil || !strings.Contains(err.Error(), "WRONG_TRIGGER") {
		t.Fatalf("bad predicate: %v", err)
	}
	if _, err := cli("trigger", "frobnicate"); err == nil {
		t.Fatal("unknown verb accepted")
	}
}
