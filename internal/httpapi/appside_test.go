package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/trigger"
)

// withTriggers gives the env a trigger engine posting to webhook ("" for
// none).
func withTriggers(webhook string) func(*Config) {
	return func(c *Config) {
		eng, err := trigger.New(trigger.Config{Store: c.Store, Pusher: c.Pusher, WebhookURL: webhook, Now: c.Now})
		if err != nil {
			panic(err)
		}
		c.Triggers = eng
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/openapi.json", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.decode(t, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			documented[strings.ToUpper(m)+" "+p] = true
		}
	}
	registered := map[string]bool{}
	for _, rt := range e.h.routeTable() {
		// The route must really be in the mux under that pattern.
		req := httptest.NewRequest("GET", strings.NewReplacer("{app}", "a", "{target}", "thing:x", "{thing}", "x",
			"{iid}", "i", "{user}", "u", "{group}", "g", "{alias}", "al", "{cid}", "c", "{tid}", "t", "{endnode}", "e").Replace(rt.pattern), nil)
		if _, pat := e.h.mux.Handler(req); pat != rt.pattern {
			t.Errorf("route %s is served by mux pattern %q", rt.pattern, pat)
		}
		for m := range rt.methods {
			registered[m+" "+rt.pattern] = true
		}
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("openapi.json documents %s, which is not served", k)
		}
	}
}

// user creates a user with the admin token and logs it in.
func (e *env) user(admin, name string) (id, tok string) {
	e.t.Helper()
	r := e.do("POST", "/api/apps/"+testApp+"/users", fmt.Sprintf(`{"loginName":%q,"password":"secret-pw"}`, name),
		with(bearer(admin), "Content-Type", "application/json")...)
	if r.status != 201 {
		e.t.Fatalf("create user: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/api/apps/"+testApp+"/oauth2/token", fmt.Sprintf(`{"username":%q,"password":"secret-pw"}`, name), "Content-Type", "application/json")
	if r.status != 200 {
		e.t.Fatalf("user token: %d %s", r.status, r.body)
	}
	var tr tokenResponse
	r.decode(e.t, &tr)
	return tr.ID, tr.AccessToken
}

func TestUsersAndTokens(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	users := "/api/apps/" + testApp + "/users"
	json := with(bearer(admin), "Content-Type", "application/json")
	uid, utok := e.user(admin, "alice")
	if !strings.HasPrefix(uid, "u.") {
		t.Fatalf("user ID %q", uid)
	}

	tests := []struct {
		name, body string
		headers    []string
		status     int
		code       string
	}{
		{"taken", `{"loginName":"alice","password":"pass1"}`, json, 409, "USER_ALREADY_EXISTS"},
		{"user token", `{"loginName":"bob","password":"pass1"}`, with(bearer(utok), "Content-Type", "application/json"), 403, "WRONG_TOKEN"},
		{"no token", `{"loginName":"bob","password":"pass1"}`, []string{"Content-Type", "application/json"}, 401, "UNAUTHORIZED"},
		{"bad JSON", `{"loginName":`, json, 400, "INVALID_INPUT_DATA"},
		{"unknown field", `{"loginName":"bob","password":"pass1","admin":true}`, json, 400, "INVALID_INPUT_DATA"},
		{"no password", `{"loginName":"bob"}`, json, 400, "INVALID_INPUT_DATA"},
		{"short password", `{"loginName":"bob","password":"x"}`, json, 400, "INVALID_INPUT_DATA"},
		{"space in name", `{"loginName":"b b","password":"pass1"}`, json, 400, "INVALID_INPUT_DATA"},
		{"wrong content type", `{"loginName":"bob","password":"pass1"}`, with(bearer(admin), "Content-Type", "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"oversized", `{"loginName":"bob","password":"` + strings.Repeat("x", 2<<20) + `"}`, json, 413, "REQUEST_ENTITY_TOO_LARGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, e.do("POST", users, tt.body, tt.headers...), tt.status, tt.code)
		})
	}
	if _, err := e.st.UserByUsername(context.Background(), testApp, "bob"); err == nil {
		t.Fatal("a refused request stored user bob")
	}

	// The user reads itself; another user may not.
	check(t, e.do("GET", users+"/"+uid, "", bearer(utok)...), 200, "")
	otherID, otherTok := e.user(admin, "carol")
	check(t, e.do("GET", users+"/"+uid, "", bearer(otherTok)...), 403, "WRONG_TOKEN")
	check(t, e.do("GET", users+"/"+otherID, "", bearer(admin)...), 200, "")
	check(t, e.do("GET", users+"/u.nope", "", bearer(admin)...), 404, "USER_NOT_FOUND")

	// Wrong password and unknown user answer alike.
	token := "/api/apps/" + testApp + "/oauth2/token"
	check(t, e.do("POST", token, `{"username":"alice","password":"wrong"}`, "Content-Type", "application/json"), 400, "invalid_grant")
	check(t, e.do("POST", token, `grant_type=password&username=alice&password=secret-pw`, "Content-Type", "application/x-www-form-urlencoded"), 200, "")

	// User tokens expire.
	e.advance(DefaultUserTokenTTL)
	check(t, e.do("GET", users+"/"+uid, "", bearer(utok)...), 403, "WRONG_TOKEN")

	// Revoked tokens stop working; revoking is idempotent.
	admin = e.appToken(testApp, testAppKey)
	_, tok2 := e.user(admin, "dave")
	check(t, e.do("POST", "/api/apps/"+testApp+"/oauth2/revoke", `{"token":"`+tok2+`"}`, "Content-Type", "application/json"), 200, "")
	check(t, e.do("POST", "/api/apps/"+testApp+"/oauth2/revoke", `{"token":"`+tok2+`"}`, "Content-Type", "application/json"), 200, "")
	check(t, e.do("POST", "/api/apps/"+testApp+"/groups", `{"name":"g"}`, with(bearer(tok2), "Content-Type", "application/json")...), 403, "WRONG_TOKEN")
	check(t, e.do("POST", "/api/apps/"+testApp+"/oauth2/revoke", `{}`, "Content-Type", "application/json"), 400, "INVALID_INPUT_DATA")
	// A token of another app is not revoked through this app.
	other := e.appToken(closedApp, closedAppKey)
	check(t, e.do("POST", "/api/apps/"+testApp+"/oauth2/revoke", `{"token":"`+other+`"}`, "Content-Type", "application/json"), 200, "")
	check(t, e.do("GET", "/thing-if/apps/"+closedApp+"/things", "", bearer(other)...), 200, "")
}

