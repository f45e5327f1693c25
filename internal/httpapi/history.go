package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/trigger"
)

const mediaTraitStateQuery = "application/vnd.kii.traitstatequeryrequest+json"

// Bounds on what one history query reads (docs/protocol-decisions.md).
// Aggregations under a clause that is only a time range are computed by
// the store over the whole range, without a bound.
const (
	// historyPageScan bounds the entries one page of an ungrouped answer
	// reads: a page whose clause matches rarely ends there, with a key.
	historyPageScan = 10000
	// maxGroupedObjects bounds the entries of a grouped answer without
	// aggregations: a range holding more is a 400.
	maxGroupedObjects = 10000
	// historyChunk is the store page size of a scan.
	historyChunk = 1000
)

// maxHistoryScan bounds the entries read by a grouped query without
// aggregations or an aggregating query whose clause tests state fields,
// which are evaluated here, entry by entry: a range holding more is a 400.
// A variable so that tests can lower it.
var maxHistoryScan = 100000

// groupingIntervals maps dataGroupingInterval values to durations; a thing
// without one groups by 15 minutes.
var groupingIntervals = map[string]time.Duration{
	"1_MINUTE": time.Minute, "15_MINUTES": 15 * time.Minute, "30_MINUTES": 30 * time.Minute,
	"1_HOUR": time.Hour, "12_HOURS": 12 * time.Hour,
}

// historyRequest is the body of POST …/states/aliases/{alias}/query.
type historyRequest struct {
	Query struct {
		// Clause is in Kii's clause language (trigger.ParseQueryClause);
		// absent or null means all.
		Clause       json.RawMessage `json:"clause"`
		Grouped      bool            `json:"grouped"`
		Aggregations []aggregation   `json:"aggregations"`
	} `json:"query"`
	BestEffortLimit int    `json:"bestEffortLimit"`
	PaginationKey   string `json:"paginationKey"`
	// FirmwareVersion is sent by thing-if's SDKs (Kii kept a history per
	// firmware version's trait schema); thingif keeps one history per alias
	// and ignores it.
	FirmwareVersion *string `json:"firmwareVersion"`
}

// aggregation is one requested aggregation, and in answers its value.
type aggregation struct {
	Type               string `json:"type"`
	PutAggregationInto string `json:"putAggregationInto"`
	Field              string `json:"field"`
	// FieldType is what the SDKs send with every aggregation: INTEGER,
	// DECIMAL, BOOLEAN, OBJECT, ARRAY (or STRING); MIN, MAX, MEAN and SUM
	// take INTEGER or DECIMAL only. Optional.
	FieldType string `json:"fieldType,omitempty"`
	// Value is the answer: finite, or null (no value, or a SUM beyond a
	// float64).
	Value *float64 `json:"value"`
	// Object is, for MIN and MAX, the first entry that has Value, with
	// "_created", as Kii answered it.
	Object map[string]any `json:"object,omitempty"`
}

// fieldTypes are the aggregation field types; true marks the numeric ones.
var fieldTypes = map[string]bool{"INTEGER": true, "DECIMAL": true, "BOOLEAN": false, "OBJECT": false, "ARRAY": false, "STRING": false}

// historyRange is a time range of a group, in ms.
type historyRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// historyGroup is one grouped result.
type historyGroup struct {
	Range        historyRange      `json:"range"`
	Objects      []json.RawMessage `json:"objects,omitempty"`
	Aggregations []aggregation     `json:"aggregations,omitempty"`
}

