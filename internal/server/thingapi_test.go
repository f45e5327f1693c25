package server

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestThingAPIOverMQTT walks the thing-side endpoints over the API broker,
// through the same handler as REST: each call's status and answer.
func TestThingAPIOverMQTT(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	anon := dialAnonymous(t, s)
	ob := onboard(t, anon, "vt-api", "pw")
	c := dialThing(t, s, ob)
	auth := "Bearer " + ob.AccessToken
	target := "targets/thing:" + ob.ThingID
	steps := []struct {
		name, method, rest, contentType, body string
		status                                int
		answer                                string // a substring of the answer body
	}{
		{"firmware version before set", "GET", "things/" + ob.ThingID + "/firmware-version", "", "", 404, "FIRMWARE_VERSION_NOT_FOUND"},
		{"set firmware version", "PUT", "things/" + ob.ThingID + "/firmware-version", "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json", `{"firmwareVersion":"1.2.3"}`, 204, ""},
		{"firmware version", "GET", "things/" + ob.ThingID + "/firmware-version", "", "", 200, `{"firmwareVersion":"1.2.3"}`},
		{"thing type before set", "GET", "things/" + ob.ThingID + "/thing-type", "", "", 404, "THING_TYPE_NOT_FOUND"},
		{"set thing type", "PUT", "things/" + ob.ThingID + "/thing-type", "application/vnd.kii.ThingTypeUpdateRequest+json", `{"thingType":"AirConditioner"}`, 204, ""},
		{"thing type", "GET", "things/" + ob.ThingID + "/thing-type", "", "", 200, `{"thingType":"AirConditioner"}`},
		{"state v2", "PUT", target + "/states", "application/vnd.kii.MultipleTraitState+json", `{"AirConditionerAlias":{"power":true,"temp":20},"Meter":{"kwh":1}}`, 204, ""},
		{"patch state v2", "PATCH", target + "/states", "application/vnd.kii.MultipleTraitStatePatch+json", `{"AirConditionerAlias":{"temp":25}}`, 204, ""},
		{"read alias", "GET", target + "/states/aliases/AirConditionerAlias", "", "", 200, `"temp":25`},
		{"read all", "GET", target + "/states", "", "", 200, `"Meter":{"kwh":1}`},
		{"state v1", "PUT", target + "/states", "application/json", `{"power":false}`, 204, ""},
		{"read v1", "GET", target + "/states", "", "", 200, `{"power":false}`},
		{"upper-case THING:", "GET", "targets/THING:" + ob.ThingID + "/states", "", "", 200, `{"power":false}`},
		{"bad state JSON", "PUT", target + "/states", "application/json", `{"power":`, 400, "INVALID_INPUT_DATA"},
		{"unknown command results", "PUT", target + "/commands/nope/action-results", "application/json", `{"actionResults":[{"a":{"succeeded":true}}]}`, 404, "COMMAND_NOT_FOUND"},
		{"unknown path", "GET", "nothing/here", "", "", 404, "errorCode"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			h := map[string]string{"Authorization": auth}
			if st.contentType != "" {
				h["Content-Type"] = st.contentType
			}
			res := call(t, c, apiTopic(ob, st.rest), st.method, h, st.body)
			if res.StatusCode != st.status || !strings.Contains(string(res.Body), st.answer) {
				t.Fatalf("%s %s: %d %s, want %d with %q", st.method, st.rest, res.StatusCode, res.Body, st.status, st.answer)
			}
		})
	}
	// Without an Authorization header the connection's own thing is the caller.
	if res := call(t, c, apiTopic(ob, target+"/states"), "GET", nil, ""); res.StatusCode != 200 {
		t.Fatalf("GET states without Authorization: %d %s", res.StatusCode, res.Body)
	}
	// A wrong token is refused even on the thing's own connection.
	if res := call(t, c, apiTopic(ob, target+"/states"), "GET", map[string]string{"Authorization": "Bearer nope"}, ""); res.StatusCode != 403 {
		t.Fatalf("GET states with a wrong token: %d %s", res.StatusCode, res.Body)
	}
	// The app sees what the thing wrote.
	var fw struct{ FirmwareVersion string }
	if code := rest(t, s, "GET", "/thing-if/apps/"+testAppID+"/things/"+ob.ThingID+"/firmware-version", admin, "", "", &fw); code != 200 || fw.FirmwareVersion != "1.2.3" {
		t.Fatalf("firmware version over REST: %d %+v", code, fw)
	}
}

