package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestMergeObject(t *testing.T) {
	tests := []struct {
		name  string
		old   string
		patch string
		want  string
	}{
		{"empty both", `{}`, `{}`, `{}`},
		{"add to empty", `{}`, `{"power":true}`, `{"power":true}`},
		{"keep old", `{"power":true}`, `{}`, `{"power":true}`},
		{"patch wins", `{"power":true,"temp":20}`, `{"temp":25}`, `{"power":true,"temp":25}`},
		{"new fields appended in patch order", `{"a":1}`, `{"c":3,"b":2}`, `{"a":1,"c":3,"b":2}`},
		{"shallow: nested objects replaced", `{"o":{"x":1,"y":2}}`, `{"o":{"x":9}}`, `{"o":{"x":9}}`},
		{"null replaces", `{"a":1}`, `{"a":null}`, `{"a":null}`},
		{"whitespace compacted", " { \"a\" : [ 1 , 2 ] } ", "{ \"b\" : { } }", `{"a":[1,2],"b":{}}`},
		{"duplicate name keeps last", `{"a":1,"a":2}`, `{"b":1}`, `{"a":2,"b":1}`},
		{"html kept", `{"<a>":"&"}`, `{}`, `{"<a>":"&"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergeObject(json.RawMessage(tt.old), json.RawMessage(tt.patch))
			if err != nil {
				t.Fatalf("MergeObject(%s, %s): %v", tt.old, tt.patch, err)
			}
			if string(got) != tt.want {
				t.Fatalf("MergeObject(%s, %s)=%s, want %s", tt.old, tt.patch, got, tt.want)
			}
		})
	}
}

func TestMergeObjectErrors(t *testing.T) {
	tests := []struct {
		name  string
		old   string
		patch string
	}{
		{"old nil", "", `{}`},
		{"patch nil", `{}`, ""},
		{"old array", `[1]`, `{}`},
		{"patch string", `{}`, `"x"`},
		{"patch number", `{}`, `1`},
		{"patch null", `{}`, `null`},
		{"old truncated", `{"a":`, `{}`},
		{"patch trailing data", `{}`, `{}{}`},
		{"old bad value", `{"a":tru}`, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var old, patch json.RawMessage
			if tt.old != "" {
				old = json.RawMessage(tt.old)
			}
			if tt.patch != "" {
				patch = json.RawMessage(tt.patch)
			}
			if got, err := MergeObject(old, patch); err == nil {
				t.Fatalf("MergeObject(%q, %q)=%s, want error", tt.old, tt.patch, got)
			}
		})
	}
}

func FuzzMergeObject(f *testing.F) {
	f.Add([]byte(`{"a":1}`), []byte(`{"b":2}`))
	f.Add([]byte(`{}`), []byte(`{"a":{"b":[1,2,3]}}`))
	f.Add([]byte(`[]`), []byte(`{}`))
	f.Add([]byte(`{"a":"\u00e9"}`), []byte(`{"a":null}`))
	f.Fuzz(func(t *testing.T, old, patch []byte) {
		got, err := MergeObject(old, patch)
		if err != nil {
			return
		}
		if !json.Valid(got) {
			t.Fatalf("MergeObject(%q, %q)=%q: not valid JSON", old, patch, got)
		}
		var gotMap, oldMap, patchMap map[string]json.RawMessage
		if err := json.Unmarshal(got, &gotMap); err != nil {
			t.Fatalf("result %q is not an object: %v", got, err)
		}
		if err := json.Unmarshal(old, &oldMap); err != nil {
			t.Fatalf("old %q accepted but not an object: %v", old, err)
		}
		if err := json.Unmarshal(patch, &patchMap); err != nil {
			t.Fatalf("patch %q accepted but not an object: %v", patch, err)
		}
		for k := range oldMap {
			if _, ok := gotMap[k]; !ok {
				t.Fatalf("field %q of old missing from %q", k, got)
			}
		}
		for k, v := range patchMap {
			if !jsonEqual(t, gotMap[k], v) {
				t.Fatalf("field %q: got %s, want patch value %s", k, gotMap[k], v)
			}
		}
		if len(gotMap) > len(oldMap)+len(patchMap) {
			t.Fatalf("result %q has more fields than old and patch together", got)
		}
	})
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// FuzzCompactObject: whatever CompactObject accepts is a JSON object that
// decodes as its input does, with no insignificant space left; what it
// refuses is not a JSON object.
func FuzzCompactObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` { "a" : [1, 2] } `, `{"a":1,"a":2}`, `[]`, `1`, `{`, `{"a":1} {}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := CompactObject(body)
		var in map[string]any
		isObject := json.Unmarshal(body, &in) == nil && in != nil
		if err != nil {
			if isObject {
				t.Fatalf("CompactObject(%q) refused a JSON object: %v", body, err)
			}
			return
		}
		if !isObject {
			t.Fatalf("CompactObject(%q) = %q, accepting what is not a JSON object", body, got)
		}
		var out map[string]any
		if err := json.Unmarshal(got, &out); err != nil || !reflect.DeepEqual(in, out) {
			t.Fatalf("CompactObject(%q) = %q: decodes as %v (%v), want %v", body, got, out, err, in)
		}
		var again bytes.Buffer
		if err := json.Compact(&again, got); err != nil || !bytes.Equal(again.Bytes(), got) {
			t.Fatalf("CompactObject(%q) = %q is not compact", body, got)
		}
	})
}
