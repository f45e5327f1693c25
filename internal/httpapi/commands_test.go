package httpapi

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/thingif/thingif/internal/store"
)

func TestPostCommand(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	admin := e.appToken(testApp, testAppKey)
	path := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/commands"
	tests := []struct {
		name, token, body string
		status            int
		code, msg         string
	}{
		{"v1", admin, `{"schema":"S","schemaVersion":1,"actions":[{"turnPower":{"power":true}},{"setFan":{"speed":5}}],"issuer":"user:u1","title":"t","description":"d","metadata":{"k":"v"}}`, 201, "", ""},
		{"v2", admin, `{"actions":[{"AirCon":[{"turnPower":true},{"setTemp":25}]}],"issuer":"group:g"}`, 201, "", ""},
		{"v2 no issuer", admin, `{"actions":[{"AirCon":[{"turnPower":true}]}]}`, 201, "", ""},
		{"title 50", admin, `{"actions":[{"A":[{"x":1}]}],"title":"` + strings.Repeat("é", 50) + `"}`, 201, "", ""},
		{"title 51", admin, `{"actions":[{"A":[{"x":1}]}],"title":"` + strings.Repeat("é", 51) + `"}`, 400, "WRONG_COMMAND", "title"},
		{"no actions", admin, `{"issuer":"user:u"}`, 400, "WRONG_COMMAND", "actions"},
		{"empty actions", admin, `{"actions":[]}`, 400, "WRONG_COMMAND", "empty"},
		{"actions object", admin, `{"actions":{}}`, 400, "WRONG_COMMAND", "array"},
		{"two keys", admin, `{"actions":[{"a":[{"x":1}],"b":[{"y":1}]}]}`, 400, "WRONG_COMMAND", "actions[0]"},
		{"v1 value not object", admin, `{"schema":"S","schemaVersion":1,"actions":[{"a":true}]}`, 400, "WRONG_COMMAND", "actions[0].a"},
		{"v2 value not array", admin, `{"actions":[{"A":{"x":1}}]}`, 400, "WRONG_COMMAND", "actions[0].A"},
		{"v2 empty inner", admin, `{"actions":[{"A":[]}]}`, 400, "WRONG_COMMAND", "actions[0].A"},
		{"v2 inner two keys", admin, `{"actions":[{"A":[{"x":1,"y":2}]}]}`, 400, "WRONG_COMMAND", "actions[0].A[0]"},
		{"schema without version", admin, `{"schema":"S","actions":[{"a":{}}]}`, 400, "WRONG_COMMAND", "schemaVersion"},
		{"version without schema", admin, `{"schemaVersion":1,"actions":[{"A":[{"x":1}]}]}`, 400, "WRONG_COMMAND", "schema"},
		{"bad issuer", admin, `{"actions":[{"A":[{"x":1}]}],"issuer":"thing:x"}`, 400, "WRONG_COMMAND", "issuer"},
		{"unknown field", admin, `{"actions":[{"A":[{"x":1}]}],"colour":"red"}`, 400, "WRONG_COMMAND", "colour"},
		{"metadata array", admin, `{"actions":[{"A":[{"x":1}]}],"metadata":[]}`, 400, "WRONG_COMMAND", "metadata"},
		{"title number", admin, `{"actions":[{"A":[{"x":1}]}],"title":5}`, 400, "WRONG_COMMAND", "title"},
		{"not json", admin, `{"actions":`, 400, "INVALID_INPUT_DATA", ""},
		{"by the thing", o.AccessToken, `{"actions":[{"A":[{"x":1}]}]}`, 403, "WRONG_TOKEN", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.pusher.Calls())
			r := e.do("POST", path, tt.body, with(bearer(tt.token), "Content-Type", "application/json")...)
			check(t, r, tt.status, tt.code)
			if !strings.Contains(string(r.body), tt.msg) {
				t.Fatalf("message does not name %q: %s", tt.msg, r.body)
			}
			pushes := e.pusher.Calls()[before:]
			if tt.status != 201 {
				if len(pushes) != 0 {
					t.Fatalf("refused command pushed: %v", pushes)
				}
				return
			}
			var created struct{ CommandID string }
			r.decode(t, &created)
			c, err := e.st.Command(context.Background(), o.ThingID, created.CommandID)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != store.CommandSending || c.AppID != testApp {
				t.Fatalf("stored command %+v", c)
			}
			if diff := cmp.Diff([]string{testApp + "/" + o.ThingID}, pushes); diff != "" {
				t.Fatalf("pushes (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown thing", func(t *testing.T) {
		r := e.do("POST", "/thing-if/apps/"+testApp+"/targets/thing:th.nope/commands", `{"actions":[{"A":[{"x":1}]}]}`,
			with(bearer(admin), "Content-Type", "application/json")...)
		check(t, r, 404, "TARGET_NOT_FOUND")
	})
}

func TestGetCommandsAndResults(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	other := e.onboard("v-2", "pw")
	admin := e.appToken(testApp, testAppKey)
	base := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/commands"
	send := func(body string) string {
		t.Helper()
		r := e.do("POST", base, body, with(bearer(admin), "Content-Type", "application/json")...)
		check(t, r, 201, "")
		var c struct{ CommandID string }
		r.decode(t, &c)
		return c.CommandID
	}
	v1 := send(`{"schema":"S","schemaVersion":2,"actions":[{"turnPower":{"power":true}},{"setFan":{"speed":5}}],"issuer":"user:u1","title":"t","metadata":{"k":"v"}}`)
	v2 := send(`{"actions":[{"AirCon":[{"turnPower":true},{"setTemp":25}]}],"issuer":"user:u1"}`)

	t.Run("get v1", func(t *testing.T) {
		r := e.do("GET", base+"/"+v1, "", bearer(o.AccessToken)...)
		check(t, r, 200, "")
		var got map[string]any
		r.decode(t, &got)
		created := got["created"]
		want := map[string]any{"commandID": v1, "schema": "S", "schemaVersion": 2.0, "target": "thing:" + o.ThingID,
			"commandState": "SENDING", "issuer": "user:u1", "title": "t", "metadata": map[string]any{"k": "v"},
			"actions": []any{map[string]any{"turnPower": map[string]any{"power": true}}, map[string]any{"setFan": map[string]any{"speed": 5.0}}},
			"created": created, "modified": created}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("command (-want +got):\n%s", diff)
		}
		if _, ok := created.(float64); !ok {
			t.Fatalf("created %v is not a number", created)
		}
	})

	results := []struct {
		name, cid, contentType, body string
		status                       int
		code                         string
		state                        store.CommandState
	}{
		{"v1 all succeeded", v1, "application/json", `{"actionResults":[{"turnPower":{"succeeded":true}},{"setFan":{"succeeded":true}}]}`, 204, "", store.CommandDone},
		{"v2 one failed", v2, "application/vnd.kii.CommandResultsUpdateRequest+json",
			`{"actionResults":[{"AirCon":[{"turnPower":{"succeeded":true,"data":{}}},{"setTemp":{"succeeded":false,"errorMessage":"hot"}}]}]}`, 204, "", store.CommandIncomplete},
		{"v1 one failed", v1, "", `{"actionResults":[{"turnPower":{"succeeded":false,"errorMessage":"x"}}]}`, 204, "", store.CommandIncomplete},
		{"unknown command", "nope", "application/json", `{"actionResults":[{"a":{"succeeded":true}}]}`, 404, "COMMAND_NOT_FOUND", ""},
		{"no results", v1, "application/json", `{}`, 400, "INVALID_INPUT_DATA", store.CommandIncomplete},
		{"empty results", v1, "application/json", `{"actionResults":[]}`, 400, "INVALID_INPUT_DATA", store.CommandIncomplete},
		{"no succeeded", v1, "application/json", `{"actionResults":[{"a":{"data":1}}]}`, 400, "INVALID_INPUT_DATA", store.CommandIncomplete},
		{"succeeded string", v2, "application/json", `{"actionResults":[{"A":[{"a":{"succeeded":"true"}}]}]}`, 400, "INVALID_INPUT_DATA", store.CommandIncomplete},
		{"v2 empty inner", v2, "application/json", `{"actionResults":[{"A":[]}]}`, 400, "INVALID_INPUT_DATA", store.CommandIncomplete},
		{"wrong type", v2, "text/plain", `{"actionResults":[{"a":{"succeeded":true}}]}`, 415, "UNSUPPORTED_MEDIA_TYPE", store.CommandIncomplete},
	}
	for _, tt := range results {
		t.Run("results "+tt.name, func(t *testing.T) {
			h := bearer(o.AccessToken)
			if tt.contentType != "" {
				h = with(h, "Content-Type", tt.contentType)
			}
			check(t, e.do("PUT", base+"/"+tt.cid+"/action-results", tt.body, h...), tt.status, tt.code)
			if tt.state == "" {
				return
			}
			c, err := e.st.Command(context.Background(), o.ThingID, tt.cid)
			if err != nil {
				t.Fatal(err)
			}
			if c.State != tt.state {
				t.Fatalf("state %s, want %s", c.State, tt.state)
			}
		})
	}
	t.Run("get with results", func(t *testing.T) {
		r := e.do("GET", base+"/"+v2, "", bearer(admin)...)
		check(t, r, 200, "")
		var got struct {
			CommandState  string
			ActionResults []map[string][]map[string]map[string]any
		}
		r.decode(t, &got)
		if got.CommandState != "INCOMPLETE" || got.ActionResults[0]["AirCon"][1]["setTemp"]["errorMessage"] != "hot" {
			t.Fatalf("command %s", r.body)
		}
	})

	access := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"another thing reads", "GET", base + "/" + v1, other.AccessToken, 403, "WRONG_TOKEN"},
		{"another thing lists", "GET", base, other.AccessToken, 403, "WRONG_TOKEN"},
		{"another thing's results", "PUT", base + "/" + v1 + "/action-results", other.AccessToken, 403, "WRONG_TOKEN"},
		{"command of another thing", "GET", "/thing-if/apps/" + testApp + "/targets/thing:" + other.ThingID + "/commands/" + v1, admin, 404, "COMMAND_NOT_FOUND"},
		{"unknown command", "GET", base + "/nope", o.AccessToken, 404, "COMMAND_NOT_FOUND"},
		{"bad limit", "GET", base + "?bestEffortLimit=x", o.AccessToken, 400, "INVALID_INPUT_DATA"},
		{"bad pagination key", "GET", base + "?paginationKey=zz", o.AccessToken, 400, "INVALID_INPUT_DATA"},
	}
	for _, tt := range access {
		t.Run(tt.name, func(t *testing.T) {
			check(t, e.do(tt.method, tt.path, `{"actionResults":[{"a":{"succeeded":true}}]}`,
				with(bearer(tt.token), "Content-Type", "application/json")...), tt.status, tt.code)
		})
	}
}

