package trigger

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/thingif/thingif/internal/store"
)

func TestConditionEval(t *testing.T) {
	states := States{
		store.V1Alias: {"power": true, "temp": 25.0, "mode": "cool", "nested": map[string]any{"level": 3.0}, "none": nil},
		"AC":          {"power": false, "temp": 30.0},
	}
	tests := []struct {
		name string
		cond string
		want bool
	}{
		{"eq bool", `{"type":"eq","field":"power","value":true}`, true},
		{"eq bool false", `{"type":"eq","field":"power","value":false}`, false},
		{"eq number", `{"type":"eq","field":"temp","value":25}`, true},
		{"eq number as float", `{"type":"eq","field":"temp","value":25.0}`, true},
		{"eq string", `{"type":"eq","field":"mode","value":"cool"}`, true},
		{"eq string vs number", `{"type":"eq","field":"mode","value":25}`, false},
		{"eq null", `{"type":"eq","field":"none","value":null}`, true},
		{"eq missing field", `{"type":"eq","field":"nope","value":null}`, false},
		{"eq alias", `{"type":"eq","alias":"AC","field":"power","value":false}`, true},
		{"eq unknown alias", `{"type":"eq","alias":"X","field":"power","value":false}`, false},
		{"eq dotted path", `{"type":"eq","field":"nested.level","value":3}`, true},
		{"range inside", `{"type":"range","field":"temp","lowerLimit":20,"upperLimit":30}`, true},
		{"range lower included", `{"type":"range","field":"temp","lowerLimit":25}`, true},
		{"range lower excluded", `{"type":"range","field":"temp","lowerLimit":25,"lowerIncluded":false}`, false},
		{"range upper excluded", `{"type":"range","alias":"AC","field":"temp","upperLimit":30,"upperIncluded":false}`, false},
		{"range upper included", `{"type":"range","alias":"AC","field":"temp","upperLimit":30}`, true},
		{"range above", `{"type":"range","field":"temp","upperLimit":24.5}`, false},
		{"range not a number", `{"type":"range","field":"mode","lowerLimit":0}`, false},
		{"not", `{"type":"not","clause":{"type":"eq","field":"power","value":true}}`, false},
		{"not missing", `{"type":"not","clause":{"type":"eq","field":"nope","value":1}}`, true},
		{"and true", `{"type":"and","clauses":[{"type":"eq","field":"power","value":true},{"type":"range","field":"temp","lowerLimit":20}]}`, true},
		{"and false", `{"type":"and","clauses":[{"type":"eq","field":"power","value":true},{"type":"range","field":"temp","lowerLimit":26}]}`, false},
		{"or true", `{"type":"or","clauses":[{"type":"eq","field":"power","value":false},{"type":"eq","field":"mode","value":"cool"}]}`, true},
		{"or false", `{"type":"or","clauses":[{"type":"eq","field":"power","value":false},{"type":"eq","field":"mode","value":"heat"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCondition([]byte(tt.cond))
			if err != nil {
				t.Fatalf("ParseCondition(%s): %v", tt.cond, err)
			}
			if got := c.Eval(states); got != tt.want {
				t.Fatalf("Eval(%s)=%v, want %v", tt.cond, got, tt.want)
			}
		})
	}
}

func TestParsePredicateErrors(t *testing.T) {
	tests := []struct{ name, pred string }{
		{"not an object", `[]`},
		{"no event source", `{"condition":{"type":"eq","field":"a","value":1},"triggersWhen":"CONDITION_CHANGED"}`},
		{"unknown event source", `{"eventSource":"CLOCK"}`},
		{"unknown field", `{"eventSource":"STATES","condition":{"type":"eq","field":"a","value":1},"triggersWhen":"CONDITION_CHANGED","extra":1}`},
		{"bad triggersWhen", `{"eventSource":"STATES","condition":{"type":"eq","field":"a","value":1},"triggersWhen":"ALWAYS"}`},
		{"no condition", `{"eventSource":"STATES","triggersWhen":"CONDITION_CHANGED"}`},
		{"eq without value", `{"eventSource":"STATES","condition":{"type":"eq","field":"a"},"triggersWhen":"CONDITION_CHANGED"}`},
		{"eq object value", `{"eventSource":"STATES","condition":{"type":"eq","field":"a","value":{}},"triggersWhen":"CONDITION_CHANGED"}`},
		{"eq without field", `{"eventSource":"STATES","condition":{"type":"eq","value":1},"triggersWhen":"CONDITION_CHANGED"}`},
		{"range without limits", `{"eventSource":"STATES","condition":{"type":"range","field":"a"},"triggersWhen":"CONDITION_CHANGED"}`},
		{"range inverted", `{"eventSource":"STATES","condition":{"type":"range","field":"a","lowerLimit":5,"upperLimit":1},"triggersWhen":"CONDITION_CHANGED"}`},
		{"range included without limit", `{"eventSource":"STATES","condition":{"type":"range","field":"a","lowerLimit":1,"upperIncluded":true},"triggersWhen":"CONDITION_CHANGED"}`},
		{"not without clause", `{"eventSource":"STATES","condition":{"type":"not"},"triggersWhen":"CONDITION_CHANGED"}`},
		{"and empty", `{"eventSource":"STATES","condition":{"type":"and","clauses":[]},"triggersWhen":"CONDITION_CHANGED"}`},
		{"or bad clause", `{"eventSource":"STATES","condition":{"type":"or","clauses":[{"type":"gt"}]},"triggersWhen":"CONDITION_CHANGED"}`},
		{"unknown type", `{"eventSource":"STATES","condition":{"type":"like","field":"a","value":1},"triggersWhen":"CONDITION_CHANGED"}`},
		{"states with schedule", `{"eventSource":"STATES","condition":{"type":"eq","field":"a","value":1},"triggersWhen":"CONDITION_CHANGED","schedule":"* * * * *"}`},
		{"schedule missing", `{"eventSource":"SCHEDULE"}`},
		{"schedule bad", `{"eventSource":"SCHEDULE","schedule":"61 * * * *"}`},
		{"schedule four fields", `{"eventSource":"SCHEDULE","schedule":"* * * *"}`},
		{"schedule with condition", `{"eventSource":"SCHEDULE","schedule":"* * * * *","condition":{"type":"eq","field":"a","value":1}}`},
		{"schedule once missing", `{"eventSource":"SCHEDULE_ONCE"}`},
		{"schedule once negative", `{"eventSource":"SCHEDULE_ONCE","scheduleAt":-5}`},
		{"too deep", `{"eventSource":"STATES","triggersWhen":"CONDITION_CHANGED","condition":` + deep(20) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePredicate([]byte(tt.pred)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParsePredicate(%s) err=%v, want ErrInvalid", tt.pred, err)
			}
		})
	}
}

func deep(n int) string {
	s := `{"type":"eq","field":"a","value":1}`
	for range n {
		s = `{"type":"not","clause":` + s + `}`
	}
	return s
}

func TestParsePredicate(t *testing.T) {
	p, err := ParsePredicate([]byte(`{"eventSource":"SCHEDULE_ONCE","scheduleAt":1750000000000}`))
	if err != nil || p.ScheduleAt.UnixMilli() != 1750000000000 {
		t.Fatalf("SCHEDULE_ONCE: %+v, %v", p, err)
	}
	p, err = ParsePredicate([]byte(`{"eventSource":"SCHEDULE","schedule":"*/15 9-17 * * 1-5"}`))
	if err != nil || p.Schedule == nil || p.Schedule.String() != "*/15 9-17 * * 1-5" {
		t.Fatalf("SCHEDULE: %+v, %v", p, err)
	}
	p, err = ParsePredicate([]byte(`{"eventSource":"STATES","condition":{"type":"eq","field":"a","value":1},"triggersWhen":"CONDITION_FALSE_TO_TRUE"}`))
	if err != nil || p.Condition == nil || p.TriggersWhen != WhenFalseToTrue {
		t.Fatalf("STATES: %+v, %v", p, err)
	}
}

func TestFires(t *testing.T) {
	never := store.TriggerRun{}
	wasFalse := store.TriggerRun{Evaluated: true, Satisfied: false}
	wasTrue := store.TriggerRun{Evaluated: true, Satisfied: true}
	tests := []struct {
		when string
		prev store.TriggerRun
		now  bool
		want bool
	}{
		{WhenSatisfied, never, true, true},
		{WhenSatisfied, wasTrue, true, true},
		{WhenSatisfied, wasTrue, false, false},
		{WhenFalseToTrue, never, true, true},
		{WhenFalseToTrue, wasFalse, true, true},
		{WhenFalseToTrue, wasTrue, true, false},
		{WhenFalseToTrue, wasTrue, false, false},
		{WhenFalseToTrue, never, false, false},
		{WhenChanged, never, true, true},
		{WhenChanged, never, false, false},
		{WhenChanged, wasFalse, true, true},
		{WhenChanged, wasTrue, false, true},
		{WhenChanged, wasTrue, true, false},
		{WhenChanged, wasFalse, false, false},
	}
	for _, tt := range tests {
		if got := Fires(tt.when, tt.prev, tt.now); got != tt.want {
			t.Errorf("Fires(%s, %+v, %v)=%v, want %v", tt.when, tt.prev, tt.now, got, tt.want)
		}
	}
}

func FuzzParsePredicate(f *testing.F) {
	for _, s := range []string{
		`{"eventSource":"STATES","condition":{"type":"and","clauses":[{"type":"eq","field":"a","value":1},{"type":"range","field":"b","lowerLimit":1}]},"triggersWhen":"CONDITION_CHANGED"}`,
		`{"eventSource":"SCHEDULE","schedule":"*/5 1,2,3 1-31/2 * 7"}`,
		`{"eventSource":"SCHEDULE_ONCE","scheduleAt":1}`,
		`{"eventSource":"STATES","condition":{"type":"not","clause":{"type":"eq","field":"x.y","value":null}},"triggersWhen":"CONDITIONS_ARE_SATISFIED"}`,
	} {
		f.Add([]byte(s))
	}
	states := States{"": {"a": 1.0, "b": 2.0, "x": map[string]any{"y": nil}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePredicate(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		switch {
		case p.Condition != nil:
			p.Condition.Eval(states)
		case p.Schedule != nil:
			p.Schedule.Next(p.ScheduleAt)
		}
	})
}

// TestQueryClauseMatch: history query clauses, in the JSON thing-if's
// SDKs send, evaluated on one entry (its object and its time).
func TestQueryClauseMatch(t *testing.T) {
	obj := map[string]any{"power": true, "t": 30.0, "mode": "cool", "nested": map[string]any{"level": 3.0}}
	const at = 1_750_000_000_000
	tests := []struct {
		name, clause string
		want         bool
	}{
		{"all", `{"type":"all"}`, true},
		{"time range inside", `{"type":"withinTimeRange","lowerLimit":1749999999000,"upperLimit":1750000001000}`, true},
		{"time range includes its limits", `{"type":"withinTimeRange","lowerLimit":1750000000000,"upperLimit":1750000000000}`, true},
		{"time range before", `{"type":"withinTimeRange","lowerLimit":1750000000001,"upperLimit":1750000009000}`, false},
		{"eq", `{"type":"eq","field":"mode","value":"cool"}`, true},
		{"eq number", `{"type":"eq","field":"t","value":30}`, true},
		{"eq dotted path", `{"type":"eq","field":"nested.level","value":3}`, true},
		{"not eq (the SDK's NotEquals)", `{"type":"not","clause":{"type":"eq","field":"power","value":true}}`, false},
		{"range greaterThan excludes its limit", `{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":false}`, false},
		{"range greaterThanEquals", `{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":true}`, true},
		{"range lowerIncluded defaults to true", `{"type":"range","field":"t","lowerLimit":30}`, true},
		{"range lessThan", `{"type":"range","field":"t","upperLimit":30,"upperIncluded":false}`, false},
		{"range both", `{"type":"range","field":"t","upperLimit":31,"upperIncluded":true,"lowerLimit":29,"lowerIncluded":true}`, true},
		{"range missing field", `{"type":"range","field":"nope","lowerLimit":0}`, false},
		{"range on a string", `{"type":"range","field":"mode","lowerLimit":0}`, false},
		{"grouped: and with the time range last", `{"type":"and","clauses":[{"type":"range","field":"t","lowerLimit":29,"lowerIncluded":false},{"type":"withinTimeRange","lowerLimit":1749999999000,"upperLimit":1750000001000}]}`, true},
		{"grouped: and outside the time range", `{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":1,"upperLimit":2},{"type":"all"}]}`, false},
		{"time range inside or", `{"type":"or","clauses":[{"type":"eq","field":"power","value":false},{"type":"withinTimeRange","lowerLimit":1749999999000,"upperLimit":1750000001000}]}`, true},
		{"time range inside not", `{"type":"not","clause":{"type":"withinTimeRange","lowerLimit":1749999999000,"upperLimit":1750000001000}}`, false},
		{"or false", `{"type":"or","clauses":[{"type":"eq","field":"power","value":false},{"type":"eq","field":"mode","value":"heat"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseQueryClause([]byte(tt.clause))
			if err != nil {
				t.Fatalf("ParseQueryClause(%s): %v", tt.clause, err)
			}
			if got := c.Match(obj, at); got != tt.want {
				t.Fatalf("Match(%s)=%v, want %v", tt.clause, got, tt.want)
			}
		})
	}
}

// TestQueryClauseOnlyTime: OnlyTime holds for the clauses that test the
// entry's time and nothing else, and then TimeRange says which entries
// match: every entry within it (every entry when it has none).
func TestQueryClauseOnlyTime(t *testing.T) {
	tr := func(lo, hi int) string {
		return fmt.Sprintf(`{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}`, lo, hi)
	}
	eq := `{"type":"eq","field":"t","value":1}`
	tests := []struct {
		name, clause string
		want         bool
	}{
		{"all", `{"type":"all"}`, true},
		{"time range", tr(10, 20), true},
		{"and of time ranges and all", `{"type":"and","clauses":[` + tr(10, 20) + `,{"type":"all"},` + tr(15, 30) + `]}`, true},
		{"nested and", `{"type":"and","clauses":[{"type":"and","clauses":[` + tr(10, 20) + `]},` + tr(12, 30) + `]}`, true},
		{"disjoint time ranges", `{"type":"and","clauses":[` + tr(10, 20) + `,` + tr(30, 40) + `]}`, true},
		{"eq", eq, false},
		{"and with a field", `{"type":"and","clauses":[` + tr(10, 20) + `,` + eq + `]}`, false},
		{"or of time ranges", `{"type":"or","clauses":[` + tr(10, 20) + `,` + tr(30, 40) + `]}`, false},
		{"not time range", `{"type":"not","clause":` + tr(10, 20) + `}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseQueryClause([]byte(tt.clause))
			if err != nil {
				t.Fatalf("ParseQueryClause(%s): %v", tt.clause, err)
			}
			if got := c.OnlyTime(); got != tt.want {
				t.Fatalf("OnlyTime(%s)=%v, want %v", tt.clause, got, tt.want)
			}
			if !tt.want {
				return
			}
			lo, hi, ok := c.TimeRange()
			for at := int64(0); at <= 50; at++ {
				in := !ok || (lo <= at && at <= hi)
				if got := c.Match(map[string]any{"t": 1.0}, at); got != in {
					t.Fatalf("Match at %d = %v, TimeRange %d..%d (%v) says %v", at, got, lo, hi, ok, in)
				}
			}
		})
	}
}

// TestQueryClauseSameAsTrigger: a clause that is also a trigger condition
// evaluates alike on an entry and on a v1 state.
func TestQueryClauseSameAsTrigger(t *testing.T) {
	obj := map[string]any{"a": 1.0, "b": "x"}
	for _, s := range []string{
		`{"type":"eq","field":"a","value":1}`,
		`{"type":"and","clauses":[{"type":"range","field":"a","upperLimit":1,"upperIncluded":false},{"type":"eq","field":"b","value":"x"}]}`,
		`{"type":"or","clauses":[{"type":"not","clause":{"type":"eq","field":"b","value":"x"}},{"type":"range","field":"a","lowerLimit":1}]}`,
	} {
		q, err := ParseQueryClause([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCondition([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := q.Match(obj, 0), c.Eval(States{store.V1Alias: obj}); got != want {
			t.Errorf("%s: Match=%v, Eval=%v", s, got, want)
		}
	}
}

func TestParseQueryClauseErrors(t *testing.T) {
	many := `{"type":"or","clauses":[` + strings.TrimSuffix(strings.Repeat(`{"type":"all"},`, maxConditionClauses), ",") + `]}`
	tests := []struct{ name, clause, want string }{
		{"unknown type", `{"type":"like","field":"a","value":1}`, "type must be all, withinTimeRange"},
		{"no type", `{"field":"a"}`, "type must be"},
		{"unknown field", `{"type":"all","x":1}`, `unknown field "x"`},
		{"all with a field", `{"type":"all","field":"a"}`, "all takes no other field"},
		{"time range without upperLimit", `{"type":"withinTimeRange","lowerLimit":1}`, "needs upperLimit"},
		{"time range without lowerLimit", `{"type":"withinTimeRange","upperLimit":1}`, "needs lowerLimit"},
		{"time range inverted", `{"type":"withinTimeRange","lowerLimit":5,"upperLimit":1}`, "lowerLimit is above upperLimit"},
		{"time range negative", `{"type":"withinTimeRange","lowerLimit":-1,"upperLimit":1}`, "whole number of ms"},
		{"time range fraction", `{"type":"withinTimeRange","lowerLimit":1.5,"upperLimit":2}`, "whole number of ms"},
		{"time range string", `{"type":"withinTimeRange","lowerLimit":"1","upperLimit":2}`, "lowerLimit"},
		{"time range with field", `{"type":"withinTimeRange","field":"t","lowerLimit":1,"upperLimit":2}`, "lowerLimit and upperLimit only"},
		{"eq without value", `{"type":"eq","field":"a"}`, "eq takes field and value"},
		{"eq array value", `{"type":"eq","field":"a","value":[1]}`, "eq compares"},
		{"range without limits", `{"type":"range","field":"a"}`, "range needs lowerLimit or upperLimit"},
		{"range limit a string", `{"type":"range","field":"a","lowerLimit":"1"}`, "lowerLimit"},
		{"range included not a boolean", `{"type":"range","field":"a","lowerLimit":1,"lowerIncluded":"yes"}`, "lowerIncluded"},
		{"alias", `{"type":"eq","alias":"AC","field":"a","value":1}`, "alias is not taken"},
		{"and empty", `{"type":"and","clauses":[]}`, "non-empty clauses"},
		{"and bad member", `{"type":"and","clauses":[{"type":"all"},{"type":"gt"}]}`, "clause.clauses[1]"},
		{"not without clause", `{"type":"not"}`, "not takes one clause"},
		{"too deep", deep(20), "nested more than"},
		{"too many clauses", many, "more than 200 clauses"},
		{"not an object", `[]`, "must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQueryClause([]byte(tt.clause))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseQueryClause(%.80s) err=%v, want ErrInvalid naming %q", tt.clause, err, tt.want)
			}
		})
	}
	// The query-only types are not trigger conditions.
	for _, s := range []string{`{"type":"all"}`, `{"type":"withinTimeRange","lowerLimit":1,"upperLimit":2}`} {
		if _, err := ParseCondition([]byte(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCondition(%s) err=%v, want ErrInvalid", s, err)
		}
	}
	// 200 clauses are fine, in triggers too.
	ok := `{"type":"or","clauses":[` + strings.TrimSuffix(strings.Repeat(`{"type":"eq","field":"a","value":1},`, maxConditionClauses-1), ",") + `]}`
	if _, err := ParseCondition([]byte(ok)); err != nil {
		t.Errorf("ParseCondition of %d clauses: %v", maxConditionClauses, err)
	}
	if _, err := ParseCondition([]byte(strings.Replace(ok, `{"type":"eq"`, `{"type":"eq","field":"b","value":2},{"type":"eq"`, 1))); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseCondition of %d clauses: %v, want ErrInvalid", maxConditionClauses+1, err)
	}
}

func TestTimeRange(t *testing.T) {
	tests := []struct {
		name, clause string
		from, to     int64
		ok           bool
	}{
		{"all", `{"type":"all"}`, 0, 0, false},
		{"itself", `{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20}`, 10, 20, true},
		{"in and, last", `{"type":"and","clauses":[{"type":"eq","field":"a","value":1},{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20}]}`, 10, 20, true},
		{"two in and intersect", `{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20},{"type":"withinTimeRange","lowerLimit":15,"upperLimit":30}]}`, 15, 20, true},
		{"in or narrows nothing", `{"type":"or","clauses":[{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20},{"type":"all"}]}`, 0, 0, false},
		{"in not narrows nothing", `{"type":"not","clause":{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20}}`, 0, 0, false},
		{"nested and", `{"type":"and","clauses":[{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":10,"upperLimit":20}]}]}`, 10, 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseQueryClause([]byte(tt.clause))
			if err != nil {
				t.Fatal(err)
			}
			from, to, ok := c.TimeRange()
			if from != tt.from || to != tt.to || ok != tt.ok {
				t.Fatalf("TimeRange()=%d, %d, %v; want %d, %d, %v", from, to, ok, tt.from, tt.to, tt.ok)
			}
		})
	}
}

func FuzzParseQueryClause(f *testing.F) {
	for _, s := range []string{
		`{"type":"and","clauses":[{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":false},{"type":"withinTimeRange","lowerLimit":1,"upperLimit":2}]}`,
		`{"type":"or","clauses":[{"type":"not","clause":{"type":"eq","field":"a","value":"x"}},{"type":"all"}]}`,
		`{"type":"withinTimeRange","lowerLimit":0,"upperLimit":9007199254740992}`,
	} {
		f.Add([]byte(s))
	}
	obj := map[string]any{"t": 31.0, "a": "x"}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseQueryClause(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		c.Match(obj, 1)
		if from, to, ok := c.TimeRange(); ok && from > to && c.Match(obj, from) {
			t.Fatalf("empty time range %d..%d matched", from, to)
		}
	})
}
