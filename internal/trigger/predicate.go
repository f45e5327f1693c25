// Package trigger runs the triggers of things: it parses and evaluates their
// predicates (STATES conditions with the three triggersWhen modes, SCHEDULE
// cron expressions and SCHEDULE_ONCE times) and performs their actions: a
// command to the target thing, or an HTTP POST to the configured webhook in
// place of Kii's hosted server code.
//
// Evaluation of STATES triggers happens synchronously after each state
// write (Engine.StateChanged); schedules run in Engine.Run with an
// injectable clock. What a trigger last saw is kept in the store
// (store.TriggerRun), so transitions and schedules survive a restart.
package trigger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// Sentinel errors. Parse errors wrap ErrInvalid with a message naming the
// field.
var (
	// ErrInvalid is wrapped by every predicate, condition, schedule and
	// action that cannot be used.
	ErrInvalid = errors.New("invalid trigger")
	// ErrInvalidConfig is returned by New for a Config that cannot work.
	ErrInvalidConfig = errors.New("invalid trigger config")
)

// The triggersWhen modes of STATES predicates.
const (
	// WhenSatisfied fires on every state change where the condition holds.
	WhenSatisfied = "CONDITIONS_ARE_SATISFIED"
	// WhenChanged fires on every state change that flips the condition.
	WhenChanged = "CONDITION_CHANGED"
	// WhenFalseToTrue fires when the condition goes from false to true.
	WhenFalseToTrue = "CONDITION_FALSE_TO_TRUE"
)

// Predicate is a parsed trigger predicate.
type Predicate struct {
	// EventSource is store.EventStates, store.EventSchedule or
	// store.EventScheduleOnce.
	EventSource string
	// Condition and TriggersWhen are set for STATES.
	Condition    *Condition
	TriggersWhen string
	// Schedule is set for SCHEDULE.
	Schedule *Schedule
	// ScheduleAt is set for SCHEDULE_ONCE.
	ScheduleAt time.Time
}

// predicateJSON is the wire form of a predicate.
type predicateJSON struct {
	EventSource  string          `json:"eventSource"`
	Condition    json.RawMessage `json:"condition"`
	TriggersWhen string          `json:"triggersWhen"`
	Schedule     *string         `json:"schedule"`
	ScheduleAt   *int64          `json:"scheduleAt"`
}

// ParsePredicate parses and checks a predicate.
func ParsePredicate(b []byte) (Predicate, error) {
	var pj predicateJSON
	if err := strictDecode(b, &pj); err != nil {
		return Predicate{}, fmt.Errorf("%w: predicate: %w", ErrInvalid, err)
	}
	p := Predicate{EventSource: pj.EventSource}
	switch pj.EventSource {
	case store.EventStates:
		if pj.Schedule != nil || pj.ScheduleAt != nil {
			return Predicate{}, fmt.Errorf("%w: predicate: schedule and scheduleAt belong to schedule predicates", ErrInvalid)
		}
		switch pj.TriggersWhen {
		case WhenSatisfied, WhenChanged, WhenFalseToTrue:
			p.TriggersWhen = pj.TriggersWhen
		default:
			return Predicate{}, fmt.Errorf("%w: predicate: triggersWhen must be %s, %s or %s", ErrInvalid, WhenSatisfied, WhenChanged, WhenFalseToTrue)
		}
		c, err := ParseCondition(pj.Condition)
		if err != nil {
			return Predicate{}, err
		}
		p.Condition = &c
	case store.EventSchedule:
		if pj.Schedule == nil {
			return Predicate{}, fmt.Errorf("%w: predicate: schedule is required", ErrInvalid)
		}
		if pj.Condition != nil || pj.TriggersWhen != "" || pj.ScheduleAt != nil {
			return Predicate{}, fmt.Errorf("%w: predicate: a SCHEDULE predicate has only schedule", ErrInvalid)
		}
		s, err := ParseSchedule(*pj.Schedule)
		if err != nil {
			return Predicate{}, err
		}
		p.Schedule = &s
	case store.EventScheduleOnce:
		if pj.ScheduleAt == nil || *pj.ScheduleAt <= 0 {
			return Predicate{}, fmt.Errorf("%w: predicate: scheduleAt (ms since the epoch) is required", ErrInvalid)
		}
		if pj.Condition != nil || pj.TriggersWhen != "" || pj.Schedule != nil {
			return Predicate{}, fmt.Errorf("%w: predicate: a SCHEDULE_ONCE predicate has only scheduleAt", ErrInvalid)
		}
		p.ScheduleAt = time.UnixMilli(*pj.ScheduleAt).UTC()
	default:
		return Predicate{}, fmt.Errorf("%w: predicate: eventSource must be STATES, SCHEDULE or SCHEDULE_ONCE", ErrInvalid)
	}
	return p, nil
}

