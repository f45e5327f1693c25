package httpapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

// TestVendorThingID plays thing-if's JavaScript SDK (getVendorThingID,
// updateVendorThingID: PUT /api/apps/{app}/things/{thingID}/vendor-thing-id
// with application/vnd.kii.VendorThingIDUpdateRequest+json and
// {"_vendorThingID","_password"}), then checks what the change did to
// lookups, onboarding and uniqueness, and who may call it.
func TestVendorThingID(t *testing.T) {
	o := newOwnerEnv(t)
	ctx := context.Background()
	r := o.onboardAs(o.alice, ctVendorByOwner, `{"vendorThingID":"lamp","thingPassword":"pw","owner":"USER:`+o.aliceID+`"}`)
	check(t, r, 200, "")
	var lamp onboarded
	r.decode(t, &lamp)
	other := o.onboard("other", "pw")
	kiiPath := "/api/apps/" + testApp + "/things/" + lamp.ThingID + "/vendor-thing-id"
	tifPath := o.prefix + "/things/" + lamp.ThingID + "/vendor-thing-id"
	sdk := with(bearer(o.alice), "X-Kii-AppID", testApp, "X-Kii-AppKey", "k",
		"Content-Type", "application/vnd.kii.VendorThingIDUpdateRequest+json")

	// What the SDK reads and writes.
	r = o.do("GET", kiiPath, "", bearer(o.alice)...)
	check(t, r, 200, "")
	if got, want := string(r.body), `{"_vendorThingID":"lamp"}`; got != want {
		t.Fatalf("GET vendor-thing-id %s, want %s", got, want)
	}
	check(t, o.do("PUT", kiiPath, `{"_vendorThingID":"myID","_password":"pass"}`, sdk...), 204, "")
	r = o.do("GET", tifPath, "", bearer(lamp.AccessToken)...)
	check(t, r, 200, "")
	if got, want := string(r.body), `{"_vendorThingID":"myID"}`; got != want {
		t.Fatalf("GET vendor-thing-id after PUT %s, want %s", got, want)
	}

	// Lookups follow the change; the old vendorThingID is free.
	th, err := o.st.ThingByVendorID(ctx, testApp, "myID")
	if err != nil || th.ID != lamp.ThingID {
		t.Fatalf("ThingByVendorID(myID) = %s, %v; want %s", th.ID, err, lamp.ThingID)
	}
	if _, err := o.st.ThingByVendorID(ctx, testApp, "lamp"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ThingByVendorID(lamp) err=%v, want ErrNotFound", err)
	}
	check(t, o.do("GET", o.prefix+"/things/VENDOR_THING_ID:myID", "", bearer(o.alice)...), 200, "")
	// The new password is the thing's, hashed; the old one is wrong.
	if strings.Contains(th.PasswordHash, "pass") || !strings.HasPrefix(th.PasswordHash, "$argon2id$") {
		t.Fatalf("stored password %q is not an argon2id hash", th.PasswordHash)
	}
	r = o.onboardRaw(o.admin, "myID", "pass", "")
	check(t, r, 200, "")
	var again onboarded
	r.decode(t, &again)
	if again.ThingID != lamp.ThingID {
		t.Fatalf("onboarding with the new vendorThingID gave %s, want %s", again.ThingID, lamp.ThingID)
	}
	check(t, o.onboardRaw(o.admin, "myID", "pw", ""), 403, "WRONG_PASSWORD")
	freed := o.onboard("lamp", "pw2")
	if freed.ThingID == lamp.ThingID {
		t.Fatalf("the old vendorThingID still names %s", lamp.ThingID)
	}

	long := strings.Repeat("v", maxIDLen)
	tests := []struct {
		name, path, token, contentType, body string
		status                               int
		code                                 string
		want                                 string // the lamp's vendorThingID afterwards
	}{
		{"another thing's vendorThingID", kiiPath, o.alice, "application/json", `{"_vendorThingID":"other","_password":"p"}`, 409, "THING_ALREADY_EXISTS", "myID"},
		{"one byte too long", kiiPath, o.alice, "application/json", `{"_vendorThingID":"` + long + `v"}`, 400, "INVALID_INPUT_DATA", "myID"},
		{"no vendorThingID", kiiPath, o.alice, "application/json", `{"_password":"p"}`, 400, "INVALID_INPUT_DATA", "myID"},
		{"empty vendorThingID", kiiPath, o.alice, "application/json", `{"_vendorThingID":""}`, 400, "INVALID_INPUT_DATA", "myID"},
		{"number vendorThingID", kiiPath, o.alice, "application/json", `{"_vendorThingID":5}`, 400, "INVALID_INPUT_DATA", "myID"},
		{"empty password", kiiPath, o.alice, "application/json", `{"_vendorThingID":"x","_password":""}`, 400, "INVALID_INPUT_DATA", "myID"},
		{"not an object", kiiPath, o.alice, "application/json", `["x"]`, 400, "INVALID_INPUT_DATA", "myID"},
		{"wrong content type", kiiPath, o.alice, "text/plain", `{"_vendorThingID":"x"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "myID"},
		{"another thing", kiiPath, other.AccessToken, "application/json", `{"_vendorThingID":"x"}`, 403, "WRONG_TOKEN", "myID"},
		{"not the owner", kiiPath, o.bob, "application/json", `{"_vendorThingID":"x"}`, 403, "WRONG_TOKEN", "myID"},
		{"anonymous", kiiPath, o.appToken(testApp, "dummy"), "application/json", `{"_vendorThingID":"x"}`, 403, "WRONG_TOKEN", "myID"},
		{"no token", kiiPath, "", "application/json", `{"_vendorThingID":"x"}`, 401, "UNAUTHORIZED", "myID"},
		{"admin, unknown thing", "/api/apps/" + testApp + "/things/th.nope/vendor-thing-id", o.admin, "application/json", `{"_vendorThingID":"x"}`, 404, "THING_NOT_FOUND", "myID"},
		{"at the limit, by the thing itself", tifPath, lamp.AccessToken, "", `{"_vendorThingID":"` + long + `"}`, 204, "", long},
		{"same again, by the admin", tifPath, o.admin, "application/json", `{"_vendorThingID":"` + long + `"}`, 204, "", long},
		{"without a password", kiiPath, o.alice, "application/vnd.kii.VendorThingIDUpdateRequest+json; charset=utf-8", `{"_vendorThingID":"lamp-2"}`, 204, "", "lamp-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.token != "" {
				h = bearer(tt.token)
			}
			if tt.contentType != "" {
				h = with(h, "Content-Type", tt.contentType)
			}
			check(t, o.do("PUT", tt.path, tt.body, h...), tt.status, tt.code)
			th, err := o.st.Thing(ctx, testApp, lamp.ThingID)
			if err != nil {
				t.Fatal(err)
			}
			if got := th.VendorThingID; got != tt.want {
				t.Fatalf("vendorThingID %q, want %q", got, tt.want)
			}
		})
	}
	// A change without _password kept the password.
	check(t, o.onboardRaw(o.admin, "lamp-2", "pass", ""), 200, "")
	// GET refuses whom PUT refuses.
	check(t, o.do("GET", kiiPath, "", bearer(o.bob)...), 403, "WRONG_TOKEN")
	check(t, o.do("GET", kiiPath, "", bearer(other.AccessToken)...), 403, "WRONG_TOKEN")

	// Over MQTT, on the thing's own connection.
	caller := Caller{Broker: APIBroker, AppID: testApp, ThingID: lamp.ThingID}
	topic := "p/" + lamp.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp + "/things/" + lamp.ThingID + "/vendor-thing-id"
	checkMQTT(t, o.mqtt(caller, topic, "PUT\nContent-Type: application/vnd.kii.VendorThingIDUpdateRequest+json\n\n"+`{"_vendorThingID":"lamp-3","_password":"pw3"}`), 204, "")
	a := o.mqtt(caller, topic, "GET\n\n")
	checkMQTT(t, a, 200, "")
	if got, want := string(a.Body), `{"_vendorThingID":"lamp-3"}`; got != want {
		t.Fatalf("GET over MQTT %s, want %s", got, want)
	}
	check(t, o.onboardRaw(o.admin, "lamp-3", "pw3", ""), 200, "")
}
