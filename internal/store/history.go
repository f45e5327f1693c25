package store

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// HistoryQuery selects a page of the state history of one alias of a thing
// (History.StateHistory).
type HistoryQuery struct {
	ThingID string
	Alias   string
	// From and To bound ModifiedAt, both included. A zero From is no lower
	// bound, a zero To no upper bound; From after To selects nothing.
	From, To time.Time
	// After is the Key of the entry the page starts after, as an earlier
	// StateHistory of the same thing and alias returned it; empty starts
	// at the first entry.
	After string
	// Limit is the most entries of the page; <= 0 is all.
	Limit int
}

// HistoryEntry is one entry of the state history: the state of an alias
// after one upload, and the paging key that continues right after it.
type HistoryEntry struct {
	State
	// Key is opaque to callers; pass it as HistoryQuery.After.
	Key string
}

// AggregateKind is an aggregate function over state history entries.
type AggregateKind string

// The aggregate functions, named as on the wire. Each is defined on
// HistoryAggregation.
const (
	AggregateCount AggregateKind = "COUNT"
	AggregateMin   AggregateKind = "MIN"
	AggregateMax   AggregateKind = "MAX"
	AggregateMean  AggregateKind = "MEAN"
	AggregateSum   AggregateKind = "SUM"
)

// Aggregate is one aggregate function of one field.
type Aggregate struct {
	Kind AggregateKind
	// Field is a top-level member name of the state objects, taken as
	// written: "a.b" names the member "a.b", not a path. Only COUNT may
	// leave it empty.
	Field string
}

// HistoryAggregation asks for aggregates of the state history of one alias
// of a thing (History.AggregateStateHistory). A field's value in an entry
// is the member of the entry's object named Field; when the name is given
// more than once in one object, the last one counts (as Go's encoding/json
// and PostgreSQL's jsonb read it). The aggregates are:
//
//   - COUNT: the number of entries whose field is there and not JSON null;
//     with no Field, the number of entries.
//   - MIN, MAX: the smallest and largest JSON number of the field (other
//     values, and entries without the field, are left out), and with it
//     the entry it came from: the first in history order whose field has
//     that value.
//   - SUM: the sum of the numbers, as a float64. It is finite whenever the
//     true sum is within a float64, even if a running float64 total would
//     overflow on the way (add them in a wider type, or scale them by a
//     power of two, or take n × MEAN); it is nil when the sum itself is
//     beyond a float64.
//   - MEAN: the sum of the numbers over their count, always finite and
//     between MIN and MAX (it cannot overflow when the SUM does).
//
// Every aggregate but COUNT is nil for a group without a number in the
// field; COUNT is never nil. SUM and MEAN may differ from an exact
// computation in the last bits, as any sum of float64s does.
type HistoryAggregation struct {
	ThingID string
	Alias   string
	// From and To bound ModifiedAt as in HistoryQuery.
	From, To time.Time
	// Interval, when positive, groups the entries by time: the entry of
	// ModifiedAt t, in ms since the epoch, is in the group that starts at
	// t − t % i, i the Interval in whole ms (% as in Go and SQL: the sign
	// of t). Groups without an entry are left out, the others are returned
	// oldest first. Zero makes one group of every entry in the range,
	// returned even when there is none.
	Interval time.Duration
	// Aggregates are computed for each group, in this order.
	Aggregates []Aggregate
}

// HistoryGroup is one group of the answer to a HistoryAggregation.
type HistoryGroup struct {
	// Start is the start of the group's interval; zero when the entries
	// were not grouped.
	Start time.Time
	// Values holds one value for each HistoryAggregation.Aggregates, in
	// their order.
	Values []AggregateValue
}

// AggregateValue is the value of one aggregate over one group.
type AggregateValue struct {
	// Value is the aggregate, nil when it has none (JSON null).
	Value *float64
	// Entry is, for MIN and MAX with a Value, the first entry in history
	// order whose field has that value; nil otherwise.
	Entry *State
}

// HistoryBounds returns the bounds of a history time range in unix ms,
// its zero ends open (the smallest and largest int64): the range every
// backend reads.
func HistoryBounds(from, to time.Time) (lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if !from.IsZero() {
		lo = from.UnixMilli()
	}
	if !to.IsZero() {
		hi = to.UnixMilli()
	}
	return lo, hi
}

