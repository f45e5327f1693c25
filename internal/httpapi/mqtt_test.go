package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/store"
)

// mqttAnswer is a response that took the MQTT road.
type mqttAnswer struct {
	*codec.Response
	raw []byte
}

// mqtt serves payload, published on topic by caller, as the broker does:
// decode with codec, serve with the Handler, encode.
func (e *env) mqtt(c Caller, topic, payload string) mqttAnswer {
	e.t.Helper()
	return e.mqttFrom("", c, topic, payload)
}

// mqttFrom is mqtt for a connection from remote ("ip:port"), as the
// brokers set it.
func (e *env) mqttFrom(remote string, c Caller, topic, payload string) mqttAnswer {
	e.t.Helper()
	tp, err := codec.ParseTopic(topic)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := codec.NewHTTPRequest(WithCaller(context.Background(), c), tp, []byte(payload), codec.Limits{})
	if err != nil {
		e.t.Fatal(err)
	}
	if remote != "" {
		r.RemoteAddr = remote
	}
	w := codec.NewResponseWriter()
	e.h.ServeHTTP(w, r)
	raw := w.Bytes()
	resp, err := codec.ParseResponse(raw)
	if err != nil {
		e.t.Fatalf("parse answer %q: %v", raw, err)
	}
	return mqttAnswer{resp, raw}
}

func (a mqttAnswer) errorCode() string {
	var b struct{ ErrorCode string }
	_ = json.Unmarshal(a.Body, &b)
	return b.ErrorCode
}

func checkMQTT(t *testing.T, a mqttAnswer, status int, code string) {
	t.Helper()
	if a.StatusCode != status || a.errorCode() != code {
		t.Fatalf("answer %d %q, want %d %q:\n%s", a.StatusCode, a.errorCode(), status, code, a.raw)
	}
}