// strictDecode decodes one JSON object into v, refusing unknown fields.
func strictDecode(b []byte, v any) error {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return errors.New("must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return errors.New("must hold one JSON object")
	}
	return nil
}

// Condition types.
const (
	condEq    = "eq"
	condNot   = "not"
	condRange = "range"
	condAnd   = "and"
	condOr    = "or"
)

// Condition is a STATES condition: a comparison of one state field, or a
// combination of conditions.
type Condition struct {
	Type string
	// Alias names the trait alias whose state holds Field (v2); empty for a
	// v1 state.
	Alias string
	// Field is the state field: a top-level key, or a dotted path into
	// nested objects.
	Field string
	// Value is the eq operand.
	Value any
	// Range bounds; nil when open.
	Lower, Upper                 *float64
	LowerIncluded, UpperIncluded bool
	// Clauses are the operands of and, or (any number) and not (one).
	Clauses []Condition
}

// conditionJSON is the wire form of a condition.
type conditionJSON struct {
	Type          string            `json:"type"`
	Alias         string            `json:"alias"`
	Field         string            `json:"field"`
	Value         json.RawMessage   `json:"value"`
	LowerLimit    *float64          `json:"lowerLimit"`
	UpperLimit    *float64          `json:"upperLimit"`
	LowerIncluded *bool             `json:"lowerIncluded"`
	UpperIncluded *bool             `json:"upperIncluded"`
	Clause        json.RawMessage   `json:"clause"`
	Clauses       []json.RawMessage `json:"clauses"`
}

// maxConditionDepth bounds nesting, so that a hostile predicate cannot
// exhaust the stack.
const maxConditionDepth = 16

// ParseCondition parses and checks a condition.
func ParseCondition(b []byte) (Condition, error) { return parseCondition(b, "condition", 0) }