func TestListCommands(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	admin := e.appToken(testApp, testAppKey)
	base := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/commands"
	var sent []string
	for i := range 12 {
		r := e.do("POST", base, fmt.Sprintf(`{"actions":[{"A":[{"n":%d}]}]}`, i), with(bearer(admin), "Content-Type", "application/json")...)
		check(t, r, 201, "")
		var c struct{ CommandID string }
		r.decode(t, &c)
		sent = append([]string{c.CommandID}, sent...) // newest first
	}
	page := func(query string) ([]string, string) {
		t.Helper()
		r := e.do("GET", base+query, "", bearer(o.AccessToken)...)
		check(t, r, 200, "")
		var l struct {
			Commands          []struct{ CommandID string }
			NextPaginationKey *string
		}
		r.decode(t, &l)
		var ids []string
		for _, c := range l.Commands {
			ids = append(ids, c.CommandID)
		}
		if l.NextPaginationKey == nil {
			return ids, ""
		}
		if *l.NextPaginationKey == "" {
			t.Fatalf("empty nextPaginationKey present: %s", r.body)
		}
		return ids, *l.NextPaginationKey
	}
	ids, next := page("")
	if diff := cmp.Diff(sent[:10], ids); diff != "" || next == "" {
		t.Fatalf("default page (-want +got):\n%s next %q", diff, next)
	}
	var all []string
	next = ""
	for i := 0; ; i++ {
		q := "?bestEffortLimit=5"
		if next != "" {
			q += "&paginationKey=" + next
		}
		ids, next = page(q)
		all = append(all, ids...)
		if next == "" {
			break
		}
		if i > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if diff := cmp.Diff(sent, all); diff != "" {
		t.Fatalf("all pages (-want +got):\n%s", diff)
	}
	other := e.onboard("v-2", "pw")
	r := e.do("GET", "/thing-if/apps/"+testApp+"/targets/thing:"+other.ThingID+"/commands", "", bearer(other.AccessToken)...)
	check(t, r, 200, "")
	if got, want := string(r.body), `{"commands":[]}`; got != want {
		t.Fatalf("empty list %s, want %s", got, want)
	}
}
