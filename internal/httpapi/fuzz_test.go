package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzJSONBodies feeds arbitrary bytes as the body of every JSON-accepting
// route: the handler must not panic, and must answer a known status with a
// JSON error body, or succeed.
func FuzzJSONBodies(f *testing.F) {
	for _, s := range []string{
		`{"vendorThingID":"v-1","thingPassword":"pw","thingProperties":{"a":1},"layoutPosition":"GATEWAY"}`,
		`{"thingID":"th.x","thingPassword":"pw"}`,
		`{"grant_type":"client_credentials","client_id":"app1","client_secret":"dummy"}`,
		`{"deviceType":"MQTT","development":"false"}`,
		`{"power":true}`, `{"A":{"on":true}}`, `{"A":1}`, `{"":{}}`,
		`{"states":[{"timestamp":1,"state":{"A":{}}}]}`,
		`{"schema":"S","schemaVersion":1,"actions":[{"a":{}}],"issuer":"user:u"}`,
		`{"actions":[{"A":[{"x":1}]}],"metadata":{}}`,
		`{"actionResults":[{"A":[{"x":{"succeeded":true}}]}]}`,
		`{"firmwareVersion":"1"}`, `{"thingType":"t"}`,
		``, `null`, `[]`, `{`, `{"a":"\xff"}`, "\xef\xbb\xbf{}", `{"actions":[{"A":[{"x":1}]}]} {}`,
	} {
		f.Add([]byte(s))
	}
	e := newEnv(f, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		c.MaxBodyBytes = 4096
		c.MaxPendingCommands = -1 // a long run sends many valid commands
	})
	o := e.onboard("v-1", "pw")
	admin := e.appToken(testApp, testAppKey)
	anon := e.appToken(testApp, "dummy")
	target := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID
	thing := "/thing-if/apps/" + testApp + "/things/" + o.ThingID
	cmd := e.do("POST", target+"/commands", `{"actions":[{"A":[{"x":1}]}]}`, with(bearer(admin), "Content-Type", "application/json")...)
	var created struct{ CommandID string }
	cmd.decode(f, &created)

	routes := []struct{ method, path, token, contentType string }{
		{"POST", "/api/apps/" + testApp + "/oauth2/token", "", "application/json"},
		{"POST", "/thing-if/apps/" + testApp + "/onboardings", anon, "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"},
		{"POST", "/thing-if/apps/" + testApp + "/onboardings", anon, "application/vnd.kii.OnboardingWithThingIDByThing+json"},
		{"POST", "/api/apps/" + testApp + "/installations", o.AccessToken, "application/json"},
		{"PUT", target + "/states", o.AccessToken, "application/json"},
		{"PUT", target + "/states", o.AccessToken, "application/vnd.kii.MultipleTraitState+json"},
		{"PATCH", target + "/states", o.AccessToken, "application/vnd.kii.MultipleTraitStatePatch+json"},
		{"PATCH", target + "/states", o.AccessToken, "application/json"},
		{"POST", target + "/states-bulk", o.AccessToken, "application/vnd.kii.StateBulkUploadRequest+json"},
		{"POST", target + "/commands", admin, "application/json"},
		{"PUT", target + "/commands/" + created.CommandID + "/action-results", o.AccessToken, "application/json"},
		{"PUT", thing + "/firmware-version", o.AccessToken, "application/json"},
		{"PUT", thing + "/thing-type", o.AccessToken, "application/json"},
	}
	known := map[int]bool{200: true, 201: true, 204: true, 400: true, 401: true, 403: true, 404: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, rt := range routes {
			r := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
			r.Header.Set("Content-Type", rt.contentType)
			if rt.token != "" {
				r.Header.Set("Authorization", "Bearer "+rt.token)
			}
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, r)
			if !known[w.Code] {
				t.Fatalf("%s %s: status %d: %s", rt.method, rt.path, w.Code, w.Body)
			}
			if w.Code == http.StatusNoContent {
				if w.Body.Len() != 0 {
					t.Fatalf("%s %s: 204 with a body", rt.method, rt.path)
				}
				continue
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s: %d answer is not JSON: %q", rt.method, rt.path, w.Code, w.Body)
			}
			if w.Code >= 400 {
				var e struct{ ErrorCode, Message string }
				if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.ErrorCode == "" || e.Message == "" {
					t.Fatalf("%s %s: %d error body %q", rt.method, rt.path, w.Code, w.Body)
				}
			}
		}
	})
}
