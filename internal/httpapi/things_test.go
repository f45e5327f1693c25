package httpapi

import (
	"context"
	"testing"
)

func TestThingFields(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	other := e.onboard("v-2", "pw")
	admin := e.appToken(testApp, testAppKey)
	anon := e.appToken(testApp, "dummy")
	for _, f := range []struct {
		path, field, contentType, notFound string
	}{
		{"firmware-version", "firmwareVersion", "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json", "FIRMWARE_VERSION_NOT_FOUND"},
		{"thing-type", "thingType", "application/vnd.kii.ThingTypeUpdateRequest+json", "THING_TYPE_NOT_FOUND"},
	} {
		t.Run(f.path, func(t *testing.T) {
			url := func(thingID string) string { return "/thing-if/apps/" + testApp + "/things/" + thingID + "/" + f.path }
			body := `{"` + f.field + `":"1.2.3"}`
			steps := []struct {
				name, method, path, token, contentType, body string
				status                                       int
				code                                         string
			}{
				{"unset", "GET", url(o.ThingID), o.AccessToken, "", "", 404, f.notFound},
				{"put", "PUT", url(o.ThingID), o.AccessToken, f.contentType, body, 204, ""},
				{"get", "GET", url(o.ThingID), o.AccessToken, "", "", 200, ""},
				{"put json", "PUT", url(o.ThingID), admin, "application/json", `{"` + f.field + `":"1.2.4"}`, 204, ""},
				{"empty", "PUT", url(o.ThingID), o.AccessToken, f.contentType, `{"` + f.field + `":""}`, 400, "INVALID_INPUT_DATA"},
				{"number", "PUT", url(o.ThingID), o.AccessToken, f.contentType, `{"` + f.field + `":1}`, 400, "INVALID_INPUT_DATA"},
				{"missing", "PUT", url(o.ThingID), o.AccessToken, f.contentType, `{}`, 400, "INVALID_INPUT_DATA"},
				{"wrong type", "PUT", url(o.ThingID), o.AccessToken, "text/plain", body, 415, "UNSUPPORTED_MEDIA_TYPE"},
				{"another thing", "PUT", url(other.ThingID), o.AccessToken, f.contentType, body, 403, "WRONG_TOKEN"},
				{"another thing reads", "GET", url(other.ThingID), o.AccessToken, "", "", 403, "WRONG_TOKEN"},
				{"unknown thing", "GET", url("th.nope"), admin, "", "", 404, "THING_NOT_FOUND"},
				{"anonymous", "GET", url(o.ThingID), anon, "", "", 403, "WRONG_TOKEN"},
			}
			for _, s := range steps {
				h := bearer(s.token)
				if s.contentType != "" {
					h = with(h, "Content-Type", s.contentType)
				}
				r := e.do(s.method, s.path, s.body, h...)
				t.Run(s.name, func(t *testing.T) { check(t, r, s.status, s.code) })
				if s.name == "get" && string(r.body) != body {
					t.Fatalf("GET answered %s, want %s", r.body, body)
				}
			}
			th, err := e.st.Thing(context.Background(), testApp, o.ThingID)
			if err != nil {
				t.Fatal(err)
			}
			got := th.FirmwareVersion
			if f.field == "thingType" {
				got = th.ThingType
			}
			if got != "1.2.4" {
				t.Fatalf("stored %s %q, want 1.2.4", f.field, got)
			}
			oth, err := e.st.Thing(context.Background(), testApp, other.ThingID)
			if err != nil {
				t.Fatal(err)
			}
			if oth.FirmwareVersion != "" || oth.ThingType != "" {
				t.Fatalf("refused PUT changed the other thing: %+v", oth)
			}
		})
	}
}
