package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingif/thingif/internal/store"
)

func TestStates(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	th := bearer(o.AccessToken)
	base := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID
	const (
		multi = "application/vnd.kii.MultipleTraitState+json"
		patch = "application/vnd.kii.MultipleTraitStatePatch+json"
		bulk  = "application/vnd.kii.StateBulkUploadRequest+json"
	)
	// Steps run in order: each builds on the state the previous left.
	steps := []struct {
		name, method, path, contentType, body string
		status                                int
		code                                  string
		want                                  string // GET answer after the step; "" for 404
	}{
		{"none yet", "GET", "/states", "", "", 404, "STATE_NOT_FOUND", ""},
		{"v1 put", "PUT", "/states", "application/json", `{"power":true,  "temp":25}`, 204, "", `{"power":true,"temp":25}`},
		{"v1 put without content type", "PUT", "/states", "", `{"power":false}`, 204, "", `{"power":false}`},
		{"v1 patch", "PATCH", "/states", "application/json; charset=utf-8", `{"temp":20}`, 204, "", `{"power":false,"temp":20}`},
		{"v2 put replaces v1", "PUT", "/states", multi, `{"AirCon":{"power":true},"Fan":{"speed":1}}`, 204, "", `{"AirCon":{"power":true},"Fan":{"speed":1}}`},
		{"v2 patch merges", "PATCH", "/states", patch, `{"Fan":{"dir":"up"},"Lamp":{"on":true}}`, 204, "",
			`{"AirCon":{"power":true},"Fan":{"dir":"up","speed":1},"Lamp":{"on":true}}`},
		{"v2 put replaces", "PUT", "/states", multi, `{"AirCon":{"power":false}}`, 204, "", `{"AirCon":{"power":false}}`},
		{"v1 array", "PUT", "/states", "application/json", `[1]`, 400, "INVALID_INPUT_DATA", `{"AirCon":{"power":false}}`},
		{"v2 member not object", "PUT", "/states", multi, `{"AirCon":1}`, 400, "INVALID_INPUT_DATA", `{"AirCon":{"power":false}}`},
		{"v2 empty alias", "PUT", "/states", multi, `{"":{}}`, 400, "INVALID_INPUT_DATA", `{"AirCon":{"power":false}}`},
		{"not json", "PUT", "/states", "application/json", `{"power"`, 400, "INVALID_INPUT_DATA", `{"AirCon":{"power":false}}`},
		{"patch type on put", "PUT", "/states", patch, `{"AirCon":{}}`, 415, "UNSUPPORTED_MEDIA_TYPE", `{"AirCon":{"power":false}}`},
		{"text", "PUT", "/states", "text/plain", `{}`, 415, "UNSUPPORTED_MEDIA_TYPE", `{"AirCon":{"power":false}}`},
		{"bulk", "POST", "/states-bulk", bulk,
			`{"states":[{"timestamp":3000,"state":{"AirCon":{"power":true}}},{"timestamp":1000,"state":{"AirCon":{"power":false},"Fan":{"speed":3}}}]}`,
			204, "", `{"AirCon":{"power":true}}`},
		{"bulk without timestamps", "POST", "/states-bulk", bulk, `{"states":[{"state":{"Fan":{"speed":2}}}]}`, 204, "", `{"Fan":{"speed":2}}`},
		{"bulk empty", "POST", "/states-bulk", bulk, `{"states":[]}`, 400, "INVALID_INPUT_DATA", `{"Fan":{"speed":2}}`},
		{"bulk bad item", "POST", "/states-bulk", bulk, `{"states":[{"state":{"Fan":{"speed":9}}},{"state":{"Fan":1}}]}`, 400, "INVALID_INPUT_DATA", `{"Fan":{"speed":2}}`},
		{"bulk negative time", "POST", "/states-bulk", bulk, `{"states":[{"timestamp":-1,"state":{"Fan":{}}}]}`, 400, "INVALID_INPUT_DATA", `{"Fan":{"speed":2}}`},
		{"bulk wrong type", "POST", "/states-bulk", "text/plain", `{"states":[{"state":{"Fan":{}}}]}`, 415, "UNSUPPORTED_MEDIA_TYPE", `{"Fan":{"speed":2}}`},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			h := th
			if s.contentType != "" {
				h = with(h, "Content-Type", s.contentType)
			}
			check(t, e.do(s.method, base+s.path, s.body, h...), s.status, s.code)
			r := e.do("GET", base+"/states", "", th...)
			if s.want == "" {
				check(t, r, 404, "STATE_NOT_FOUND")
				return
			}
			check(t, r, 200, "")
			var got, want any
			r.decode(t, &got)
			if err := json.Unmarshal([]byte(s.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("state %s (-want +got):\n%s", r.body, diff)
			}
		})
	}
	t.Run("alias", func(t *testing.T) {
		r := e.do("GET", base+"/states/aliases/Fan", "", th...)
		check(t, r, 200, "")
		if got, want := string(r.body), `{"speed":2}`; got != want {
			t.Fatalf("alias state %s, want %s", got, want)
		}
		check(t, e.do("GET", base+"/states/aliases/Nope", "", th...), 404, "STATE_NOT_FOUND")
	})
	t.Run("upper-case target kind", func(t *testing.T) {
		path := "/thing-if/apps/" + testApp + "/targets/THING:" + o.ThingID + "/states"
		check(t, e.do("PUT", path, `{"x":1}`, with(th, "Content-Type", "application/json")...), 204, "")
	})
}

