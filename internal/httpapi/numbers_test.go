package httpapi

import (
	"strings"
	"testing"
)

// TestHugeNumbersRefused: a stored body with a number a float64 cannot hold
// is 400 INVALID_INPUT_DATA naming the number, on every road a number is
// stored by, and nothing is stored.
func TestHugeNumbersRefused(t *testing.T) {
	o := newOwnerEnv(t)
	th := o.onboard("v-1", "pw")
	base := o.prefix + "/targets/thing:" + th.ThingID
	thing := bearer(th.AccessToken)
	admin := with(bearer(o.admin), "Content-Type", "application/json")
	const (
		multi = "application/vnd.kii.MultipleTraitState+json"
		patch = "application/vnd.kii.MultipleTraitStatePatch+json"
		bulk  = "application/vnd.kii.StateBulkUploadRequest+json"
	)
	check(t, o.do("PUT", base+"/states", `{"AC":{"temp":1}}`, with(thing, "Content-Type", multi)...), 204, "")
	pred := `{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_CHANGED"}`
	cmd := `{"issuer":"user:u","actions":[{"AC":[{"setTemp":20}]}]}`
	r := o.do("POST", base+"/triggers", `{"predicate":`+pred+`,"command":`+cmd+`}`, admin...)
	check(t, r, 201, "")
	var created struct{ TriggerID string }
	r.decode(t, &created)

	r = o.do("POST", base+"/commands", cmd, admin...)
	check(t, r, 201, "")
	var sent struct{ CommandID string }
	r.decode(t, &sent)

	for _, tt := range []struct {
		name, method, path, contentType, body string
		asThing                               bool
	}{
		{"action results", "PUT", "/commands/" + sent.CommandID + "/action-results", "application/json",
			`{"actionResults":[{"AC":[{"setTemp":{"succeeded":true,"data":{"t":1e400}}}]}]}`, true},
		{"thing properties", "PUT", "/../../things/" + th.ThingID + "/properties", "application/json", `{"max":1e400}`, false},
		{"onboarding thingProperties", "POST", "/../../onboardings", "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
			`{"vendorThingID":"v-huge","thingPassword":"pw","thingProperties":{"max":1e400}}`, false},
		{"v1 put", "PUT", "/states", "application/json", `{"temp":1e400}`, true},
		{"v1 patch", "PATCH", "/states", "application/json", `{"temp":-1e400}`, true},
		{"v2 put", "PUT", "/states", multi, `{"AC":{"temp":1e400}}`, true},
		{"v2 patch nested", "PATCH", "/states", patch, `{"AC":{"t":[{"x":1E+309}]}}`, true},
		{"bulk", "POST", "/states-bulk", bulk, `{"states":[{"state":{"AC":{"temp":2}}},{"state":{"AC":{"temp":1e400}}}]}`, true},
		{"command action", "POST", "/commands", "application/json", `{"issuer":"user:u","actions":[{"AC":[{"setTemp":1e400}]}]}`, false},
		{"trigger condition value", "POST", "/triggers", "application/json",
			`{"predicate":{"eventSource":"STATES","condition":{"type":"eq","field":"t","value":1e400},"triggersWhen":"CONDITION_CHANGED"},"command":` + cmd + `}`, false},
		{"trigger range limit", "POST", "/triggers", "application/json",
			`{"predicate":{"eventSource":"STATES","condition":{"type":"range","field":"t","lowerLimit":-1e400},"triggersWhen":"CONDITION_CHANGED"},"command":` + cmd + `}`, false},
		{"trigger command action", "POST", "/triggers", "application/json",
			`{"predicate":` + pred + `,"command":{"issuer":"user:u","actions":[{"AC":[{"setTemp":1e400}]}]}}`, false},
		{"trigger patch", "PATCH", "/triggers/" + created.TriggerID, "application/json",
			`{"command":{"issuer":"user:u","actions":[{"AC":[{"setTemp":1e400}]}]}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := with(bearer(o.admin), "Content-Type", tt.contentType)
			if tt.asThing {
				h = with(thing, "Content-Type", tt.contentType)
			}
			path := base + tt.path
			if rest, ok := strings.CutPrefix(tt.path, "/../../"); ok {
				path = o.prefix + "/" + rest
			}
			r := o.do(tt.method, path, tt.body, h...)
			check(t, r, 400, "INVALID_INPUT_DATA")
			if !strings.Contains(string(r.body), "e400") && !strings.Contains(string(r.body), "E+309") {
				t.Fatalf("answer %s does not name the number", r.body)
			}
		})
	}
	// Nothing was stored.
	r = o.do("GET", base+"/states", "", thing...)
	check(t, r, 200, "")
	if got, want := string(r.body), `{"AC":{"temp":1}}`; got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
	r = o.do("GET", base+"/triggers/"+created.TriggerID, "", admin...)
	check(t, r, 200, "")
	if !strings.Contains(string(r.body), `"setTemp":20`) {
		t.Fatalf("trigger %s was changed", r.body)
	}
	r = o.do("GET", base+"/triggers", "", admin...)
	check(t, r, 200, "")
	if n := strings.Count(string(r.body), `"triggerID"`); n != 1 {
		t.Fatalf("%d triggers stored, want 1: %s", n, r.body)
	}
	r = o.do("GET", base+"/commands/"+sent.CommandID, "", admin...)
	check(t, r, 200, "")
	if strings.Contains(string(r.body), "actionResults") && strings.Contains(string(r.body), "e400") {
		t.Fatalf("action results were stored: %s", r.body)
	}
	r = o.do("GET", o.prefix+"/things/VENDOR_THING_ID:v-huge", "", admin...)
	check(t, r, 404, "THING_NOT_FOUND")
	r = o.do("GET", base+"/commands", "", admin...)
	check(t, r, 200, "")
	if strings.Contains(string(r.body), "e400") {
		t.Fatalf("a command was stored: %s", r.body)
	}
}
