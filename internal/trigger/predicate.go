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
	"math"
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

// Condition types. all and withinTimeRange exist only in state history
// queries (ParseQueryClause).
const (
	condEq        = "eq"
	condNot       = "not"
	condRange     = "range"
	condAnd       = "and"
	condOr        = "or"
	condAll       = "all"
	condTimeRange = "withinTimeRange"
)

// Condition is a STATES condition, or a clause of a state history query: a
// comparison of one state field, a combination of conditions, and in
// queries also all (every entry) and withinTimeRange (a condition on the
// entry's time). Triggers and history queries share this one evaluator, so
// eq, not, range, and and or mean the same in both.
type Condition struct {
	Type string
	// Alias names the trait alias whose state holds Field (v2); empty for a
	// v1 state, and in queries (whose alias is in the path).
	Alias string
	// Field is the state field: a top-level key, or a dotted path into
	// nested objects.
	Field string
	// Value is the eq operand.
	Value any
	// Range bounds; nil when open. For withinTimeRange both are set, in ms
	// since the epoch, and both included.
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

// Bounds on a condition, so that a hostile predicate or query can exhaust
// neither the stack nor the CPU (a query evaluates every clause on up to
// 100,000 entries).
const (
	maxConditionDepth   = 16
	maxConditionClauses = 200
)

// maxTimeMillis bounds withinTimeRange limits: float64 holds every integer
// up to 2^53 exactly, and that is 285,000 years of milliseconds.
const maxTimeMillis = 1 << 53

// ParseCondition parses and checks a trigger condition.
func ParseCondition(b []byte) (Condition, error) {
	p := conditionParser{}
	return p.parse(b, "condition", 0)
}

// ParseQueryClause parses and checks the clause of a state history query:
// the condition language of triggers without alias, plus {"type":"all"}
// and {"type":"withinTimeRange","lowerLimit":ms,"upperLimit":ms}.
func ParseQueryClause(b []byte) (Condition, error) {
	p := conditionParser{query: true}
	return p.parse(b, "clause", 0)
}

// conditionParser parses one condition tree, counting its clauses.
type conditionParser struct {
	query   bool // a history query clause, not a trigger condition
	clauses int
}

func (p *conditionParser) parse(b []byte, where string, depth int) (Condition, error) {
	if depth > maxConditionDepth {
		return Condition{}, fmt.Errorf("%w: %s: nested more than %d deep", ErrInvalid, where, maxConditionDepth)
	}
	if p.clauses++; p.clauses > maxConditionClauses {
		return Condition{}, fmt.Errorf("%w: %s: more than %d clauses", ErrInvalid, where, maxConditionClauses)
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
	switch {
	case cj.Type == condEq:
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
	case cj.Type == condRange:
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
		// Kii's SDKs document an omitted lowerIncluded/upperIncluded as true.
		c.LowerIncluded = cj.LowerIncluded == nil || *cj.LowerIncluded
		c.UpperIncluded = cj.UpperIncluded == nil || *cj.UpperIncluded
		if c.Lower != nil && c.Upper != nil && *c.Lower > *c.Upper {
			return Condition{}, bad("lowerLimit is above upperLimit")
		}
	case cj.Type == condNot:
		if cj.Clause == nil || cj.Clauses != nil || cj.Field != "" || cj.Value != nil {
			return Condition{}, bad("not takes one clause")
		}
		sub, err := p.parse(cj.Clause, where+".clause", depth+1)
		if err != nil {
			return Condition{}, err
		}
		c.Clauses = []Condition{sub}
	case cj.Type == condAnd || cj.Type == condOr:
		if len(cj.Clauses) == 0 || cj.Clause != nil || cj.Field != "" || cj.Value != nil {
			return Condition{}, bad("%s takes a non-empty clauses array", cj.Type)
		}
		for i, raw := range cj.Clauses {
			sub, err := p.parse(raw, fmt.Sprintf("%s.clauses[%d]", where, i), depth+1)
			if err != nil {
				return Condition{}, err
			}
			c.Clauses = append(c.Clauses, sub)
		}
	case p.query && cj.Type == condAll:
		if !leaf || cj.Field != "" || cj.Value != nil || cj.LowerLimit != nil || cj.UpperLimit != nil ||
			cj.LowerIncluded != nil || cj.UpperIncluded != nil {
			return Condition{}, bad("all takes no other field")
		}
	case p.query && cj.Type == condTimeRange:
		if !leaf || cj.Field != "" || cj.Value != nil || cj.LowerIncluded != nil || cj.UpperIncluded != nil {
			return Condition{}, bad("withinTimeRange takes lowerLimit and upperLimit only")
		}
		for _, l := range []struct {
			name string
			v    *float64
		}{{"lowerLimit", cj.LowerLimit}, {"upperLimit", cj.UpperLimit}} {
			if l.v == nil {
				return Condition{}, bad("withinTimeRange needs %s (ms since the epoch)", l.name)
			}
			if *l.v < 0 || *l.v > maxTimeMillis || *l.v != math.Trunc(*l.v) {
				return Condition{}, bad("withinTimeRange %s must be a whole number of ms since the epoch", l.name)
			}
		}
		if *cj.LowerLimit > *cj.UpperLimit {
			return Condition{}, bad("withinTimeRange lowerLimit is above upperLimit")
		}
		c.Lower, c.Upper, c.LowerIncluded, c.UpperIncluded = cj.LowerLimit, cj.UpperLimit, true, true
	case p.query:
		return Condition{}, bad("type must be all, withinTimeRange, eq, not, range, and or or")
	default:
		return Condition{}, bad("type must be eq, not, range, and or or")
	}
	if cj.Alias != "" {
		switch {
		case p.query:
			return Condition{}, bad("alias is not taken in a query clause: the query's alias is in its path")
		case cj.Type != condEq && cj.Type != condRange:
			return Condition{}, bad("alias belongs to eq and range")
		}
	}
	return c, nil
}

// TimeRange returns the time range, in ms both included, that every entry
// matching a query clause lies in, as far as the clause says it plainly:
// the clause's own withinTimeRange, or the intersection of those directly
// inside a top-level and. ok is false when the clause names none. A
// withinTimeRange under or or not narrows nothing here (Match still
// applies it entry by entry). History reads use it to narrow the store
// read, and grouped queries to place their groups.
func (c Condition) TimeRange() (from, to int64, ok bool) {
	switch c.Type {
	case condTimeRange:
		return int64(*c.Lower), int64(*c.Upper), true
	case condAnd:
		for _, sub := range c.Clauses {
			f, t, subOK := sub.TimeRange()
			if !subOK {
				continue
			}
			if !ok {
				from, to, ok = f, t, true
				continue
			}
			from, to = max(from, f), min(to, t)
		}
	}
	return from, to, ok
}

// OnlyTime reports whether a query clause tests nothing but the entry's
// time: it is all, withinTimeRange, or and of such clauses. Such a clause
// matches exactly the entries within TimeRange (every entry when TimeRange
// finds none), so a store can select them without evaluating it.
func (c Condition) OnlyTime() bool {
	switch c.Type {
	case condAll, condTimeRange:
		return true
	case condAnd:
		for _, sub := range c.Clauses {
			if !sub.OnlyTime() {
				return false
			}
		}
		return true
	}
	return false
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
	return c.eval(func(alias, field string) (any, bool) {
		obj, ok := s[alias]
		if !ok {
			return nil, false
		}
		return lookup(obj, field)
	}, 0)
}

// Match reports whether a query clause holds for one history entry: obj,
// the state the alias had, uploaded at createdMs (ms since the epoch).
// eq, not, range, and and or mean what they mean in Eval; withinTimeRange
// holds when createdMs is within its limits.
func (c Condition) Match(obj map[string]any, createdMs int64) bool {
	return c.eval(func(_, field string) (any, bool) { return lookup(obj, field) }, createdMs)
}

// eval evaluates c, reading fields with get.
func (c Condition) eval(get func(alias, field string) (any, bool), createdMs int64) bool {
	switch c.Type {
	case condEq:
		v, ok := get(c.Alias, c.Field)
		return ok && equal(v, c.Value)
	case condRange:
		v, ok := get(c.Alias, c.Field)
		n, isNum := v.(float64)
		return ok && isNum && c.within(n)
	case condTimeRange:
		return c.within(float64(createdMs))
	case condAll:
		return true
	case condNot:
		return !c.Clauses[0].eval(get, createdMs)
	case condAnd:
		for _, sub := range c.Clauses {
			if !sub.eval(get, createdMs) {
				return false
			}
		}
		return true
	case condOr:
		for _, sub := range c.Clauses {
			if sub.eval(get, createdMs) {
				return true
			}
		}
		return false
	}
	return false
}

// within reports whether n is within the range's limits.
func (c Condition) within(n float64) bool {
	if c.Lower != nil && (n < *c.Lower || (n == *c.Lower && !c.LowerIncluded)) {
		return false
	}
	if c.Upper != nil && (n > *c.Upper || (n == *c.Upper && !c.UpperIncluded)) {
		return false
	}
	return true
}

// lookup looks up a field of a state object: the key as written first,
// then as a dotted path.
func lookup(obj map[string]any, field string) (any, bool) {
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
