package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
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

func TestCompactObject(t *testing.T) {
	tests := []struct {
		name, body, want string
		err              error // nil: accepted; else errors.Is must hold, or any error when errAny
		errAny           bool
	}{
		{name: "compacted", body: ` { "a" : [ 1 , 2.5e3 ] , "b" : "x y" } `, want: `{"a":[1,2.5e3],"b":"x y"}`},
		{name: "largest float", body: `{"a":1.7976931348623157e308,"b":-1.7976931348623157e308}`, want: `{"a":1.7976931348623157e308,"b":-1.7976931348623157e308}`},
		{name: "underflow rounds to zero", body: `{"a":1e-400}`, want: `{"a":1e-400}`},
		{name: "long integer without exponent", body: `{"a":` + strings.Repeat("9", 300) + `}`, want: `{"a":` + strings.Repeat("9", 300) + `}`},
		{name: "overflow in a string is text", body: `{"a":"1e400","b\\\"1e400":"\\"}`, want: `{"a":"1e400","b\\\"1e400":"\\"}`},
		{name: "overflow", body: `{"a":1e400}`, err: ErrNumberRange},
		{name: "negative overflow", body: `{"a":-1E+400}`, err: ErrNumberRange},
		{name: "just above the largest float", body: `{"a":1.7976931348623159e308}`, err: ErrNumberRange},
		{name: "overflow nested in arrays", body: `{"a":[{"b":[0,1e309]}]}`, err: ErrNumberRange},
		{name: "overflow after a string with an escaped quote", body: `{"a":"\"","b":1e999}`, err: ErrNumberRange},
		{name: "310 digits", body: `{"a":` + strings.Repeat("9", 310) + `}`, err: ErrNumberRange},
		{name: "array", body: `[1]`, errAny: true},
		{name: "truncated", body: `{"a":`, errAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CompactObject(json.RawMessage(tt.body))
			switch {
			case tt.err != nil || tt.errAny:
				if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) {
					t.Fatalf("CompactObject(%s) = %s, %v; want error %v", tt.body, got, err, tt.err)
				}
			case err != nil:
				t.Fatalf("CompactObject(%s): %v", tt.body, err)
			case string(got) != tt.want:
				t.Fatalf("CompactObject(%s) = %s, want %s", tt.body, got, tt.want)
			}
		})
	}
	// The message names the number, shortened when long.
	_, err := CompactObject(json.RawMessage(`{"a":` + strings.Repeat("1", 400) + `}`))
	if got, want := err.Error(), "number "+strings.Repeat("1", maxNumberQuote)+"…"; !strings.HasPrefix(got, want) {
		t.Fatalf("error %q, want it to start %q", got, want)
	}
}

// FuzzCompactObject: whatever CompactObject accepts is a JSON object that
// decodes as its input does, with no insignificant space left; what it
// refuses is not a JSON object, or holds a number a float64 cannot (which
// is exactly what encoding/json cannot decode into a float64).
func FuzzCompactObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ` { "a" : [1, 2] } `, `{"a":1,"a":2}`, `[]`, `1`, `{`, `{"a":1} {}`, ``,
		`{"a":1e400}`, `{"a":"1e400"}`, `{"a":"\\\"","b":-1e-400}`, `{"a":[1.7976931348623159e308]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := CompactObject(body)
		var in map[string]any
		decodeErr := json.Unmarshal(body, &in)
		isObject := decodeErr == nil && in != nil
		if err != nil {
			if isObject {
				t.Fatalf("CompactObject(%q) refused a JSON object: %v", body, err)
			}
			if errors.Is(err, ErrNumberRange) {
				var rangeErr *json.UnmarshalTypeError
				if !errors.As(decodeErr, &rangeErr) || !strings.HasPrefix(rangeErr.Value, "number") {
					t.Fatalf("CompactObject(%q): %v, but encoding/json says %v", body, err, decodeErr)
				}
			}
			return
		}
		if !isObject {
			t.Fatalf("CompactObject(%q) = %q, accepting what is not a JSON object (%v)", body, got, decodeErr)
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

func TestCheckNumbers(t *testing.T) {
	tests := []struct {
		name, v string
		err     error // nil: accepted
		errAny  bool
	}{
		{name: "array", v: `[{"a":1.5},2e10]`},
		{name: "spaced array", v: ` [ 1e300 , { "b" : -2 } ] `},
		{name: "scalar", v: `17`},
		{name: "overflow in an array", v: `[{"a":{"succeeded":true,"data":{"t":1e400}}}]`, err: ErrNumberRange},
		{name: "spaced overflow", v: `[ 1e400 ]`, err: ErrNumberRange},
		{name: "scalar overflow", v: `-1e309`, err: ErrNumberRange},
		{name: "not JSON", v: `[1,`, errAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNumbers(json.RawMessage(tt.v))
			switch {
			case tt.err != nil && !errors.Is(err, tt.err), tt.errAny && err == nil:
				t.Fatalf("CheckNumbers(%s) = %v, want error %v", tt.v, err, tt.err)
			case tt.err == nil && !tt.errAny && err != nil:
				t.Fatalf("CheckNumbers(%s): %v", tt.v, err)
			}
		})
	}
}