// queryStateHistory answers the history of one alias: every uploaded state
// that matches the query's clause (Kii's clause language, evaluated per
// entry by package trigger), one object per upload with "_created" (ms)
// added, oldest first; or grouped by the thing's dataGroupingInterval; with
// aggregations (COUNT, MIN, MAX, MEAN, SUM of a field) per group or over
// all matching entries. Three ways, by what the query asks:
//   - results, ungrouped: pages of the store read through and filtered
//     here, a page ending after limit matches or historyPageScan entries
//     read, its key the store's key of the last entry read;
//   - aggregations under a clause that is only a time range: the store
//     computes them over the whole range;
//   - anything else grouped, or aggregations under a clause on state
//     fields: every entry of the range read and evaluated here, at most
//     maxHistoryScan of them (and maxGroupedObjects answered), else 400.
func (h *Handler) queryStateHistory(w http.ResponseWriter, r *http.Request) error {
	p, err := h.principal(r)
	if err != nil {
		return err
	}
	thingID, err := targetThing(r)
	if err != nil {
		return err
	}
	thing, err := h.loadThing(r.Context(), p, thingID, errTargetNotFound)
	if err != nil {
		return err
	}
	if mt := mediaType(r); mt != mediaTraitStateQuery && mt != contentTypeJSON && mt != "" {
		return errUnsupportedMediaType.with("a history query takes application/vnd.kii.TraitStateQueryRequest+json")
	}
	var req historyRequest
	if err := h.readStrict(w, r, &req); err != nil {
		return err
	}
	clause, err := parseHistoryClause(req.Query.Clause)
	if err != nil {
		return err
	}
	for i, a := range req.Query.Aggregations {
		a.Type = strings.ToUpper(a.Type)
		switch a.Type {
		case "COUNT":
		case "MIN", "MAX", "MEAN", "SUM":
			if a.Field == "" {
				return errInvalidInput.with("aggregations[%d]: %s needs field", i, a.Type)
			}
		default:
			return errInvalidInput.with("aggregations[%d]: type must be COUNT, MIN, MAX, MEAN or SUM", i)
		}
		if a.FieldType != "" {
			a.FieldType = strings.ToUpper(a.FieldType)
			numeric, known := fieldTypes[a.FieldType]
			switch {
			case !known:
				return errInvalidInput.with("aggregations[%d]: fieldType must be INTEGER, DECIMAL, BOOLEAN, OBJECT, ARRAY or STRING", i)
			case !numeric && a.Type != "COUNT":
				return errInvalidInput.with("aggregations[%d]: %s takes fieldType INTEGER or DECIMAL", i, a.Type)
			}
		}
		if a.PutAggregationInto == "" {
			a.PutAggregationInto = strings.ToLower(a.Type)
		}
		if a.Value != nil || a.Object != nil {
			return errInvalidInput.with("aggregations[%d]: value and object are answer fields", i)
		}
		req.Query.Aggregations[i] = a
	}
	limit := defaultCommandLimit
	if req.BestEffortLimit < 0 {
		return errInvalidInput.with("bestEffortLimit must be positive")
	} else if req.BestEffortLimit > 0 {
		limit = min(req.BestEffortLimit, maxCommandLimit)
	}

	alias := r.PathValue("alias")
	var from, to time.Time
	lo, hi, bounded := clause.TimeRange()
	if bounded {
		from, to = time.UnixMilli(lo), time.UnixMilli(hi)
	}
	scan := historyScan{h: h, clause: clause, empty: bounded && lo > hi, // disjoint ranges in one and
		q: store.HistoryQuery{ThingID: thing.ID, Alias: alias, From: from, To: to}}
	interval, ok := groupingIntervals[thing.DataGroupingInterval]
	if !ok {
		interval = 15 * time.Minute
	}
	step := interval.Milliseconds()
	aggs := req.Query.Aggregations

	switch {
	case !req.Query.Grouped && len(aggs) == 0:
		scan.q.After = req.PaginationKey
		results, next, err := scan.page(r.Context(), limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Results           []map[string]any `json:"results"`
			NextPaginationKey string           `json:"nextPaginationKey,omitempty"`
		}{results, next})
		return nil

	case len(aggs) > 0 && clause.OnlyTime() && !scan.empty:
		// The common case, the whole range in the store: no bound.
		q := store.HistoryAggregation{ThingID: thing.ID, Alias: alias, From: from, To: to}
		for _, a := range aggs {
			q.Aggregates = append(q.Aggregates, store.Aggregate{Kind: store.AggregateKind(a.Type), Field: a.Field})
		}
		if req.Query.Grouped {
			q.Interval = interval
		}
		groups, err := h.store.AggregateStateHistory(r.Context(), q)
		if err != nil {
			return fmt.Errorf("aggregate state history: %w", err)
		}
		if !req.Query.Grouped {
			if len(groups) != 1 {
				return fmt.Errorf("aggregate state history: %d groups without grouping", len(groups))
			}
			writeJSON(w, http.StatusOK, struct {
				Aggregations []aggregation `json:"aggregations"`
			}{storeAggregations(aggs, groups[0].Values)})
			return nil
		}
		out := make([]historyGroup, 0, len(groups))
		for _, g := range groups {
			start := g.Start.UnixMilli()
			out = append(out, historyGroup{Range: historyRange{From: start, To: start + step - 1},
				Aggregations: storeAggregations(aggs, g.Values)})
		}
		writeJSON(w, http.StatusOK, struct {
			GroupedResults []historyGroup `json:"groupedResults"`
		}{out})
		return nil

	case !req.Query.Grouped:
		// Aggregations with a clause on state fields: evaluated here,
		// entry by entry, over the whole range or not at all.
		all := newAggregator(aggs)
		if err := scan.all(r.Context(), func(obj map[string]any, _ int64) error {
			all.add(obj)
			return nil
		}); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			Aggregations []aggregation `json:"aggregations"`
		}{all.values()})
		return nil
	}

	// Grouped, with objects or with aggregations under a clause on state
	// fields: evaluated here, over the whole range or not at all. Entries
	// come oldest first, so each group's are contiguous.
	groups := []historyGroup{}
	var members []json.RawMessage
	var agg *aggregator
	objects := 0
	start := int64(-1)
	flush := func() {
		g := historyGroup{Range: historyRange{From: start, To: start + step - 1}}
		if agg != nil {
			g.Aggregations = agg.values()
		} else {
			g.Objects = members
		}
		groups = append(groups, g)
		members, agg = nil, nil
	}
	if err := scan.all(r.Context(), func(obj map[string]any, at int64) error {
		if s := at - at%step; s != start {
			if start >= 0 {
				flush()
			}
			start = s
		}
		if len(aggs) > 0 {
			if agg == nil {
				agg = newAggregator(aggs)
			}
			agg.add(obj)
			return nil
		}
		if objects++; objects > maxGroupedObjects {
			return errInvalidInput.with("a grouped query without aggregations answers at most %d entries, and more match in its time range: narrow the time range (withinTimeRange) or ask for aggregations", maxGroupedObjects)
		}
		b, _ := json.Marshal(obj)
		members = append(members, b)
		return nil
	}); err != nil {
		return err
	}
	if start >= 0 {
		flush()
	}
	writeJSON(w, http.StatusOK, struct {
		GroupedResults []historyGroup `json:"groupedResults"`
	}{groups})
	return nil
}

