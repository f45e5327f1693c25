package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// bodylessRoutes are the PUT, POST and PATCH routes that take no body. Every
// other such route of the route table must answer an empty body with 400
// EMPTY_BODY (TestEmptyBody): a new route is either checked there or named
// here.
var bodylessRoutes = map[string]bool{
	http.MethodPut + " " + trigPrefix + "/enable":  true,
	http.MethodPut + " " + trigPrefix + "/disable": true,
}

// doChunkedEmpty sends a request whose body is chunked and empty
// ("0\r\n\r\n" right after the headers), as an embedded stack sends it.
func (e *env) doChunkedEmpty(method, path string, headers ...string) resp {
	e.t.Helper()
	req := requestHead(method, path, headers)
	req.WriteString("Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	return e.roundTrip("", req.Bytes())
}

// TestEmptyBody sends every body-taking route of the route table an empty
// body, as Content-Length: 0 and as a chunked "0\r\n\r\n", with a token
// that passes its access checks: each answers 400 EMPTY_BODY, as Kii does.
func TestEmptyBody(t *testing.T) {
	o := newOwnerEnv(t)
	r := o.onboardRaw(o.admin, "gw", "pw", `,"layoutPosition":"GATEWAY"`)
	check(t, r, 200, "")
	var gw onboarded
	r.decode(t, &gw)

	// An end node of the gateway, a command and a trigger of it.
	a := o.mqtt(Caller{Broker: APIBroker, AppID: testApp, ThingID: gw.ThingID}, "p/"+gw.MQTTEndpoint.MQTTTopic+"/thing-if/apps/"+testApp+"/onboardings",
		"POST\nContent-Type: "+ctEndNode+"\n\n"+`{"gatewayThingID":"`+gw.ThingID+`","endNodeVendorThingID":"en-1","endNodePassword":"pw"}`)
	checkMQTT(t, a, 200, "")
	var en struct{ EndNodeThingID string }
	if err := json.Unmarshal(a.Body, &en); err != nil {
		t.Fatal(err)
	}
	target := o.prefix + "/targets/thing:" + gw.ThingID
	admin := with(bearer(o.admin), "Content-Type", "application/json")
	r = o.do("POST", target+"/commands", `{"issuer":"user:`+o.aliceID+`","actions":[{"AC":[{"on":true}]}]}`, admin...)
	check(t, r, 201, "")
	var cmd struct{ CommandID string }
	r.decode(t, &cmd)
	r = o.do("POST", target+"/triggers", `{"predicate":{"eventSource":"STATES","condition":{"type":"eq","field":"on","value":true},"triggersWhen":"CONDITION_CHANGED"},"triggersWhat":"COMMAND","command":{"issuer":"user:`+o.aliceID+`","actions":[{"AC":[{"on":false}]}]}}`, admin...)
	check(t, r, 201, "")
	var trg struct{ TriggerID string }
	r.decode(t, &trg)

	fill := strings.NewReplacer("{app}", testApp, "{target}", "thing:"+gw.ThingID, "{thing}", gw.ThingID,
		"{iid}", gw.MQTTEndpoint.InstallationID, "{user}", o.aliceID, "{group}", o.group, "{alias}", "AC",
		"{cid}", cmd.CommandID, "{tid}", trg.TriggerID, "{endnode}", en.EndNodeThingID)
	contentType := map[string]string{
		thingIFPrefix + "/onboardings": "application/vnd.kii.OnboardingWithVendorThingIDByThing+json",
	}
	tested := 0
	for _, rt := range o.h.routeTable() {
		for m := range rt.methods {
			if m != http.MethodPost && m != http.MethodPut && m != http.MethodPatch {
				continue
			}
			if bodylessRoutes[m+" "+rt.pattern] {
				continue
			}
			tested++
			ct := contentType[rt.pattern]
			if ct == "" {
				ct = contentTypeJSON
			}
			path := fill.Replace(rt.pattern)
			headers := with(bearer(o.admin), "Content-Type", ct)
			t.Run(m+" "+rt.pattern, func(t *testing.T) {
				t.Run("Content-Length 0", func(t *testing.T) {
					check(t, o.do(m, path, "", headers...), 400, "EMPTY_BODY")
				})
				t.Run("chunked", func(t *testing.T) {
					check(t, o.doChunkedEmpty(m, path, headers...), 400, "EMPTY_BODY")
				})
			})
		}
	}
	if tested < 18 { // the body-taking routes when this test was written
		t.Fatalf("only %d body-taking routes found in the route table", tested)
	}

	// Over MQTT: nothing after the blank line, with LF or CRLF.
	caller := Caller{Broker: APIBroker, AppID: testApp, ThingID: gw.ThingID}
	topic := "p/" + gw.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp
	for _, tt := range []struct{ name, path, payload string }{
		{"states PUT", "/targets/thing:" + gw.ThingID + "/states", "PUT\nContent-Type: application/vnd.kii.MultipleTraitState+json\n\n"},
		{"states PATCH", "/targets/thing:" + gw.ThingID + "/states", "PATCH\r\nContent-Type: application/vnd.kii.MultipleTraitStatePatch+json\r\n\r\n"},
		{"states-bulk", "/targets/thing:" + gw.ThingID + "/states-bulk", "POST\nContent-Type: application/vnd.kii.StateBulkUploadRequest+json\n\n"},
		{"action results", "/targets/thing:" + gw.ThingID + "/commands/" + cmd.CommandID + "/action-results", "PUT\nContent-Type: application/json\n\n"},
		{"firmware version", "/things/" + gw.ThingID + "/firmware-version", "PUT\n\n"},
		{"onboarding", "/onboardings", "POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n"},
	} {
		t.Run("MQTT "+tt.name, func(t *testing.T) {
			checkMQTT(t, o.mqtt(caller, topic+tt.path, tt.payload), 400, "EMPTY_BODY")
		})
	}
}