// TestSecretsNotStoredInClear: after onboarding and a token request, no
// secret appears in the database files: thing password, endpoint password,
// access tokens and app keys are stored only as hashes.
func TestSecretsNotStoredInClear(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	const appKey = "app-key-that-must-not-be-stored-9f3"
	cfg.Apps = append(cfg.Apps, AppCredential{ID: "app2", Key: appKey})
	s := startServer(t, cfg)
	admin := adminToken(t, s)
	anon := dialAnonymous(t, s)
	const thingPassword = "thing-password-Zq8"
	ob := onboard(t, anon, "vt-secret", thingPassword)
	dialThing(t, s, ob)
	secrets := map[string]string{
		"thing password":    thingPassword,
		"endpoint password": ob.MQTTEndpoint.Password,
		"thing token":       ob.AccessToken,
		"admin token":       admin,
		"app key":           appKey,
	}
	files, _ := filepath.Glob(filepath.Join(dir, "thingif.db*"))
	found := false // the search does see stored data
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found = found || bytes.Contains(b, []byte(ob.MQTTEndpoint.MQTTTopic))
		for name, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s found in clear in %s", name, filepath.Base(f))
			}
		}
	}
	if !found {
		t.Fatalf("the mqttTopic is in none of %v: not the database files", files)
	}
}

// TestTraitCommand: a command in the trait (v2) form is pushed with its
// target and aliased actions, and v2 action results complete it.
func TestTraitCommand(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	admin := adminToken(t, s)
	ob := onboard(t, dialAnonymous(t, s), "vt-v2", "pw")
	c := dialThing(t, s, ob)
	c.Subscribe(t, ob.MQTTEndpoint.MQTTTopic, 0)
	var out struct{ CommandID string }
	body := `{"issuer":"user:u1","actions":[{"AirConditionerAlias":[{"turnPower":true},{"setPresetTemperature":25}]}],"title":"cool down"}`
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/commands", admin,
		"application/vnd.kii.CommandCreationRequest+json", body, &out); st != 201 {
		t.Fatalf("send v2 command: %d", st)
	}
	push := await(t, c, ob.MQTTEndpoint.MQTTTopic)
	var got struct {
		CommandID, Target, Title, Schema string
		Actions                          []map[string][]map[string]any
	}
	if err := json.Unmarshal(push.Payload, &got); err != nil {
		t.Fatal(err)
	}
	if got.CommandID != out.CommandID || got.Target != "thing:"+ob.ThingID || got.Schema != "" || got.Title != "cool down" ||
		len(got.Actions) != 1 || len(got.Actions[0]["AirConditionerAlias"]) != 2 {
		t.Fatalf("v2 push %s", push.Payload)
	}
	res := call(t, c, apiTopic(ob, "targets/thing:"+ob.ThingID+"/commands/"+out.CommandID+"/action-results"), "PUT",
		map[string]string{"Authorization": "Bearer " + ob.AccessToken, "Content-Type": "application/vnd.kii.CommandResultsUpdateRequest+json"},
		`{"actionResults":[{"AirConditionerAlias":[{"turnPower":{"succeeded":true}},{"setPresetTemperature":{"succeeded":false,"errorMessage":"too hot"}}]}]}`)
	if res.StatusCode != 204 {
		t.Fatalf("v2 action results: %d %s", res.StatusCode, res.Body)
	}
	if st := commandState(t, s, admin, ob.ThingID, out.CommandID); st != "INCOMPLETE" {
		t.Fatalf("state %s, want INCOMPLETE (one action failed)", st)
	}
}