// ownerEnv has an admin, two users and a group of the first.
type ownerEnv struct {
	*env
	admin            string
	alice, bob       string // tokens
	aliceID, bobID   string
	group            string
	prefix, onboards string
}

func newOwnerEnv(t *testing.T, configure ...func(*Config)) *ownerEnv {
	e := newEnv(t, configure...)
	o := &ownerEnv{env: e, admin: e.appToken(testApp, testAppKey), prefix: "/thing-if/apps/" + testApp}
	o.onboards = o.prefix + "/onboardings"
	o.aliceID, o.alice = e.user(o.admin, "alice")
	o.bobID, o.bob = e.user(o.admin, "bob")
	r := e.do("POST", "/api/apps/"+testApp+"/groups", `{"name":"home","members":["`+o.bobID+`"]}`, with(bearer(o.alice), "Content-Type", "application/json")...)
	check(t, r, 201, "")
	var g groupJSON
	r.decode(t, &g)
	if g.Owner != o.aliceID || !slices.Equal(g.Members, sortedStrings(o.aliceID, o.bobID)) {
		t.Fatalf("group %+v", g)
	}
	o.group = g.GroupID
	return o
}

func sortedStrings(s ...string) []string { sort.Strings(s); return s }

func (o *ownerEnv) onboardAs(tok, ct, body string) resp {
	o.t.Helper()
	return o.do("POST", o.onboards, body, with(bearer(tok), "Content-Type", ct)...)
}

const (
	ctVendorByOwner = "application/vnd.kii.OnboardingWithVendorThingIDByOwner+json"
	ctThingByOwner  = "application/vnd.kii.OnboardingWithThingIDByOwner+json"
	ctEndNode       = "application/vnd.kii.OnboardingEndNodeWithGatewayThingID+json"
)

