package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

func TestToken(t *testing.T) {
	e := newEnv(t)
	const jsonCT = "application/json"
	tests := []struct {
		name, app, body, contentType string
		status                       int
		code                         string
		kind                         store.TokenKind
	}{
		{"app key", testApp, `{"grant_type":"client_credentials","client_id":"app1","client_secret":"key-1"}`, jsonCT, 200, "", store.TokenApp},
		{"app key as form", testApp, `grant_type=client_credentials&client_id=app1&client_secret=key-1`, "application/x-www-form-urlencoded", 200, "", store.TokenApp},
		{"json with charset", testApp, `{"grant_type":"client_credentials","client_id":"app1","client_secret":"key-1"}`, "Application/JSON; charset=utf-8", 200, "", store.TokenApp},
		{"dummy secret gets anonymous", testApp, `{"grant_type":"client_credentials","client_id":"app1","client_secret":"dummy"}`, jsonCT, 200, "", store.TokenAnonymous},
		{"dummy secret on closed app", closedApp, `{"grant_type":"client_credentials","client_id":"app2","client_secret":"dummy"}`, jsonCT, 401, "invalid_client", ""},
		{"closed app key", closedApp, `{"grant_type":"client_credentials","client_id":"app2","client_secret":"key-2"}`, jsonCT, 200, "", store.TokenApp},
		{"wrong client id", testApp, `{"grant_type":"client_credentials","client_id":"app2","client_secret":"key-1"}`, jsonCT, 401, "invalid_client", ""},
		{"unknown app", "nope", `{"grant_type":"client_credentials","client_id":"nope","client_secret":"x"}`, jsonCT, 404, "APP_NOT_FOUND", ""},
		{"password grant, unknown user", testApp, `{"grant_type":"password","username":"u","password":"p"}`, jsonCT, 400, "invalid_grant", ""},
		{"no grant, unknown user", testApp, `{"username":"u","password":"p"}`, jsonCT, 400, "invalid_grant", ""},
		{"other grant", testApp, `{"grant_type":"authorization_code"}`, jsonCT, 400, "unsupported_grant_type", ""},
		{"not json", testApp, `{grant_type`, jsonCT, 400, "INVALID_INPUT_DATA", ""},
		{"wrong type", testApp, `{"grant_type":1}`, jsonCT, 400, "INVALID_INPUT_DATA", ""},
		{"array", testApp, `[]`, jsonCT, 400, "INVALID_INPUT_DATA", ""},
		{"xml", testApp, `<x/>`, "text/xml", 415, "UNSUPPORTED_MEDIA_TYPE", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/apps/"+tt.app+"/oauth2/token", tt.body, "Content-Type", tt.contentType)
			check(t, r, tt.status, tt.code)
			if tt.status != http.StatusOK {
				return
			}
			var tr tokenResponse
			r.decode(t, &tr)
			if tr.AccessToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn != int64(DefaultAppTokenTTL.Seconds()) || tr.ID != "" {
				t.Fatalf("answer %s", r.body)
			}
			tok, err := e.st.Token(context.Background(), secret.HashToken(tr.AccessToken))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kind != tt.kind || tok.AppID != tt.app || tok.ExpiresAt.IsZero() {
				t.Fatalf("stored token %+v, want kind %s of %s with expiry", tok, tt.kind, tt.app)
			}
		})
	}
}

// TestTokenPowers checks what each token may do: app admin anything in its
// app, anonymous only onboarding by thing, nothing with an expired token.
func TestTokenPowers(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	admin := e.appToken(testApp, testAppKey)
	anon := e.appToken(testApp, "dummy")
	otherAdmin := e.appToken(closedApp, closedAppKey)
	fw := "/thing-if/apps/" + testApp + "/things/" + o.ThingID + "/firmware-version"

	check(t, e.do("GET", fw, "", bearer(admin)...), 404, "FIRMWARE_VERSION_NOT_FOUND")
	check(t, e.do("GET", fw, "", bearer(anon)...), 403, "WRONG_TOKEN")
	check(t, e.do("GET", fw, "", bearer(otherAdmin)...), 403, "WRONG_TOKEN")
	check(t, e.do("GET", fw, "", bearer("no-such-token")...), 403, "WRONG_TOKEN")
	check(t, e.do("GET", fw, "", "Authorization", "Basic abc"), 401, "UNAUTHORIZED")
	check(t, e.do("GET", fw, ""), 401, "UNAUTHORIZED")
	check(t, e.onboardRaw(anon, "v-2", "pw", ""), 200, "")

	e.advance(DefaultAppTokenTTL)
	check(t, e.do("GET", fw, "", bearer(admin)...), 403, "WRONG_TOKEN")
	check(t, e.onboardRaw(anon, "v-3", "pw", ""), 403, "WRONG_TOKEN")
	// Thing tokens never expire by default.
	check(t, e.do("GET", fw, "", bearer(o.AccessToken)...), 404, "FIRMWARE_VERSION_NOT_FOUND")
}

func TestThingTokenTTL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ThingTokenTTL = time.Hour })
	o := e.onboard("v-1", "pw")
	fw := "/thing-if/apps/" + testApp + "/things/" + o.ThingID + "/firmware-version"
	check(t, e.do("GET", fw, "", bearer(o.AccessToken)...), 404, "FIRMWARE_VERSION_NOT_FOUND")
	e.advance(time.Hour)
	check(t, e.do("GET", fw, "", bearer(o.AccessToken)...), 403, "WRONG_TOKEN")
}
