package httpapi

import (
	"fmt"
	"strings"
	"testing"
)

// TestFieldSizes sends every stored field of every route that stores one
// at its bound (accepted) and one byte over it (400 INVALID_INPUT_DATA
// naming the field and the bound).
func TestFieldSizes(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	aliceID, _ := e.user(admin, "alice")
	gw := e.onboardRaw(admin, "gw", "pw", `,"layoutPosition":"GATEWAY"`)
	check(t, gw, 200, "")
	var gateway onboarded
	gw.decode(t, &gateway)
	thing := e.onboard("thing", "pw")

	const (
		ctByThing   = "application/vnd.kii.OnboardingWithVendorThingIDByThing+json"
		ctByThingID = "application/vnd.kii.OnboardingWithThingIDByThing+json"
	)
	// props is a JSON object of exactly n bytes.
	props := func(n int) string { return `{"k":"` + strings.Repeat("x", n-len(`{"k":""}`)) + `"}` }
	prefix := "/thing-if/apps/" + testApp
	owner := "USER:" + aliceID
	seq := 0
	// uniq makes a vendorThingID of exactly n bytes that was not used yet.
	uniq := func(n int) string {
		seq++
		s := fmt.Sprintf("v%d-", seq)
		return s + strings.Repeat("v", n-len(s))
	}

	type route struct {
		name, method, path, ct string
		// body is the request body with the field under test of size n.
		body      func(n int) string
		field     string
		bound     int
		okStatus  int
		headerTok string
	}
	routes := []route{
		{"by thing vendorThingID", "POST", prefix + "/onboardings", ctByThing,
			func(n int) string { return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw"}`, uniq(n)) }, "vendorThingID", maxIDLen, 200, admin},
		{"by thing thingPassword", "POST", prefix + "/onboardings", ctByThing,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":%q}`, uniq(10), strings.Repeat("p", n))
			}, "thingPassword", maxThingPasswordLen, 200, admin},
		{"by thing thingType", "POST", prefix + "/onboardings", ctByThing,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","thingType":%q}`, uniq(10), strings.Repeat("t", n))
			}, "thingType", maxShortFieldLen, 200, admin},
		{"by thing firmwareVersion", "POST", prefix + "/onboardings", ctByThing,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","firmwareVersion":%q}`, uniq(10), strings.Repeat("f", n))
			}, "firmwareVersion", maxShortFieldLen, 200, admin},
		{"by thing thingProperties", "POST", prefix + "/onboardings", ctByThing,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","thingProperties":%s}`, uniq(10), props(n))
			}, "thingProperties", maxPropertiesBytes, 200, admin},
		{"by thing ID thingID", "POST", prefix + "/onboardings", ctByThingID,
			func(n int) string {
				if n == maxIDLen {
					return fmt.Sprintf(`{"thingID":%q,"thingPassword":"pw"}`, thing.ThingID)
				}
				return fmt.Sprintf(`{"thingID":%q,"thingPassword":"pw"}`, strings.Repeat("t", n))
			}, "thingID", maxIDLen, 200, admin},
		{"by owner vendorThingID", "POST", prefix + "/onboardings", ctVendorByOwner,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","owner":%q}`, uniq(n), owner)
			}, "vendorThingID", maxIDLen, 200, admin},
		{"by owner thingProperties", "POST", prefix + "/onboardings", ctVendorByOwner,
			func(n int) string {
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","owner":%q,"thingProperties":%s}`, uniq(10), owner, props(n))
			}, "thingProperties", maxPropertiesBytes, 200, admin},
		{"by owner owner", "POST", prefix + "/onboardings", ctVendorByOwner,
			func(n int) string {
				if n == maxIDLen {
					return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","owner":%q}`, uniq(10), owner)
				}
				return fmt.Sprintf(`{"vendorThingID":%q,"thingPassword":"pw","owner":%q}`, uniq(10), "USER:"+strings.Repeat("u", n-5))
			}, "owner", maxIDLen, 200, admin},
		{"end node endNodeVendorThingID", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":"pw"}`, gateway.ThingID, uniq(n))
			}, "endNodeVendorThingID", maxIDLen, 200, admin},
		{"end node endNodePassword", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":%q}`, gateway.ThingID, uniq(10), strings.Repeat("p", n))
			}, "endNodePassword", maxThingPasswordLen, 200, admin},
		{"end node endNodeThingType", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":"pw","endNodeThingType":%q}`, gateway.ThingID, uniq(10), strings.Repeat("t", n))
			}, "endNodeThingType", maxShortFieldLen, 200, admin},
		{"end node endNodeFirmwareVersion", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":"pw","endNodeFirmwareVersion":%q}`, gateway.ThingID, uniq(10), strings.Repeat("f", n))
			}, "endNodeFirmwareVersion", maxShortFieldLen, 200, admin},
		{"end node endNodeThingProperties", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":"pw","endNodeThingProperties":%s}`, gateway.ThingID, uniq(10), props(n))
			}, "endNodeThingProperties", maxPropertiesBytes, 200, admin},
		{"end node gatewayThingID", "POST", prefix + "/onboardings", ctEndNode,
			func(n int) string {
				gwID := gateway.ThingID
				if n > maxIDLen {
					gwID = strings.Repeat("g", n)
				}
				return fmt.Sprintf(`{"gatewayThingID":%q,"endNodeVendorThingID":%q,"endNodePassword":"pw"}`, gwID, uniq(10))
			}, "gatewayThingID", maxIDLen, 200, admin},
		{"PUT thing properties", "PUT", prefix + "/things/" + thing.ThingID + "/properties", "application/json",
			props, "thingProperties", maxPropertiesBytes, 204, admin},
		{"PUT firmware version", "PUT", prefix + "/things/" + thing.ThingID + "/firmware-version", "application/vnd.kii.ThingFirmwareVersionUpdateRequest+json",
			func(n int) string { return fmt.Sprintf(`{"firmwareVersion":%q}`, strings.Repeat("f", n)) }, "firmwareVersion", maxShortFieldLen, 204, admin},
		{"PUT thing type", "PUT", prefix + "/things/" + thing.ThingID + "/thing-type", "application/vnd.kii.ThingTypeUpdateRequest+json",
			func(n int) string { return fmt.Sprintf(`{"thingType":%q}`, strings.Repeat("t", n)) }, "thingType", maxShortFieldLen, 204, admin},
		{"POST group name", "POST", "/api/apps/" + testApp + "/groups", "application/json",
			func(n int) string { return fmt.Sprintf(`{"name":%q,"owner":%q}`, strings.Repeat("n", n), aliceID) }, "name", maxIDLen, 201, admin},
		{"POST group owner", "POST", "/api/apps/" + testApp + "/groups", "application/json",
			func(n int) string {
				if n == maxIDLen {
					return fmt.Sprintf(`{"name":"g","owner":%q}`, aliceID)
				}
				return fmt.Sprintf(`{"name":"g","owner":%q}`, strings.Repeat("o", n))
			}, "owner", maxIDLen, 201, admin},
		{"POST group members", "POST", "/api/apps/" + testApp + "/groups", "application/json",
			func(n int) string {
				if n == maxIDLen {
					return fmt.Sprintf(`{"name":"g","owner":%q,"members":[%q]}`, aliceID, aliceID)
				}
				return fmt.Sprintf(`{"name":"g","owner":%q,"members":[%q]}`, aliceID, strings.Repeat("m", n))
			}, "members[]", maxIDLen, 201, admin},
	}
	for _, rt := range routes {
		t.Run(rt.name+" at the bound", func(t *testing.T) {
			r := e.do(rt.method, rt.path, rt.body(rt.bound), with(bearer(rt.headerTok), "Content-Type", rt.ct)...)
			check(t, r, rt.okStatus, "")
		})
		t.Run(rt.name+" over the bound", func(t *testing.T) {
			r := e.do(rt.method, rt.path, rt.body(rt.bound+1), with(bearer(rt.headerTok), "Content-Type", rt.ct)...)
			check(t, r, 400, "INVALID_INPUT_DATA")
			if want := fmt.Sprintf("%s is longer than %d bytes", rt.field, rt.bound); !strings.Contains(string(r.body), want) {
				t.Fatalf("body %s does not say %q", r.body, want)
			}
		})
	}
}