func TestOnboardingByOwner(t *testing.T) {
	o := newOwnerEnv(t)
	r := o.onboardAs(o.alice, ctVendorByOwner, `{"vendorThingID":"lamp","thingPassword":"pw","owner":"USER:`+o.aliceID+`","thingType":"Lamp"}`)
	check(t, r, 200, "")
	var lamp onboarded
	r.decode(t, &lamp)
	if lamp.AccessToken == "" || lamp.MQTTEndpoint.MQTTTopic == "" {
		t.Fatalf("answer %s", r.body)
	}
	// Again by the same owner (thingID form): fine.
	check(t, o.onboardAs(o.alice, ctThingByOwner, `{"thingID":"`+lamp.ThingID+`","thingPassword":"pw","owner":"user:`+o.aliceID+`"}`), 200, "")

	tests := []struct {
		name, tok, ct, body string
		status              int
		code                string
	}{
		{"another owner", o.bob, ctVendorByOwner, `{"vendorThingID":"lamp","thingPassword":"pw","owner":"USER:` + o.bobID + `"}`, 409, "THING_OWNERSHIP_ALREADY_EXISTS"},
		{"another owner, wrong password", o.bob, ctVendorByOwner, `{"vendorThingID":"lamp","thingPassword":"x","owner":"USER:` + o.bobID + `"}`, 409, "THING_OWNERSHIP_ALREADY_EXISTS"},
		{"naming another user", o.bob, ctVendorByOwner, `{"vendorThingID":"new","thingPassword":"pw","owner":"USER:` + o.aliceID + `"}`, 403, "WRONG_TOKEN"},
		{"not a member", o.admin, ctVendorByOwner, `{"vendorThingID":"new","thingPassword":"pw","owner":"BAD"}`, 400, "INVALID_INPUT_DATA"},
		{"no owner", o.alice, ctVendorByOwner, `{"vendorThingID":"new","thingPassword":"pw"}`, 400, "INVALID_INPUT_DATA"},
		{"wrong password", o.alice, ctVendorByOwner, `{"vendorThingID":"lamp","thingPassword":"x","owner":"USER:` + o.aliceID + `"}`, 403, "WRONG_PASSWORD"},
		{"unknown thing ID", o.alice, ctThingByOwner, `{"thingID":"th.nope","thingPassword":"pw","owner":"USER:` + o.aliceID + `"}`, 404, "THING_NOT_FOUND"},
		{"thing token", lamp.AccessToken, ctVendorByOwner, `{"vendorThingID":"new","thingPassword":"pw","owner":"USER:` + o.aliceID + `"}`, 403, "WRONG_TOKEN"},
		{"bad JSON", o.alice, ctVendorByOwner, `{"vendorThingID":`, 400, "INVALID_INPUT_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, o.onboardAs(tt.tok, tt.ct, tt.body), tt.status, tt.code)
		})
	}
	if _, err := o.st.ThingByVendorID(context.Background(), testApp, "new"); err == nil {
		t.Fatal("a refused onboarding stored thing new")
	}

	// A group owns a thing: its members operate it, others may not.
	r = o.onboardAs(o.alice, ctVendorByOwner, `{"vendorThingID":"heater","thingPassword":"pw","owner":"GROUP:`+o.group+`"}`)
	check(t, r, 200, "")
	var heater onboarded
	r.decode(t, &heater)
	_, carol := o.user(o.admin, "carol")
	cmd := `{"actions":[{"H":[{"on":true}]}]}`
	jsonCT := []string{"Content-Type", "application/json"}
	check(t, o.do("POST", o.prefix+"/targets/thing:"+heater.ThingID+"/commands", cmd, with(bearer(o.bob), jsonCT...)...), 201, "")
	check(t, o.do("POST", o.prefix+"/targets/thing:"+heater.ThingID+"/commands", cmd, with(bearer(carol), jsonCT...)...), 403, "WRONG_TOKEN")
	check(t, o.do("POST", o.prefix+"/targets/thing:"+lamp.ThingID+"/commands", cmd, with(bearer(o.bob), jsonCT...)...), 403, "WRONG_TOKEN")
	check(t, o.do("POST", o.prefix+"/targets/thing:th.nope/commands", cmd, with(bearer(o.bob), jsonCT...)...), 403, "WRONG_TOKEN")
	r = o.do("GET", o.prefix+"/targets/thing:"+heater.ThingID+"/commands", "", bearer(o.alice)...)
	check(t, r, 200, "")
	var list struct{ Commands []commandJSON }
	r.decode(t, &list)
	if len(list.Commands) != 1 || list.Commands[0].Issuer != "user:"+o.bobID {
		t.Fatalf("commands %s", r.body)
	}
	// Owners read thing information; the list of all things is the admin's.
	check(t, o.do("GET", o.prefix+"/things/"+heater.ThingID, "", bearer(o.bob)...), 200, "")
	check(t, o.do("GET", o.prefix+"/things/"+heater.ThingID, "", bearer(carol)...), 403, "WRONG_TOKEN")
	check(t, o.do("GET", o.prefix+"/things", "", bearer(o.alice)...), 403, "WRONG_TOKEN")
}

func TestOnboardingByOwnerOverMQTT(t *testing.T) {
	o := newOwnerEnv(t)
	gw := o.onboard("gateway", "pw")
	check(t, o.do("PUT", o.prefix+"/things/"+gw.ThingID+"/properties", `{"room":"hall"}`, with(bearer(o.admin), "Content-Type", "application/json")...), 204, "")
	caller := Caller{Broker: APIBroker, AppID: testApp, ThingID: gw.ThingID}
	topic := "p/" + gw.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp + "/onboardings"
	for _, tt := range []struct{ ct, body string }{
		{ctVendorByOwner, `{"vendorThingID":"m-1","thingPassword":"pw","owner":"USER:` + o.aliceID + `"}`},
		{ctThingByOwner, `{"thingID":"` + gw.ThingID + `","thingPassword":"pw","owner":"USER:` + o.aliceID + `"}`},
	} {
		a := o.mqtt(caller, topic, "POST\nAuthorization: Bearer "+o.alice+"\nContent-Type: "+tt.ct+"\n\n"+tt.body)
		checkMQTT(t, a, 200, "")
	}
	owner, err := o.st.ThingOwner(context.Background(), gw.ThingID)
	if err != nil || owner != "USER:"+o.aliceID {
		t.Fatalf("owner %q, %v", owner, err)
	}
	// Without a token the connection's thing is not an owner.
	checkMQTT(t, o.mqtt(caller, topic, "POST\nContent-Type: "+ctVendorByOwner+"\n\n"+`{"vendorThingID":"m-2","thingPassword":"pw","owner":"USER:`+o.aliceID+`"}`), 403, "WRONG_TOKEN")
	// The onboarding broker serves onboarding by thing only.
	checkMQTT(t, o.mqtt(Caller{Broker: OnboardingBroker, AppID: testApp}, "p/anonymous/thing-if/apps/"+testApp+"/onboardings",
		"POST\nAuthorization: Bearer "+o.alice+"\nContent-Type: "+ctVendorByOwner+"\n\n"+`{"vendorThingID":"m-3","thingPassword":"pw","owner":"USER:`+o.aliceID+`"}`), 403, "WRONG_TOKEN")
}