func TestStatesAccess(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	other := e.onboard("v-2", "pw")
	admin := e.appToken(testApp, testAppKey)
	anon := e.appToken(testApp, "dummy")
	states := func(thingID string) string {
		return "/thing-if/apps/" + testApp + "/targets/thing:" + thingID + "/states"
	}
	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
	}{
		{"admin", "PUT", states(o.ThingID), admin, 204, ""},
		{"admin unknown thing", "PUT", states("th.nope"), admin, 404, "TARGET_NOT_FOUND"},
		{"thing on another", "PUT", states(other.ThingID), o.AccessToken, 403, "WRONG_TOKEN"},
		{"thing on unknown", "PUT", states("th.nope"), o.AccessToken, 403, "WRONG_TOKEN"},
		{"thing reads another", "GET", states(other.ThingID), o.AccessToken, 403, "WRONG_TOKEN"},
		{"anonymous", "PUT", states(o.ThingID), anon, 403, "WRONG_TOKEN"},
		{"other app's path", "PUT", "/thing-if/apps/" + closedApp + "/targets/thing:" + o.ThingID + "/states", o.AccessToken, 403, "WRONG_TOKEN"},
		{"no token", "PUT", states(o.ThingID), "", 401, "UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Content-Type", "application/json"}
			if tt.token != "" {
				h = with(h, bearer(tt.token)...)
			}
			check(t, e.do(tt.method, tt.path, `{"by":"`+tt.name+`"}`, h...), tt.status, tt.code)
		})
	}
	// Only the admin's write landed; the refused ones changed nothing.
	for _, th := range []string{o.ThingID, other.ThingID} {
		got, err := e.st.States(context.Background(), th)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if th == o.ThingID {
			want = 1
		}
		if len(got) != want || (want == 1 && string(got[0].Body) != `{"by":"admin"}`) {
			t.Fatalf("states of %s: %s", th, fmt.Sprint(got))
		}
	}
}

