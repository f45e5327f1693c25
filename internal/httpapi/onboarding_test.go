package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/store"
)

func TestOnboardingRegistersThenReturnsSameThing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.onboard("v-1", "pw")
	if !strings.HasPrefix(first.ThingID, "th.") {
		t.Fatalf("thingID %q", first.ThingID)
	}
	ep := first.MQTTEndpoint
	want := endpointJSON{InstallationID: ep.InstallationID, Username: ep.Username, Password: ep.Password, MQTTTopic: ep.MQTTTopic,
		Host: "api.example", PortTCP: 1883, PortSSL: 8883, PortWS: 12470, PortWSS: 12473, TTL: 2147483647}
	if diff := cmp.Diff(want, ep); diff != "" {
		t.Fatalf("endpoint (-want +got):\n%s", diff)
	}
	if ep.InstallationID == "" || ep.Username == "" || ep.Password == "" || ep.MQTTTopic == "" || len(ep.MQTTTopic) > 23 {
		t.Fatalf("endpoint credentials %+v", ep)
	}
	in, err := e.st.Installation(ctx, testApp, ep.InstallationID)
	if err != nil {
		t.Fatal(err)
	}
	if in.PasswordHash != secret.HashToken(ep.Password) || in.Username != ep.Username || in.MQTTTopic != ep.MQTTTopic || in.ThingID != first.ThingID {
		t.Fatalf("stored installation %+v does not match the answer", in)
	}

	second := e.onboard("v-1", "pw")
	if second.ThingID != first.ThingID {
		t.Fatalf("second onboarding thingID %s, want %s", second.ThingID, first.ThingID)
	}
	if second.AccessToken == first.AccessToken || second.MQTTEndpoint.MQTTTopic == first.MQTTEndpoint.MQTTTopic ||
		second.MQTTEndpoint.Password == first.MQTTEndpoint.Password {
		t.Fatal("second onboarding reused the first's token or endpoint")
	}
	fw := "/thing-if/apps/" + testApp + "/things/" + first.ThingID + "/firmware-version"
	for _, tok := range []string{first.AccessToken, second.AccessToken} {
		check(t, e.do("GET", fw, "", bearer(tok)...), 404, "FIRMWARE_VERSION_NOT_FOUND")
	}
}

func TestOnboardingWrongPasswordStoresNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	o := e.onboard("v-1", "pw")
	before, err := e.st.Thing(ctx, testApp, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	insBefore, err := e.st.Installations(ctx, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	r := e.onboardRaw(e.appToken(testApp, testAppKey), "v-1", "wrong", `,"firmwareVersion":"9","thingType":"evil"`)
	check(t, r, http.StatusForbidden, "WRONG_PASSWORD")
	if !strings.Contains(string(r.body), "wrong thing password") {
		t.Fatalf("message %s", r.body)
	}
	after, err := e.st.Thing(ctx, testApp, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("thing changed (-before +after):\n%s", diff)
	}
	insAfter, err := e.st.Installations(ctx, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(insBefore, insAfter); diff != "" {
		t.Fatalf("installations changed (-before +after):\n%s", diff)
	}
	// No new token: the only thing token is the first onboarding's, so
	// counting is done by the answer carrying none.
	if strings.Contains(string(r.body), "accessToken") {
		t.Fatalf("refused onboarding answered a token: %s", r.body)
	}
}

func TestOnboardingFields(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.appToken(testApp, testAppKey)
	r := e.onboardRaw(admin, "v-1", "pw", `,"thingType":"aircon","firmwareVersion":"1.0","layoutPosition":"gateway",`+
		`"thingProperties":{"a":  1},"dataGroupingInterval":"15_MINUTES","somethingElse":[1,2]`)
	check(t, r, 200, "")
	var o onboarded
	r.decode(t, &o)
	th, err := e.st.Thing(ctx, testApp, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	if th.VendorThingID != "v-1" || th.ThingType != "aircon" || th.FirmwareVersion != "1.0" || th.LayoutPosition != "GATEWAY" ||
		string(th.Properties) != `{"a":1}` || th.DataGroupingInterval != "15_MINUTES" {
		t.Fatalf("stored thing %+v", th)
	}
	if ok, _ := secret.VerifyPassword(th.PasswordHash, "pw"); !ok {
		t.Fatal("stored password hash does not verify")
	}
	// A later onboarding updates only the fields it gives.
	check(t, e.onboardRaw(admin, "v-1", "pw", `,"firmwareVersion":"2.0"`), 200, "")
	th, err = e.st.Thing(ctx, testApp, o.ThingID)
	if err != nil {
		t.Fatal(err)
	}
	if th.FirmwareVersion != "2.0" || th.ThingType != "aircon" || th.LayoutPosition != "GATEWAY" {
		t.Fatalf("updated thing %+v", th)
	}
}

func TestOnboardingErrors(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	other := e.onboard("v-2", "pw")
	admin := e.appToken(testApp, testAppKey)
	const (
		vendorCT = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"
		thingCT  = "application/vnd.kii.OnboardingWithThingIDByThing+json"
	)
	path := "/thing-if/apps/" + testApp + "/onboardings"
	tests := []struct {
		name, token, contentType, body string
		status                         int
		code                           string
	}{
		{"thing id form", admin, thingCT, fmt.Sprintf(`{"thingID":%q,"thingPassword":"pw"}`, o.ThingID), 200, ""},
		{"media type case and charset", admin, "APPLICATION/vnd.kii.onboardingwithvendorthingidbything+JSON; charset=UTF-8", `{"vendorThingID":"v-1","thingPassword":"pw"}`, 200, ""},
		{"thing re-onboards itself", o.AccessToken, vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw"}`, 200, ""},
		{"thing onboards another", o.AccessToken, vendorCT, `{"vendorThingID":"v-2","thingPassword":"pw"}`, 403, "WRONG_TOKEN"},
		{"thing registers another", o.AccessToken, vendorCT, `{"vendorThingID":"v-new","thingPassword":"pw"}`, 403, "WRONG_TOKEN"},
		{"thing onboards another by id", o.AccessToken, thingCT, fmt.Sprintf(`{"thingID":%q,"thingPassword":"pw"}`, other.ThingID), 403, "WRONG_TOKEN"},
		{"unknown thing id", admin, thingCT, `{"thingID":"th.nope","thingPassword":"pw"}`, 404, "THING_NOT_FOUND"},
		{"wrong password by id", admin, thingCT, fmt.Sprintf(`{"thingID":%q,"thingPassword":"x"}`, o.ThingID), 403, "WRONG_PASSWORD"},
		{"no token", "", vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw"}`, 401, "UNAUTHORIZED"},
		{"unknown onboarding type", admin, "application/vnd.kii.OnboardingWithSomethingElse+json", `{"vendorThingID":"v-1","thingPassword":"pw","owner":"USER:u"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"end node without fields", admin, "application/vnd.kii.OnboardingEndNodeWithGatewayThingID+json", `{}`, 400, "INVALID_INPUT_DATA"},
		{"plain json", admin, "application/json", `{"vendorThingID":"v-1","thingPassword":"pw"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"no vendor id", admin, vendorCT, `{"thingPassword":"pw"}`, 400, "INVALID_INPUT_DATA"},
		{"no password", admin, vendorCT, `{"vendorThingID":"v-1"}`, 400, "INVALID_INPUT_DATA"},
		{"vendor id number", admin, vendorCT, `{"vendorThingID":1,"thingPassword":"pw"}`, 400, "INVALID_INPUT_DATA"},
		{"properties not object", admin, vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw","thingProperties":[]}`, 400, "INVALID_INPUT_DATA"},
		{"bad layout", admin, vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw","layoutPosition":"TOP"}`, 400, "INVALID_INPUT_DATA"},
		{"bad interval", admin, vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw","dataGroupingInterval":"2_DAYS"}`, 400, "INVALID_INPUT_DATA"},
		{"not json", admin, vendorCT, `{"vendorThingID":`, 400, "INVALID_INPUT_DATA"},
		{"trailing garbage", admin, vendorCT, `{"vendorThingID":"v-1","thingPassword":"pw"}x`, 400, "INVALID_INPUT_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Content-Type", tt.contentType}
			if tt.token != "" {
				h = with(h, bearer(tt.token)...)
			}
			r := e.do("POST", path, tt.body, h...)
			check(t, r, tt.status, tt.code)
			if tt.status == 200 {
				var got onboarded
				r.decode(t, &got)
				if got.ThingID != o.ThingID {
					t.Fatalf("thingID %s, want %s", got.ThingID, o.ThingID)
				}
			}
		})
	}
}

func TestOnboardingAnswerIsCompact(t *testing.T) {
	e := newEnv(t)
	r := e.onboardRaw(e.appToken(testApp, "dummy"), "v-1", "pw", "")
	check(t, r, 200, "")
	var fields map[string]json.RawMessage
	r.decode(t, &fields)
	if len(fields) != 3 {
		t.Fatalf("answer has fields beyond accessToken, thingID, mqttEndpoint: %s", r.body)
	}
}

func TestOnboardingKeepsFiveInstallations(t *testing.T) {
	e := newEnv(t)
	var last []onboarded
	for range 8 {
		last = append(last, e.onboard("v-1", "pw"))
	}
	ins, err := e.st.Installations(context.Background(), last[0].ThingID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.ID)
	}
	var want []string
	for i := len(last) - 1; i >= len(last)-maxInstallations; i-- {
		want = append(want, last[i].MQTTEndpoint.InstallationID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("installations kept (-want +got):\n%s", diff)
	}
}

func TestOnboardingConcurrentFirst(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	const n = 50
	ids := make([]string, n)
	tokens := make([]string, n)
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.onboardRaw(admin, "v-race", "pw", "")
			if r.status != 200 {
				errs[i] = fmt.Sprintf("%d %s", r.status, r.body)
				return
			}
			var o onboarded
			if err := json.Unmarshal(r.body, &o); err != nil {
				errs[i] = err.Error()
				return
			}
			ids[i], tokens[i] = o.ThingID, o.AccessToken
		})
	}
	wg.Wait()
	kept := 0
	for i := range n {
		if errs[i] != "" {
			t.Fatalf("onboarding %d: %s", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("onboarding %d got thing %s, onboarding 0 got %s", i, ids[i], ids[0])
		}
		tok, err := e.st.Token(context.Background(), secret.HashToken(tokens[i]))
		if errors.Is(err, store.ErrNotFound) {
			continue // pruned: the thing keeps its newest tokens only
		}
		if err != nil || tok.Subject != ids[0] || tok.Kind != store.TokenThing {
			t.Fatalf("token %d: %+v, %v", i, tok, err)
		}
		kept++
	}
	// Every onboarding prunes after its own save, so the last prune ran
	// after every save.
	if got, want := kept, maxThingTokens; got != want {
		t.Fatalf("%d of the %d tokens kept, want %d", got, n, want)
	}
	th, err := e.st.ThingByVendorID(context.Background(), testApp, "v-race")
	if err != nil || th.ID != ids[0] {
		t.Fatalf("stored thing %+v, %v", th, err)
	}
}