func TestEndNodes(t *testing.T) {
	o := newOwnerEnv(t)
	r := o.onboardRaw(o.admin, "gw", "pw", `,"layoutPosition":"GATEWAY"`)
	check(t, r, 200, "")
	var gw onboarded
	r.decode(t, &gw)
	plain := o.onboard("plain", "pw")

	// The gateway onboards an end node over MQTT, with no token.
	caller := Caller{Broker: APIBroker, AppID: testApp, ThingID: gw.ThingID}
	base := "p/" + gw.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp
	a := o.mqtt(caller, base+"/onboardings", "POST\nContent-Type: "+ctEndNode+"\n\n"+
		`{"gatewayThingID":"`+gw.ThingID+`","endNodeVendorThingID":"sensor-1","endNodePassword":"pw","endNodeThingType":"Sensor","owner":"USER:`+o.aliceID+`"}`)
	checkMQTT(t, a, 200, "")
	var en struct{ EndNodeThingID, AccessToken string }
	if err := json.Unmarshal(a.Body, &en); err != nil || en.EndNodeThingID == "" || en.AccessToken == "" {
		t.Fatalf("end node answer %s", a.Body)
	}
	thing, err := o.st.Thing(context.Background(), testApp, en.EndNodeThingID)
	if err != nil || thing.LayoutPosition != "ENDNODE" || thing.ThingType != "Sensor" {
		t.Fatalf("end node thing %+v, %v", thing, err)
	}

	conn := base + "/things/" + gw.ThingID + "/end-nodes/" + en.EndNodeThingID + "/connection"
	checkMQTT(t, o.mqtt(caller, conn, "PUT\nContent-Type: application/json\n\n{\"online\":true}"), 204, "")
	a = o.mqtt(caller, conn, "GET\n\n")
	checkMQTT(t, a, 200, "")
	if string(a.Body) != `{"online":true}` {
		t.Fatalf("connection %s", a.Body)
	}
	restConn := o.prefix + "/things/" + gw.ThingID + "/end-nodes/" + en.EndNodeThingID + "/connection"
	jsonCT := []string{"Content-Type", "application/json"}
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
	}{
		{"admin offline", "PUT", restConn, `{"online":false}`, with(bearer(o.admin), jsonCT...), 204, ""},
		{"no online", "PUT", restConn, `{}`, with(bearer(o.admin), jsonCT...), 400, "INVALID_INPUT_DATA"},
		{"unknown field", "PUT", restConn, `{"online":true,"x":1}`, with(bearer(o.admin), jsonCT...), 400, "INVALID_INPUT_DATA"},
		{"not its gateway", "GET", o.prefix + "/things/" + plain.ThingID + "/end-nodes/" + en.EndNodeThingID + "/connection", "", bearer(o.admin), 404, "END_NODE_NOT_FOUND"},
		{"another thing", "GET", restConn, "", bearer(plain.AccessToken), 403, "WRONG_TOKEN"},
		{"end node not a gateway", "POST", o.onboards, `{"gatewayThingID":"` + plain.ThingID + `","endNodeVendorThingID":"s-2","endNodePassword":"pw"}`, with(bearer(o.admin), "Content-Type", ctEndNode), 400, "INVALID_INPUT_DATA"},
		{"gateway of another", "POST", o.onboards, `{"gatewayThingID":"` + gw.ThingID + `","endNodeVendorThingID":"s-2","endNodePassword":"pw"}`, with(bearer(plain.AccessToken), "Content-Type", ctEndNode), 403, "WRONG_TOKEN"},
		{"wrong end node password", "POST", o.onboards, `{"gatewayThingID":"` + gw.ThingID + `","endNodeVendorThingID":"sensor-1","endNodePassword":"x"}`, with(bearer(o.admin), "Content-Type", ctEndNode), 403, "WRONG_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, o.do(tt.method, tt.path, tt.body, tt.headers...), tt.status, tt.code)
		})
	}
	r = o.do("GET", restConn, "", bearer(o.admin)...)
	check(t, r, 200, "")
	if string(r.body) != `{"online":false}` {
		t.Fatalf("connection %s", r.body)
	}
}