// TestEmbeddedHTTPStack sends a state the way embedded device stacks do
// (PROTOCOL.md §8): absolute-URI request line, upper-case HOST, chunked body,
// Connection: Close.
func TestEmbeddedHTTPStack(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"A":{"on":true}}`
	req := fmt.Sprintf("PUT http://%s/thing-if/apps/%s/targets/thing:%s/states HTTP/1.1\r\nHOST: %s\r\n"+
		"Authorization: Bearer %s\r\nContent-Type: application/vnd.kii.MultipleTraitState+json\r\n"+
		"Transfer-Encoding: chunked\r\nConnection: Close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n",
		e.srv.Listener.Addr(), testApp, o.ThingID, e.srv.Listener.Addr(), o.AccessToken, len(body), body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "HTTP/1.1 204 ") {
		t.Fatalf("answer:\n%s", raw)
	}
	got, err := e.st.States(context.Background(), o.ThingID)
	if err != nil || len(got) != 1 || string(got[0].Body) != `{"on":true}` {
		t.Fatalf("stored %v, %v", got, err)
	}
}

// TestStatesBulk sends POST …/states-bulk as Kii's embedded SDK does, in
// both of its forms, over REST and over MQTT: items are written oldest
// first, each replacing (StateBulkUploadRequest) or merged into
// (StatePatchBulkUploadRequest) the state, with generatedAt as its history
// time, and the thing's triggers run after each item.
func TestStatesBulk(t *testing.T) {
	const (
		bulk  = "application/vnd.kii.StateBulkUploadRequest+json"
		patch = "application/vnd.kii.StatePatchBulkUploadRequest+json"
		// initial is the state before the bulk upload; its AC.on is false.
		initial = `{"AC":{"on":false,"temp":20},"Fan":{"speed":1}}`
	)
	type entry struct {
		ms   int64
		body string
	}
	tests := []struct {
		name, contentType, body string
		status                  int
		code                    string
		want                    string  // GET …/states afterwards
		history                 []entry // of alias AC, generatedAt within 0..10 s
		commands                int     // fired by "AC.on is true", checked after every item
	}{
		{"replace", bulk,
			`{"states":[{"generatedAt":2000,"payload":{"AC":{"on":true}}},{"generatedAt":1000,"payload":{"AC":{"on":false},"Fan":{"speed":3}}}]}`,
			204, "", `{"AC":{"on":true}}`, []entry{{1000, `{"on":false}`}, {2000, `{"on":true}`}}, 1},
		{"replace each item", bulk,
			`{"states":[{"generatedAt":1000,"payload":{"AC":{"on":true}}},{"generatedAt":2000,"payload":{"AC":{"temp":1}}}]}`,
			204, "", `{"AC":{"temp":1}}`, []entry{{1000, `{"on":true}`}, {2000, `{"temp":1}`}}, 1},
		{"patch", patch,
			`{"states":[{"generatedAt":1000,"payload":{"AC":{"on":true}}},{"generatedAt":2000,"payload":{"AC":{"temp":25}}}]}`,
			204, "", `{"AC":{"on":true,"temp":25},"Fan":{"speed":1}}`,
			[]entry{{1000, `{"on":true,"temp":20}`}, {2000, `{"on":true,"temp":25}`}}, 2},
		{"patch oldest first", patch,
			`{"states":[{"generatedAt":2000,"payload":{"AC":{"temp":25}}},{"generatedAt":1000,"payload":{"AC":{"temp":22},"Lamp":{"on":true}}}]}`,
			204, "", `{"AC":{"on":false,"temp":25},"Fan":{"speed":1},"Lamp":{"on":true}}`,
			[]entry{{1000, `{"on":false,"temp":22}`}, {2000, `{"on":false,"temp":25}`}}, 0},
		{"patch media type in any case", "application/vnd.kii.statepatchbulkuploadrequest+json; charset=utf-8",
			`{"states":[{"generatedAt":1000,"payload":{"Fan":{"speed":5}}}]}`,
			204, "", `{"AC":{"on":false,"temp":20},"Fan":{"speed":5}}`, nil, 0},
		{"invented names", bulk,
			`{"states":[{"timestamp":1000,"state":{"AC":{"on":true}}}]}`,
			204, "", `{"AC":{"on":true}}`, []entry{{1000, `{"on":true}`}}, 1},
		{"generatedAt and timestamp", bulk,
			`{"states":[{"generatedAt":1000,"timestamp":1000,"payload":{"AC":{"on":true}}}]}`,
			400, "INVALID_INPUT_DATA", initial, nil, 0},
		{"payload and state", patch,
			`{"states":[{"generatedAt":1000,"payload":{"AC":{"on":true}},"state":{"AC":{"on":true}}}]}`,
			400, "INVALID_INPUT_DATA", initial, nil, 0},
		{"bad item writes nothing", patch,
			`{"states":[{"generatedAt":1000,"payload":{"AC":{"on":true}}},{"generatedAt":2000,"payload":{"AC":1}}]}`,
			400, "INVALID_INPUT_DATA", initial, nil, 0},
		{"empty alias", patch, `{"states":[{"payload":{"":{}}}]}`, 400, "INVALID_INPUT_DATA", initial, nil, 0},
		{"negative generatedAt", patch, `{"states":[{"generatedAt":-1,"payload":{"AC":{}}}]}`, 400, "INVALID_INPUT_DATA", initial, nil, 0},
		{"single patch type", "application/vnd.kii.MultipleTraitStatePatch+json",
			`{"states":[{"payload":{"AC":{}}}]}`, 415, "UNSUPPORTED_MEDIA_TYPE", initial, nil, 0},
	}
	e := newEnv(t, withTriggers(""))
	admin := e.appToken(testApp, testAppKey)
	ctx := context.Background()
	n := 0
	for _, road := range []string{"REST", "MQTT"} {
		for _, tt := range tests {
			t.Run(road+"/"+tt.name, func(t *testing.T) {
				n++
				o := e.onboard(fmt.Sprintf("bulk-%d", n), "pw")
				base := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID
				check(t, e.do("PUT", base+"/states", initial, with(bearer(o.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
				check(t, e.do("POST", base+"/triggers",
					`{"predicate":{"eventSource":"STATES","condition":{"type":"eq","alias":"AC","field":"on","value":true},"triggersWhen":"CONDITIONS_ARE_SATISFIED"},`+
						`"triggersWhat":"COMMAND","command":{"issuer":"user:u","actions":[{"AC":[{"cool":true}]}]}}`,
					with(bearer(admin), "Content-Type", "application/json")...), 201, "")
				pushesBefore := len(e.pusher.Calls())

				switch road {
				case "REST":
					check(t, e.do("POST", base+"/states-bulk", tt.body, with(bearer(o.AccessToken), "Content-Type", tt.contentType)...), tt.status, tt.code)
				case "MQTT":
					caller := Caller{Broker: APIBroker, AppID: testApp, ThingID: o.ThingID}
					topic := "p/" + o.MQTTEndpoint.MQTTTopic + base + "/states-bulk"
					checkMQTT(t, e.mqtt(caller, topic, "POST\nContent-Type: "+tt.contentType+"\n\n"+tt.body), tt.status, tt.code)
				}

				r := e.do("GET", base+"/states", "", bearer(o.AccessToken)...)
				check(t, r, 200, "")
				var got, want any
				r.decode(t, &got)
				if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("state %s (-want +got):\n%s", r.body, diff)
				}
				hist, _, err := e.st.StateHistory(ctx, store.HistoryQuery{ThingID: o.ThingID, Alias: "AC", From: time.UnixMilli(0), To: time.UnixMilli(10_000)})
				if err != nil {
					t.Fatal(err)
				}
				var gotHist []entry
				for _, s := range hist {
					gotHist = append(gotHist, entry{s.ModifiedAt.UnixMilli(), string(s.Body)})
				}
				if diff := cmp.Diff(tt.history, gotHist, cmp.AllowUnexported(entry{})); diff != "" {
					t.Fatalf("history of AC (-want +got):\n%s", diff)
				}
				if got, want := len(e.pusher.Calls())-pushesBefore, tt.commands; got != want {
					t.Fatalf("trigger fired %d commands, want %d (one per item whose state has AC.on true)", got, want)
				}
			})
		}
	}
}
