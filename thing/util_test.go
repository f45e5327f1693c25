package thing_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/thingif/thingif/thing"
)

func jsonEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

func actionsEqual(want, got []thing.Action) bool {
	if len(want) != len(got) {
		return false
	}
	for i := range want {
		if want[i].Alias != got[i].Alias || want[i].Name != got[i].Name || !jsonEqual(want[i].Params, got[i].Params) {
			return false
		}
	}
	return true
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