func TestThingInformation(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	var ids []string
	for i := range 3 {
		ids = append(ids, e.onboard(fmt.Sprintf("v-%d", i), "pw").ThingID)
	}
	p := "/thing-if/apps/" + testApp + "/things"
	r := e.do("GET", p+"/VENDOR_THING_ID:v-1", "", bearer(admin)...)
	check(t, r, 200, "")
	var th thingJSON
	r.decode(t, &th)
	if th.ThingID != ids[1] || th.VendorThingID != "v-1" || th.LayoutPosition != "STANDALONE" {
		t.Fatalf("thing %s", r.body)
	}
	check(t, e.do("GET", p+"/"+ids[2], "", bearer(admin)...), 200, "")
	check(t, e.do("GET", p+"/VENDOR_THING_ID:nope", "", bearer(admin)...), 404, "THING_NOT_FOUND")
	check(t, e.do("GET", p+"/th.nope", "", bearer(admin)...), 404, "THING_NOT_FOUND")
	check(t, e.do("PUT", p+"/"+ids[0]+"/properties", `[1]`, with(bearer(admin), "Content-Type", "application/json")...), 400, "INVALID_INPUT_DATA")
	check(t, e.do("PUT", p+"/"+ids[0]+"/properties", `{"a":1}`, with(bearer(admin), "Content-Type", "text/plain")...), 415, "UNSUPPORTED_MEDIA_TYPE")
	check(t, e.do("PUT", p+"/"+ids[0]+"/properties", `{"a": 1}`, with(bearer(admin), "Content-Type", "application/json")...), 204, "")
	r = e.do("GET", p+"/"+ids[0]+"/properties", "", bearer(admin)...)
	check(t, r, 200, "")
	if string(r.body) != `{"a":1}` {
		t.Fatalf("properties %s", r.body)
	}

	var got []string
	key := ""
	for range 5 {
		path := p + "?bestEffortLimit=2"
		if key != "" {
			path += "&paginationKey=" + key
		}
		r := e.do("GET", path, "", bearer(admin)...)
		check(t, r, 200, "")
		var page struct {
			Things            []thingJSON
			NextPaginationKey string
		}
		r.decode(t, &page)
		for _, th := range page.Things {
			got = append(got, th.ThingID)
		}
		if key = page.NextPaginationKey; key == "" {
			break
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	check(t, e.do("GET", p+"?paginationKey=junk", "", bearer(admin)...), 400, "INVALID_INPUT_DATA")
	check(t, e.do("GET", p+"?bestEffortLimit=0", "", bearer(admin)...), 400, "INVALID_INPUT_DATA")

	// search: by vendor thing ID (either case) or thing ID; bounded.
	for _, tt := range []struct {
		q    string
		want []string
	}{
		{"V-2", ids[2:3]},
		{"v-", ids},
		{ids[0], ids[:1]},
		{"%25", nil}, // a literal %
	} {
		r := e.do("GET", p+"?search="+tt.q, "", bearer(admin)...)
		check(t, r, 200, "")
		var page struct{ Things []thingJSON }
		r.decode(t, &page)
		var got []string
		for _, th := range page.Things {
			got = append(got, th.ThingID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("search %q: %v, want %v", tt.q, got, tt.want)
		}
	}
	check(t, e.do("GET", p+"?search="+strings.Repeat("x", maxThingSearch+1), "", bearer(admin)...), 400, "INVALID_INPUT_DATA")
}

func TestStateHistory(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	th := e.onboard("v-1", "pw")
	states := "/thing-if/apps/" + testApp + "/targets/thing:" + th.ThingID + "/states"
	start := e.now.Add(time.Millisecond).UnixMilli()
	temps := []float64{20, 22, 27, 25}
	for _, temp := range temps {
		check(t, e.do("PUT", states, fmt.Sprintf(`{"AC":{"temp":%g,"on":true}}`, temp),
			with(bearer(th.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
		e.advance(10 * time.Minute)
	}
	query := states + "/aliases/AC/query"
	q := func(body string) resp {
		return e.do("POST", query, body, with(bearer(admin), "Content-Type", "application/vnd.kii.TraitStateQueryRequest+json")...)
	}

	r := q(`{"query":{"clause":{"type":"withinTimeRange","lowerLimit":` + fmt.Sprint(start) + `,"upperLimit":` + fmt.Sprint(start+25*60000) + `}},"bestEffortLimit":2}`)
	check(t, r, 200, "")
	var page struct {
		Results           []map[string]any
		NextPaginationKey string
	}
	r.decode(t, &page)
	if len(page.Results) != 2 || page.Results[0]["temp"] != 20.0 || page.NextPaginationKey == "" {
		t.Fatalf("first page %s", r.body)
	}
	created20, _ := page.Results[0]["_created"].(float64)
	r = q(`{"query":{"clause":{"type":"withinTimeRange","lowerLimit":` + fmt.Sprint(start) + `,"upperLimit":` + fmt.Sprint(start+25*60000) + `}},"bestEffortLimit":2,"paginationKey":"` + page.NextPaginationKey + `"}`)
	check(t, r, 200, "")
	page.NextPaginationKey = ""
	r.decode(t, &page)
	if len(page.Results) != 1 || page.Results[0]["temp"] != 27.0 || page.NextPaginationKey != "" {
		t.Fatalf("second page %s", r.body)
	}
	created27, _ := page.Results[0]["_created"].(float64)

	r = q(`{"query":{"aggregations":[{"type":"COUNT","field":"temp","putAggregationInto":"n"},{"type":"MIN","field":"temp"},{"type":"max","field":"temp"},{"type":"MEAN","field":"temp"},{"type":"SUM","field":"temp"},{"type":"MEAN","field":"nope"}]}}`)
	check(t, r, 200, "")
	if want := `{"aggregations":[{"type":"COUNT","putAggregationInto":"n","field":"temp","value":4},{"type":"MIN","putAggregationInto":"min","field":"temp","value":20,"object":{"_created":` + fmt.Sprint(int64(created20)) + `,"on":true,"temp":20}},{"type":"MAX","putAggregationInto":"max","field":"temp","value":27,"object":{"_created":` + fmt.Sprint(int64(created27)) + `,"on":true,"temp":27}},{"type":"MEAN","putAggregationInto":"mean","field":"temp","value":23.5},{"type":"SUM","putAggregationInto":"sum","field":"temp","value":94},{"type":"MEAN","putAggregationInto":"mean","field":"nope","value":null}]}`; string(r.body) != want {
		t.Fatalf("aggregations\n got %s\nwant %s", r.body, want)
	}

	// Grouped by the default 15 minutes: the uploads at +0, +10, +20, +30
	// minutes fall in groups aligned to multiples of 15 minutes.
	r = q(`{"query":{"grouped":true,"aggregations":[{"type":"COUNT"},{"type":"MAX","field":"temp"}]}}`)
	check(t, r, 200, "")
	var grouped struct {
		GroupedResults []historyGroup
	}
	r.decode(t, &grouped)
	total := 0.0
	for _, g := range grouped.GroupedResults {
		if g.Range.To-g.Range.From != 15*60000-1 || g.Range.From%(15*60000) != 0 {
			t.Fatalf("group range %+v", g.Range)
		}
		total += *g.Aggregations[0].Value
	}
	if total != 4 || len(grouped.GroupedResults) < 2 {
		t.Fatalf("groups %s", r.body)
	}
	r = q(`{"query":{"grouped":true}}`)
	check(t, r, 200, "")
	if !strings.Contains(string(r.body), `"objects":[{`) {
		t.Fatalf("grouped objects %s", r.body)
	}

	for _, tt := range []struct {
		name, body, ct string
		status         int
		code           string
	}{
		{"bad JSON", `{"query":`, "", 400, "INVALID_INPUT_DATA"},
		{"unknown field", `{"query":{},"extra":1}`, "", 400, "INVALID_INPUT_DATA"},
		{"bad clause", `{"query":{"clause":{"type":"eq"}}}`, "", 400, "INVALID_INPUT_DATA"},
		{"inverted range", `{"query":{"clause":{"type":"withinTimeRange","lowerLimit":5,"upperLimit":1}}}`, "", 400, "INVALID_INPUT_DATA"},
		{"bad aggregation", `{"query":{"aggregations":[{"type":"MEDIAN","field":"t"}]}}`, "", 400, "INVALID_INPUT_DATA"},
		{"aggregation without field", `{"query":{"aggregations":[{"type":"SUM"}]}}`, "", 400, "INVALID_INPUT_DATA"},
		{"bad key", `{"query":{},"paginationKey":"x"}`, "", 400, "INVALID_INPUT_DATA"},
		{"wrong content type", `{}`, "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.ct
			if ct == "" {
				ct = "application/json"
			}
			check(t, e.do("POST", query, tt.body, with(bearer(admin), "Content-Type", ct)...), tt.status, tt.code)
		})
	}
	// Over MQTT, through the same handler.
	a := e.mqtt(Caller{Broker: APIBroker, AppID: testApp, ThingID: th.ThingID},
		"p/"+th.MQTTEndpoint.MQTTTopic+"/thing-if/apps/"+testApp+"/targets/thing:"+th.ThingID+"/states/aliases/AC/query",
		"POST\nContent-Type: application/vnd.kii.TraitStateQueryRequest+json\n\n{\"query\":{\"aggregations\":[{\"type\":\"COUNT\"}]}}")
	checkMQTT(t, a, 200, "")
	if !strings.Contains(string(a.Body), `"value":4`) {
		t.Fatalf("MQTT history %s", a.Body)
	}
}

type webhook struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []trigger.WebhookRequest
}

func newWebhook(t *testing.T) *webhook {
	wh := &webhook{}
	wh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req trigger.WebhookRequest
		_ = json.Unmarshal(b, &req)
		wh.mu.Lock()
		wh.calls = append(wh.calls, req)
		wh.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"done":true}`)
	}))
	t.Cleanup(wh.srv.Close)
	return wh
}

func TestTriggers(t *testing.T) {
	wh := newWebhook(t)
	o := newOwnerEnv(t, withTriggers(wh.srv.URL))
	ac := o.onboard("ac", "pw")
	fan := o.onboard("fan", "pw")
	base := o.prefix + "/targets/thing:" + ac.ThingID
	triggers := base + "/triggers"
	admin := with(bearer(o.admin), "Content-Type", "application/json")

	pred := `{"eventSource":"STATES","condition":{"type":"range","alias":"AC","field":"temp","lowerLimit":30},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`
	r := o.do("POST", triggers, `{"predicate":`+pred+`,"triggersWhat":"COMMAND","command":{"target":"thing:`+fan.ThingID+`","issuer":"user:x","actions":[{"Fan":[{"on":true}]}]},"title":"cool down"}`, admin...)
	check(t, r, 201, "")
	var created struct{ TriggerID string }
	r.decode(t, &created)
	tid := created.TriggerID

	for _, tt := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"bad JSON", `{"predicate":`, 400, "WRONG_TRIGGER"},
		{"unknown field", `{"predicate":` + pred + `,"command":{"actions":[{"a":[{"b":1}]}]},"x":1}`, 400, "WRONG_TRIGGER"},
		{"no predicate", `{"command":{"actions":[{"a":[{"b":1}]}]}}`, 400, "WRONG_TRIGGER"},
		{"bad predicate", `{"predicate":{"eventSource":"STATES","condition":{"type":"gt"},"triggersWhen":"CONDITION_CHANGED"},"command":{"actions":[{"a":[{"b":1}]}]}}`, 400, "WRONG_TRIGGER"},
		{"bad cron", `{"predicate":{"eventSource":"SCHEDULE","schedule":"every day"},"command":{"actions":[{"a":[{"b":1}]}]}}`, 400, "WRONG_TRIGGER"},
		{"no action", `{"predicate":` + pred + `}`, 400, "WRONG_TRIGGER"},
		{"both actions", `{"predicate":` + pred + `,"command":{"actions":[{"a":[{"b":1}]}]},"serverCode":{"endpoint":"e"}}`, 400, "WRONG_TRIGGER"},
		{"empty actions", `{"predicate":` + pred + `,"command":{"actions":[]}}`, 400, "WRONG_TRIGGER"},
		{"long title", `{"predicate":` + pred + `,"command":{"actions":[{"a":[{"b":1}]}]},"title":"` + strings.Repeat("t", 51) + `"}`, 400, "WRONG_TRIGGER"},
		{"bad target", `{"predicate":` + pred + `,"command":{"target":"group:x","actions":[{"a":[{"b":1}]}]}}`, 400, "WRONG_TRIGGER"},
		{"missing target", `{"predicate":` + pred + `,"command":{"target":"thing:th.nope","actions":[{"a":[{"b":1}]}]}}`, 404, "TARGET_NOT_FOUND"},
		{"server code without endpoint", `{"predicate":` + pred + `,"serverCode":{}}`, 400, "WRONG_TRIGGER"},
		{"unknown triggersWhat", `{"predicate":` + pred + `,"triggersWhat":"EMAIL"}`, 400, "WRONG_TRIGGER"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check(t, o.do("POST", triggers, tt.body, admin...), tt.status, tt.code)
		})
	}
	check(t, o.do("POST", triggers, `{}`, with(bearer(o.admin), "Content-Type", "text/plain")...), 415, "UNSUPPORTED_MEDIA_TYPE")
	check(t, o.do("POST", triggers, `{"predicate":`+pred+`,"command":{"actions":[{"a":[{"b":1}]}]}}`, with(bearer(fan.AccessToken), "Content-Type", "application/json")...), 403, "WRONG_TOKEN")
	check(t, o.do("POST", triggers, `{"predicate":`+pred+`,"command":{"actions":[{"a":[{"b":1}]}]}}`, with(bearer(o.bob), "Content-Type", "application/json")...), 403, "WRONG_TOKEN")
	r = o.do("GET", triggers, "", bearer(o.admin)...)
	check(t, r, 200, "")
	var list struct{ Triggers []triggerJSON }
	r.decode(t, &list)
	if len(list.Triggers) != 1 || list.Triggers[0].TriggerID != tid || list.Triggers[0].TriggersWhat != "COMMAND" || list.Triggers[0].Title != "cool down" {
		t.Fatalf("triggers %s (refused ones must not be stored)", r.body)
	}

	// The thing uploads states over MQTT: false → true fires once.
	thing := Caller{Broker: APIBroker, AppID: testApp, ThingID: ac.ThingID}
	stTopic := "p/" + ac.MQTTEndpoint.MQTTTopic + "/thing-if/apps/" + testApp + "/targets/thing:" + ac.ThingID + "/states"
	for _, temp := range []int{25, 31, 33} {
		checkMQTT(t, o.mqtt(thing, stTopic, fmt.Sprintf("PUT\nContent-Type: application/vnd.kii.MultipleTraitState+json\n\n{\"AC\":{\"temp\":%d}}", temp)), 204, "")
	}
	fanCmds, _, err := o.st.Commands(context.Background(), fan.ThingID, "", 0)
	if err != nil || len(fanCmds) != 1 || string(fanCmds[0].Actions) != `[{"Fan":[{"on":true}]}]` || fanCmds[0].Issuer != "user:x" {
		t.Fatalf("fan commands %+v, %v", fanCmds, err)
	}

	// Disabled, it does not fire; enabled again, it does.
	check(t, o.do("PUT", triggers+"/"+tid+"/disable", "", bearer(o.admin)...), 204, "")
	r = o.do("GET", triggers+"/"+tid, "", bearer(o.admin)...)
	check(t, r, 200, "")
	if !strings.Contains(string(r.body), `"disabled":true`) {
		t.Fatalf("disabled trigger %s", r.body)
	}
	for _, temp := range []int{20, 35} {
		check(t, o.do("PUT", base+"/states", fmt.Sprintf(`{"AC":{"temp":%d}}`, temp), with(bearer(ac.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
	}
	check(t, o.do("PUT", triggers+"/"+tid+"/enable", "", bearer(o.admin)...), 204, "")
	for _, temp := range []int{20, 35} {
		check(t, o.do("PUT", base+"/states", fmt.Sprintf(`{"AC":{"temp":%d}}`, temp), with(bearer(ac.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
	}
	if fanCmds, _, _ = o.st.Commands(context.Background(), fan.ThingID, "", 0); len(fanCmds) != 2 {
		t.Fatalf("fan has %d commands, want 2", len(fanCmds))
	}

	// Patch it into a server-code trigger on CONDITION_CHANGED.
	check(t, o.do("PATCH", triggers+"/"+tid, `{"predicate":{"eventSource":"STATES","condition":{"type":"eq","alias":"AC","field":"temp","value":35},"triggersWhen":"CONDITION_CHANGED"},"triggersWhat":"SERVER_CODE","serverCode":{"endpoint":"alert","parameters":{"level":2}}}`, admin...), 204, "")
	check(t, o.do("PATCH", triggers+"/"+tid, `{"title":5}`, admin...), 400, "WRONG_TRIGGER")
	for _, temp := range []int{35, 36} {
		check(t, o.do("PUT", base+"/states", fmt.Sprintf(`{"AC":{"temp":%d}}`, temp), with(bearer(ac.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
	}
	o.h.cfg.Triggers.Wait()
	if len(wh.calls) != 2 || wh.calls[0].Endpoint != "alert" || string(wh.calls[0].Parameters) != `{"level":2}` || wh.calls[0].TriggerID != tid {
		t.Fatalf("webhook calls %+v", wh.calls)
	}
	r = o.do("GET", triggers+"/"+tid+"/results/server-code", "", bearer(o.admin)...)
	check(t, r, 200, "")
	if !strings.HasPrefix(string(r.body), `{"triggerServerCodeResults":[{"succeeded":true,"returnedValue":{"done":true},`) {
		t.Fatalf("results %s", r.body)
	}

	// Owners manage triggers of their things too.
	owned := o.onboardAs(o.alice, ctVendorByOwner, `{"vendorThingID":"owned","thingPassword":"pw","owner":"GROUP:`+o.group+`"}`)
	var ow onboarded
	owned.decode(t, &ow)
	check(t, o.do("POST", o.prefix+"/targets/thing:"+ow.ThingID+"/triggers", `{"predicate":{"eventSource":"SCHEDULE","schedule":"0 7 * * *"},"command":{"actions":[{"a":[{"b":1}]}]}}`,
		with(bearer(o.bob), "Content-Type", "application/json")...), 201, "")

	check(t, o.do("DELETE", triggers+"/"+tid, "", bearer(o.admin)...), 204, "")
	check(t, o.do("GET", triggers+"/"+tid, "", bearer(o.admin)...), 404, "TRIGGER_NOT_FOUND")
	check(t, o.do("DELETE", triggers+"/"+tid, "", bearer(o.admin)...), 404, "TRIGGER_NOT_FOUND")
	check(t, o.do("PUT", triggers+"/"+tid+"/enable", "", bearer(o.admin)...), 404, "TRIGGER_NOT_FOUND")
	check(t, o.do("GET", triggers+"/"+tid+"/results/server-code", "", bearer(o.admin)...), 404, "TRIGGER_NOT_FOUND")
}

func TestServerCodeNeedsWebhook(t *testing.T) {
	e := newEnv(t, withTriggers(""))
	th := e.onboard("v", "pw")
	r := e.do("POST", "/thing-if/apps/"+testApp+"/targets/thing:"+th.ThingID+"/triggers",
		`{"predicate":{"eventSource":"SCHEDULE_ONCE","scheduleAt":1},"serverCode":{"endpoint":"e"}}`,
		with(bearer(e.appToken(testApp, testAppKey)), "Content-Type", "application/json")...)
	check(t, r, 400, "WRONG_TRIGGER")
	trs, _, err := e.st.Triggers(context.Background(), th.ThingID, "", 0)
	if err != nil || len(trs) != 0 {
		t.Fatalf("stored %v, %v", trs, err)
	}
	_ = store.EventStates
}

// TestUserListAndDelete: the admin lists the app's users page by page and
// deletes one; the deleted user's token stops working at once.
func TestUserListAndDelete(t *testing.T) {
	e := newEnv(t)
	admin := e.appToken(testApp, testAppKey)
	users := "/api/apps/" + testApp + "/users"
	aliceID, aliceTok := e.user(admin, "alice")
	bobID, bobTok := e.user(admin, "bob")
	carolID, _ := e.user(admin, "carol")

	var ids []string
	for key, pages := "", 1; ; pages++ {
		q := "?bestEffortLimit=2"
		if key != "" {
			q += "&paginationKey=" + key
		}
		r := e.do("GET", users+q, "", bearer(admin)...)
		check(t, r, 200, "")
		var page struct {
			Users []struct {
				UserID, LoginName string
				Created           int64
			}
			NextPaginationKey string
		}
		r.decode(t, &page)
		for _, u := range page.Users {
			ids = append(ids, u.UserID)
			if u.LoginName == "" || u.Created == 0 {
				t.Errorf("user %+v lacks loginName or created", u)
			}
		}
		if page.NextPaginationKey == "" {
			if got, want := pages, 2; got != want {
				t.Errorf("%d pages, want %d", got, want)
			}
			break
		}
		key = page.NextPaginationKey
	}
	if got, want := strings.Join(ids, ","), strings.Join([]string{aliceID, bobID, carolID}, ","); got != want {
		t.Fatalf("listed %s, want %s", got, want)
	}

	for _, tt := range []struct {
		name, method, path string
		headers            []string
		status             int
		code               string
	}{
		{"list with a user token", "GET", users, bearer(aliceTok), 403, "WRONG_TOKEN"},
		{"list without a token", "GET", users, nil, 401, "UNAUTHORIZED"},
		{"list with a bad key", "GET", users + "?paginationKey=zz", bearer(admin), 400, "INVALID_INPUT_DATA"},
		{"list with a bad limit", "GET", users + "?bestEffortLimit=0", bearer(admin), 400, "INVALID_INPUT_DATA"},
		{"delete with a user token", "DELETE", users + "/" + bobID, bearer(aliceTok), 403, "WRONG_TOKEN"},
		{"delete a missing user", "DELETE", users + "/u.nope", bearer(admin), 404, "USER_NOT_FOUND"},
		{"delete", "DELETE", users + "/" + bobID, bearer(admin), 204, ""},
		{"delete again", "DELETE", users + "/" + bobID, bearer(admin), 404, "USER_NOT_FOUND"},
		{"deleted user's token", "GET", users + "/" + bobID, bearer(bobTok), 403, "WRONG_TOKEN"},
		{"deleted user gone", "GET", users + "/" + bobID, bearer(admin), 404, "USER_NOT_FOUND"},
		{"other user untouched", "GET", users + "/" + aliceID, bearer(aliceTok), 200, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check(t, e.do(tt.method, tt.path, "", tt.headers...), tt.status, tt.code)
		})
	}
}