// historyScan reads the history entries of one query that match its clause,
// through the store's pages.
type historyScan struct {
	h      *Handler
	q      store.HistoryQuery // thing, alias, time range; After for a page
	clause trigger.Condition
	empty  bool // the clause's time ranges are disjoint: nothing matches
}

// page reads one page of an ungrouped answer: the matching entries after
// s.q.After, each decoded with "_created" (ms) added, until limit of them
// or historyPageScan entries read, and the key of the last entry read when
// more may follow, so that the next page goes on exactly there. A page with
// a selective clause may so hold fewer than limit entries, even none, and
// still have a key.
func (s historyScan) page(ctx context.Context, limit int) ([]map[string]any, string, error) {
	results := []map[string]any{}
	if s.empty {
		return results, "", nil
	}
	onlyTime := s.clause.OnlyTime()
	for scanned := 0; ; {
		s.q.Limit = min(historyChunk, historyPageScan-scanned)
		if onlyTime { // every entry matches
			s.q.Limit = min(s.q.Limit, limit-len(results))
		}
		entries, more, err := s.h.store.StateHistory(ctx, s.q)
		if err != nil {
			return nil, "", listError("state history", err)
		}
		for i, e := range entries {
			scanned++
			if obj, ok := s.match(e.State); ok {
				results = append(results, obj)
			}
			if len(results) == limit || scanned == historyPageScan {
				if i == len(entries)-1 && more == "" {
					return results, "", nil
				}
				return results, e.Key, nil
			}
		}
		if more == "" {
			return results, "", nil
		}
		s.q.After = more
	}
}

// all calls each with every matching entry of the whole range, oldest
// first, decoded with "_created" added, or returns the 400 that says the
// range holds more than maxHistoryScan entries (each only accumulates, so
// nothing was answered yet), or each's error.
func (s historyScan) all(ctx context.Context, each func(obj map[string]any, at int64) error) error {
	if s.empty {
		return nil
	}
	scanned := 0
	for {
		s.q.Limit = historyChunk
		entries, more, err := s.h.store.StateHistory(ctx, s.q)
		if err != nil {
			return listError("state history", err)
		}
		for _, e := range entries {
			if scanned++; scanned > maxHistoryScan {
				return errInvalidInput.with("this query is evaluated entry by entry (its clause tests state fields, or it is grouped without aggregations), at most %d entries, and its time range holds more: narrow the time range (withinTimeRange)", maxHistoryScan)
			}
			if obj, ok := s.match(e.State); ok {
				if err := each(obj, e.ModifiedAt.UnixMilli()); err != nil {
					return err
				}
			}
		}
		if more == "" {
			return nil
		}
		s.q.After = more
	}
}

