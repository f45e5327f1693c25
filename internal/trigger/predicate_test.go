package trigger

import (
	"errors"
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
