package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestTriggersPerThingBound: a thing's triggers are bounded by
// MaxTriggersPerThing; one beyond is 409 TOO_MANY_TRIGGERS naming the limit
// and is not stored, other things are not affected, a delete frees a place,
// and concurrent creates never pass the bound.
func TestTriggersPerThingBound(t *testing.T) {
	const max = 3
	e := newEnv(t, func(c *Config) { c.MaxTriggersPerThing = max })
	admin := with(bearer(e.appToken(testApp, testAppKey)), "Content-Type", "application/json")
	a, b := e.onboard("v-a", "pw"), e.onboard("v-b", "pw")
	triggers := func(thingID string) string {
		return "/thing-if/apps/" + testApp + "/targets/thing:" + thingID + "/triggers"
	}
	body := `{"predicate":{"eventSource":"STATES","condition":{"type":"eq","field":"power","value":true},"triggersWhen":"CONDITION_FALSE_TO_TRUE"},` +
		`"command":{"issuer":"user:u","actions":[{"AC":[{"turnPower":false}]}]}}`
	count := func(thingID string) int {
		r := e.do("GET", triggers(thingID)+"?bestEffortLimit=100", "", admin...)
		check(t, r, 200, "")
		var page struct{ Triggers []triggerJSON }
		r.decode(t, &page)
		return len(page.Triggers)
	}

	var ids []string
	for range max {
		r := e.do("POST", triggers(a.ThingID), body, admin...)
		check(t, r, 201, "")
		var created struct{ TriggerID string }
		r.decode(t, &created)
		ids = append(ids, created.TriggerID)
	}
	r := e.do("POST", triggers(a.ThingID), body, admin...)
	check(t, r, http.StatusConflict, "TOO_MANY_TRIGGERS")
	if !strings.Contains(string(r.body), fmt.Sprintf("%d triggers", max)) {
		t.Fatalf("answer %s does not name the limit %d", r.body, max)
	}
	if got, want := count(a.ThingID), max; got != want {
		t.Fatalf("thing a has %d triggers, want %d", got, want)
	}
	check(t, e.do("POST", triggers(b.ThingID), body, admin...), 201, "")
	check(t, e.do("DELETE", triggers(a.ThingID)+"/"+ids[0], "", admin...), 204, "")
	check(t, e.do("POST", triggers(a.ThingID), body, admin...), 201, "")

	c := e.onboard("v-c", "pw")
	const n = 12
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = e.do("POST", triggers(c.ThingID), body, admin...).status })
	}
	wg.Wait()
	created := 0
	for i, code := range codes {
		switch code {
		case 201:
			created++
		case http.StatusConflict:
		default:
			t.Fatalf("concurrent create %d: status %d", i, code)
		}
	}
	if got := count(c.ThingID); got != max || created != max {
		t.Fatalf("concurrent creates: %d answered 201, %d stored; want %d of each", created, got, max)
	}
}

func TestTriggerBound(t *testing.T) {
	for _, tt := range []struct{ configured, want int }{{0, DefaultMaxTriggersPerThing}, {-1, 0}, {7, 7}} {
		if got := triggerBound(tt.configured); got != tt.want {
			t.Errorf("triggerBound(%d)=%d, want %d", tt.configured, got, tt.want)
		}
	}
}
