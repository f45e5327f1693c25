package thing_test

import (
	"encoding/json"
	"testing"

	"github.com/thingif/thingif/thing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		want    []thing.Action // nil: an error is expected
	}{
		{"v1", `{"schema":"S","schemaVersion":1,"commandID":"c","actions":[{"turnPower":{"power":true}},{"setFanSpeed":{"fanSpeed":5}}]}`,
			[]thing.Action{{Name: "turnPower", Params: json.RawMessage(`{"power":true}`)}, {Name: "setFanSpeed", Params: json.RawMessage(`{"fanSpeed":5}`)}}},
		{"v1 two actions in one element keep their order", `{"schema":"S","schemaVersion":1,"commandID":"c","actions":[{"z":{},"a":{}}]}`,
			[]thing.Action{{Name: "z", Params: json.RawMessage(`{}`)}, {Name: "a", Params: json.RawMessage(`{}`)}}},
		{"v2", `{"target":"thing:th.1","commandID":"c","actions":[{"AC":[{"turnPower":true},{"setTemp":25}]},{"Fan":[{"speed":"hi"}]}]}`,
			[]thing.Action{{Alias: "AC", Name: "turnPower", Params: json.RawMessage(`true`)}, {Alias: "AC", Name: "setTemp", Params: json.RawMessage(`25`)},
				{Alias: "Fan", Name: "speed", Params: json.RawMessage(`"hi"`)}}},
		{"no commandID", `{"schema":"S","actions":[]}`, nil},
		{"actions not an array", `{"commandID":"c","actions":{}}`, nil},
		{"v2 alias not an array", `{"commandID":"c","actions":[{"AC":{"turnPower":true}}]}`, nil},
		{"element not an object", `{"commandID":"c","schema":"S","actions":[1]}`, nil},
		{"not JSON", `200\r\n\r\n{}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := thing.ParseCommand([]byte(tc.payload))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("ParseCommand succeeded: %+v", cmd)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCommand: %v", err)
			}
			if !actionsEqual(tc.want, cmd.Actions) {
				t.Fatalf("actions %+v, want %+v", cmd.Actions, tc.want)
			}
		})
	}
}

// FuzzParseCommand: whatever parses, the results built for it are valid
// JSON with one result per action.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"schema":"S","schemaVersion":1,"commandID":"c","actions":[{"turnPower":{"power":true}},{"b":{}}]}`,
		`{"commandID":"c","actions":[{"AC":[{"turnPower":true},{"setTemp":25}]},{"Fan":[{"speed":1}]}]}`,
		`{"commandID":"c","actions":[{"AC":[],"B":[{"x":null}]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		cmd, err := thing.ParseCommand(payload)
		if err != nil {
			return
		}
		res := make([]thing.Result, len(cmd.Actions))
		body, err := thing.ActionResults(cmd, res)
		if err != nil {
			t.Fatalf("ActionResults: %v", err)
		}
		var parsed struct {
			ActionResults []map[string]json.RawMessage `json:"actionResults"`
		}
		if err := json.Unmarshal(body, &parsed); err != nil {
			t.Fatalf("results %s: %v", body, err)
		}
		n := 0
		for _, elem := range parsed.ActionResults {
			for _, v := range elem {
				if cmd.Trait() {
					var list []json.RawMessage
					if err := json.Unmarshal(v, &list); err != nil {
						t.Fatalf("results %s: %v", body, err)
					}
					n += len(list)
				} else {
					n++
				}
			}
		}
		if n != len(cmd.Actions) {
			t.Fatalf("%d results for %d actions: %s", n, len(cmd.Actions), body)
		}
	})
}