func TestMQTTRoad(t *testing.T) {
	e := newEnv(t)
	onboardingCaller := Caller{Broker: OnboardingBroker, AppID: testApp}

	// The MQTT onboarding sample: LF only, no space after the colon, two
	// spaces in the JSON, a request ID, and an Authorization header the
	// onboarding broker ignores.
	a := e.mqtt(onboardingCaller, "p/anonymous/thing-if/apps/"+testApp+"/onboardings",
		"POST\nContent-type:application/vnd.kii.OnboardingWithVendorThingIDByThing+json\nX-Kii-RequestID:r-1\nAuthorization: Bearer junk\n\n"+
			`{"vendorThingID":"v-1",  "thingPassword":"pw"}`)
	checkMQTT(t, a, 200, "")
	if !bytes.HasPrefix(a.raw, []byte("200\r\n")) || !bytes.Contains(a.raw, []byte("\r\nX-Kii-RequestID: r-1\r\n")) {
		t.Fatalf("answer framing:\n%s", a.raw)
	}
	var o onboarded
	if err := json.Unmarshal(a.Body, &o); err != nil {
		t.Fatal(err)
	}
	if o.MQTTEndpoint.Host != testBroker.Host || o.MQTTEndpoint.PortTCP != testBroker.PortTCP || len(o.MQTTEndpoint.MQTTTopic) > 23 {
		t.Fatalf("endpoint %+v", o.MQTTEndpoint)
	}
	other := e.onboard("v-2", "pw")

	thing := Caller{Broker: APIBroker, AppID: testApp, ThingID: o.ThingID}
	prefix := "p/" + o.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp
	target := prefix + "/targets/thing:" + o.ThingID
	admin := e.appToken(testApp, testAppKey)
	cmd := e.do("POST", "/thing-if/apps/"+testApp+"/targets/thing:"+o.ThingID+"/commands", `{"actions":[{"A":[{"on":true}]}]}`,
		with(bearer(admin), "Content-Type", "application/json")...)
	check(t, cmd, 201, "")
	var created struct{ CommandID string }
	cmd.decode(t, &created)

	tests := []struct {
		name    string
		caller  Caller
		topic   string
		payload string
		status  int
		code    string
	}{
		{"onboarding broker wrong password", onboardingCaller, "p/anonymous/thing-if/apps/" + testApp + "/onboardings",
			"POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n{\"vendorThingID\":\"v-1\",\"thingPassword\":\"x\"}", 403, "WRONG_PASSWORD"},
		{"onboarding broker other app", onboardingCaller, "p/anonymous/thing-if/apps/" + closedApp + "/onboardings",
			"POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n{\"vendorThingID\":\"v-1\",\"thingPassword\":\"pw\"}", 403, "WRONG_TOKEN"},
		{"onboarding broker states", onboardingCaller, "p/anonymous/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/states",
			"PUT\nContent-Type: application/json\n\n{\"x\":1}", 403, "WRONG_TOKEN"},
		{"states v2", thing, target + "/states",
			"PUT\r\nContent-Type: application/vnd.kii.MultipleTraitState+json\r\n\r\n{\"A\":{\"on\":true}}", 204, ""},
		{"states upper-case kind", thing, prefix + "/targets/THING:" + o.ThingID + "/states",
			"PATCH\nContent-Type: application/vnd.kii.MultipleTraitStatePatch+json\n\n{\"A\":{\"temp\":3}}", 204, ""},
		{"states own token", thing, target + "/states",
			"PUT\nAuthorization: Bearer " + o.AccessToken + "\nContent-Type: application/json\n\n{\"x\":1}", 204, ""},
		{"states read", thing, target + "/states", "GET\n\n", 200, ""},
		{"commands read", thing, target + "/commands", "GET\n\n", 200, ""},
		{"action results", thing, target + "/commands/" + created.CommandID + "/action-results",
			"PUT\nContent-Type: application/vnd.kii.CommandResultsUpdateRequest+json\n\n{\"actionResults\":[{\"A\":[{\"on\":{\"succeeded\":true}}]}]}", 204, ""},
		{"another thing's states", thing, prefix + "/targets/thing:" + other.ThingID + "/states",
			"PUT\nContent-Type: application/json\n\n{\"x\":1}", 403, "WRONG_TOKEN"},
		{"another thing's token", thing, target + "/states",
			"PUT\nAuthorization: Bearer " + other.AccessToken + "\nContent-Type: application/json\n\n{\"x\":1}", 403, "WRONG_TOKEN"},
		{"admin token on api broker", thing, target + "/states",
			"PUT\nAuthorization: Bearer " + admin + "\nContent-Type: application/json\n\n{\"x\":1}", 403, "WRONG_TOKEN"},
		{"another app", thing, "p/" + o.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + closedApp + "/targets/thing:" + o.ThingID + "/states",
			"PUT\nContent-Type: application/json\n\n{\"x\":1}", 403, "WRONG_TOKEN"},
		{"unknown path", thing, prefix + "/nothing", "GET\n\n", 404, "NOT_FOUND"},
		{"firmware", thing, prefix + "/things/" + o.ThingID + "/firmware-version", "GET\n\n", 404, "FIRMWARE_VERSION_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMQTT(t, e.mqtt(tt.caller, tt.topic, tt.payload), tt.status, tt.code)
		})
	}

	// What the API broker road wrote is what REST reads.
	r := e.do("GET", "/thing-if/apps/"+testApp+"/targets/thing:"+o.ThingID+"/states", "", bearer(o.AccessToken)...)
	check(t, r, 200, "")
	if got, want := string(r.body), `{"x":1}`; got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
	c, err := e.st.Command(context.Background(), o.ThingID, created.CommandID)
	if err != nil || c.State != store.CommandDone {
		t.Fatalf("command %+v, %v", c, err)
	}
	otherStates, err := e.st.States(context.Background(), other.ThingID)
	if err != nil || len(otherStates) != 0 {
		t.Fatalf("another thing's states written: %v, %v", otherStates, err)
	}
}