// HistoryKey is the paging key of the history entry at (unix ms) with
// stored position seq, as the backends issue it: "at.seq". Callers treat
// keys as opaque.
func HistoryKey(at, seq int64) string {
	return strconv.FormatInt(at, 10) + "." + strconv.FormatInt(seq, 10)
}

// ParseHistoryKey parses a key made by HistoryKey, in exactly that form;
// anything else is ErrInvalidPaginationKey.
func ParseHistoryKey(key string) (at, seq int64, err error) {
	a, s, ok := strings.Cut(key, ".")
	at, errAt := strconv.ParseInt(a, 10, 64)
	seq, errSeq := strconv.ParseInt(s, 10, 64)
	if !ok || errAt != nil || errSeq != nil || seq <= 0 || HistoryKey(at, seq) != key {
		return 0, 0, fmt.Errorf("%w: %q", ErrInvalidPaginationKey, key)
	}
	return at, seq, nil
}

// Plan checks an aggregation and returns what every backend needs to run
// it: the grouping step in whole ms (0: one group), and the distinct fields
// its aggregates read, in first-use order, with each field's index in that
// list.
func (q HistoryAggregation) Plan() (step int64, fields []string, index map[string]int, err error) {
	step = q.Interval.Milliseconds()
	if q.Interval < 0 || q.Interval%time.Millisecond != 0 || (q.Interval > 0 && step == 0) {
		return 0, nil, nil, fmt.Errorf("interval %v is not a whole number of ms", q.Interval)
	}
	index = map[string]int{}
	for _, a := range q.Aggregates {
		switch a.Kind {
		case AggregateCount, AggregateMin, AggregateMax, AggregateMean, AggregateSum:
		default:
			return 0, nil, nil, fmt.Errorf("unknown aggregate %q", a.Kind)
		}
		if a.Field == "" {
			if a.Kind != AggregateCount {
				return 0, nil, nil, fmt.Errorf("%s needs a field", a.Kind)
			}
			continue
		}
		if _, ok := index[a.Field]; !ok {
			index[a.Field] = len(fields)
			fields = append(fields, a.Field)
		}
	}
	return step, fields, index, nil
}

// GroupTotals is what a backend's pass over one group of an aggregation
// found: the group's start (ms; 0 when not grouped), its entries, and for
// each field of Plan, in that order, its totals.
type GroupTotals struct {
	Start   int64
	Entries int64
	Fields  []FieldTotals
}

// FieldTotals are one field's totals in one group: how many entries have
// it (not null), and its SUM and MEAN as HistoryAggregation defines them
// (nil without a number, or for a SUM beyond a float64).
type FieldTotals struct {
	Present   int64
	Sum, Mean *float64
}

// Assemble builds the answer to q from the backend's totals per group
// (fields and index as Plan returned them): COUNT, SUM and MEAN from the
// totals; MIN and MAX from extremes, called once per distinct kind and
// field, which returns the value and entry of each group that has one, by
// the group's index in groups.
func (q HistoryAggregation) Assemble(step int64, index map[string]int, groups []GroupTotals,
	extremes func(a Aggregate) (map[int]AggregateValue, error)) ([]HistoryGroup, error) {
	out := make([]HistoryGroup, len(groups))
	for i, g := range groups {
		out[i].Values = make([]AggregateValue, len(q.Aggregates))
		if step > 0 {
			out[i].Start = time.UnixMilli(g.Start).UTC()
		}
	}
	found := map[Aggregate]map[int]AggregateValue{}
	for ai, a := range q.Aggregates {
		switch a.Kind {
		case AggregateMin, AggregateMax:
			byGroup, ok := found[a]
			if !ok {
				var err error
				if byGroup, err = extremes(a); err != nil {
					return nil, err
				}
				found[a] = byGroup
			}
			for gi, v := range byGroup {
				out[gi].Values[ai] = v
			}
			continue
		}
		for gi, g := range groups {
			var f FieldTotals
			if a.Field != "" {
				f = g.Fields[index[a.Field]]
			}
			v := &out[gi].Values[ai]
			switch a.Kind {
			case AggregateCount:
				n := float64(f.Present)
				if a.Field == "" {
					n = float64(g.Entries)
				}
				v.Value = &n
			case AggregateSum:
				v.Value = f.Sum
			case AggregateMean:
				v.Value = f.Mean
			}
		}
	}
	return out, nil
}