func parseCondition(b []byte, where string, depth int) (Condition, error) {
	if depth > maxConditionDepth {
		return Condition{}, fmt.Errorf("%w: %s: nested more than %d deep", ErrInvalid, where, maxConditionDepth)
	}
	var cj conditionJSON
	if err := strictDecode(b, &cj); err != nil {
		return Condition{}, fmt.Errorf("%w: %s: %w", ErrInvalid, where, err)
	}
	c := Condition{Type: cj.Type, Alias: cj.Alias, Field: cj.Field}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, where, fmt.Sprintf(format, args...))
	}
	leaf := cj.Clause == nil && cj.Clauses == nil
	switch cj.Type {
	case condEq:
		if cj.Field == "" || cj.Value == nil || !leaf || cj.LowerLimit != nil || cj.UpperLimit != nil {
			return Condition{}, bad("eq takes field and value")
		}
		if err := json.Unmarshal(cj.Value, &c.Value); err != nil {
			return Condition{}, bad("value: %v", err)
		}
		switch c.Value.(type) {
		case map[string]any, []any:
			return Condition{}, bad("eq compares a string, number, boolean or null")
		}
	case condRange:
		if cj.Field == "" || !leaf || cj.Value != nil {
			return Condition{}, bad("range takes field and lowerLimit and/or upperLimit")
		}
		if cj.LowerLimit == nil && cj.UpperLimit == nil {
			return Condition{}, bad("range needs lowerLimit or upperLimit")
		}
		if (cj.LowerIncluded != nil && cj.LowerLimit == nil) || (cj.UpperIncluded != nil && cj.UpperLimit == nil) {
			return Condition{}, bad("lowerIncluded and upperIncluded go with their limit")
		}
		c.Lower, c.Upper = cj.LowerLimit, cj.UpperLimit
		c.LowerIncluded = cj.LowerIncluded == nil || *cj.LowerIncluded
		c.UpperIncluded = cj.UpperIncluded == nil || *cj.UpperIncluded
		if c.Lower != nil && c.Upper != nil && *c.Lower > *c.Upper {
			return Condition{}, bad("lowerLimit is above upperLimit")
		}
	case condNot:
		if cj.Clause == nil || cj.Clauses != nil || cj.Field != "" || cj.Value != nil {
			return Condition{}, bad("not takes one clause")
		}
		sub, err := parseCondition(cj.Clause, where+".clause", depth+1)
		if err != nil {
			return Condition{}, err
		}
		c.Clauses = []Condition{sub}
	case condAnd, condOr:
		if len(cj.Clauses) == 0 || cj.Clause != nil || cj.Field != "" || cj.Value != nil {
			return Condition{}, bad("%s takes a non-empty clauses array", cj.Type)
		}
		for i, raw := range cj.Clauses {
			sub, err := parseCondition(raw, fmt.Sprintf("%s.clauses[%d]", where, i), depth+1)
			if err != nil {
				return Condition{}, err
			}
			c.Clauses = append(c.Clauses, sub)
		}
	default:
		return Condition{}, bad("type must be eq, not, range, and or or")
	}
	if cj.Type != condEq && cj.Type != condRange && cj.Alias != "" {
		return Condition{}, bad("alias belongs to eq and range")
	}
	return c, nil
}

// States is a thing's latest state: alias → decoded object, the v1 state
// under store.V1Alias.
type States map[string]map[string]any

// StatesOf decodes stored states.
func StatesOf(states []store.State) States {
	out := make(States, len(states))
	for _, s := range states {
		var m map[string]any
		if json.Unmarshal(s.Body, &m) == nil {
			out[s.Alias] = m
		}
	}
	return out
}

// Eval reports whether the condition holds for the states. A field that is
// missing makes eq and range false.
func (c Condition) Eval(s States) bool {
	switch c.Type {
	case condEq:
		v, ok := s.field(c.Alias, c.Field)
		return ok && equal(v, c.Value)
	case condRange:
		v, ok := s.field(c.Alias, c.Field)
		n, isNum := v.(float64)
		if !ok || !isNum {
			return false
		}
		if c.Lower != nil && (n < *c.Lower || (n == *c.Lower && !c.LowerIncluded)) {
			return false
		}
		if c.Upper != nil && (n > *c.Upper || (n == *c.Upper && !c.UpperIncluded)) {
			return false
		}
		return true
	case condNot:
		return !c.Clauses[0].Eval(s)
	case condAnd:
		for _, sub := range c.Clauses {
			if !sub.Eval(s) {
				return false
			}
		}
		return true
	case condOr:
		for _, sub := range c.Clauses {
			if sub.Eval(s) {
				return true
			}
		}
		return false
	}
	return false
}

// field looks up a field of an alias's state: the key as written first,
// then as a dotted path.
func (s States) field(alias, field string) (any, bool) {
	obj, ok := s[alias]
	if !ok {
		return nil, false
	}
	if v, ok := obj[field]; ok {
		return v, true
	}
	var cur any = obj
	for part := range strings.SplitSeq(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// equal compares two decoded JSON scalars; numbers by value.
func equal(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// Fires reports whether a STATES trigger in mode when fires, given the
// previous evaluation (if any) and the current result. A trigger that was
// never evaluated counts as false before.
func Fires(when string, prev store.TriggerRun, now bool) bool {
	before := prev.Evaluated && prev.Satisfied
	switch when {
	case WhenSatisfied:
		return now
	case WhenChanged:
		return now != before
	case WhenFalseToTrue:
		return now && !before
	}
	return false
}