// match decodes a history entry and applies the clause to it; a match is
// returned with "_created" (ms) added.
func (s historyScan) match(st store.State) (map[string]any, bool) {
	var obj map[string]any
	if json.Unmarshal(st.Body, &obj) != nil || obj == nil {
		return nil, false
	}
	at := st.ModifiedAt.UnixMilli()
	if !s.clause.Match(obj, at) {
		return nil, false
	}
	obj["_created"] = at
	return obj, true
}

// storeAggregations answers aggs with the values the store computed, the
// entry of a MIN or MAX decoded with "_created" added.
func storeAggregations(aggs []aggregation, values []store.AggregateValue) []aggregation {
	out := make([]aggregation, len(aggs))
	for i, a := range aggs {
		v := values[i]
		a.Value, a.Object = v.Value, nil
		if v.Entry != nil && json.Unmarshal(v.Entry.Body, &a.Object) == nil && a.Object != nil {
			a.Object["_created"] = v.Entry.ModifiedAt.UnixMilli()
		}
		out[i] = a
	}
	return out
}

// parseHistoryClause parses a query's clause; absent or null is all.
func parseHistoryClause(raw json.RawMessage) (trigger.Condition, error) {
	if isNull(raw) {
		return trigger.ParseQueryClause([]byte(`{"type":"all"}`))
	}
	c, err := trigger.ParseQueryClause(raw)
	if err != nil {
		return trigger.Condition{}, errInvalidInput.with("%s", strings.TrimPrefix(err.Error(), trigger.ErrInvalid.Error()+": "))
	}
	return c, nil
}

// aggregator computes aggregations over objects added one by one, as
// store.HistoryAggregation defines them (this is the reference the
// backends' SQL follows). COUNT counts the objects whose field is there
// and not null (all objects when no field is named), as Kii's console
// documents it; the others use the field's numeric values and are null
// without any. Every value is finite: MEAN never overflows (see mean); a
// SUM whose running total overflows is taken from the mean (n × mean), and
// one beyond a float64 even so is null, since JSON has no infinity and a
// 5xx would hide every other aggregation.
type aggregator struct {
	aggs []aggregation
	acc  []accumulator
}

// accumulator is the running state of one aggregation.
type accumulator struct {
	n, sum       float64
	m            mean
	lo, hi       *float64
	loObj, hiObj map[string]any
}

func newAggregator(aggs []aggregation) *aggregator {
	return &aggregator{aggs: aggs, acc: make([]accumulator, len(aggs))}
}

// add adds one object.
func (g *aggregator) add(obj map[string]any) {
	for i, a := range g.aggs {
		c := &g.acc[i]
		if a.Field == "" {
			c.n++
			continue
		}
		v, ok := obj[a.Field]
		if !ok || v == nil {
			continue
		}
		if a.Type == "COUNT" {
			c.n++
			continue
		}
		f, ok := v.(float64)
		if !ok {
			continue
		}
		c.n++
		c.sum += f
		c.m.add(f)
		if c.lo == nil || f < *c.lo {
			c.lo, c.loObj = &f, obj
		}
		if c.hi == nil || f > *c.hi {
			c.hi, c.hiObj = &f, obj
		}
	}
}

// values returns the aggregations with their values.
func (g *aggregator) values() []aggregation {
	out := make([]aggregation, len(g.aggs))
	for i, a := range g.aggs {
		c := g.acc[i]
		n, sum := c.n, c.sum
		a.Value, a.Object = nil, nil
		switch a.Type {
		case "COUNT":
			a.Value = &n
		case "SUM":
			if n > 0 {
				if math.IsInf(sum, 0) { // overflowed on the way, maybe not at the end
					sum = c.m.value * n
				}
				if !math.IsInf(sum, 0) {
					a.Value = &sum
				}
			}
		case "MEAN":
			if n > 0 {
				v := sum / n
				if math.IsInf(sum, 0) {
					v = c.m.value
				}
				a.Value = &v
			}
		case "MIN":
			a.Value, a.Object = c.lo, c.loObj
		case "MAX":
			a.Value, a.Object = c.hi, c.hiObj
		}
		out[i] = a
	}
	return out
}

// mean is a running mean that cannot overflow: each step moves it by
// x/n - mean/n, both at most the largest float64 over n, and the result is
// always between the smallest and the largest value added. aggregate uses
// it only when the plain sum overflows, as sum/n is the more exact.
type mean struct {
	n     float64
	value float64
}

func (m *mean) add(x float64) {
	m.n++
	m.value += x/m.n - m.value/m.n
}
