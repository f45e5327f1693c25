package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/trigger"
)

const mediaTraitStateQuery = "application/vnd.kii.traitstatequeryrequest+json"

// maxHistoryScan bounds the history entries one query reads.
const maxHistoryScan = 10000

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
// added, oldest first and paged over the matching entries; or grouped by
// the thing's dataGroupingInterval; with aggregations (COUNT, MIN, MAX,
// MEAN, SUM of a field) per group or over all matching entries.
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
	offset := 0
	if req.PaginationKey != "" {
		if offset, err = strconv.Atoi(req.PaginationKey); err != nil || offset < 0 {
			return errInvalidInput.with("paginationKey is not valid")
		}
	}

	// The clause's plain time range narrows the read; the clause itself,
	// time range included, is then applied to each entry, before paging, so
	// that pages and groups hold matching entries only.
	var from, to time.Time
	if lo, hi, ok := clause.TimeRange(); ok {
		from, to = time.UnixMilli(lo), time.UnixMilli(hi)
		if lo > hi { // disjoint ranges in one and: nothing can match
			from, to = time.UnixMilli(hi), time.UnixMilli(hi)
		}
	}
	states, err := h.store.StateHistory(r.Context(), thing.ID, r.PathValue("alias"), from, to, maxHistoryScan)
	if err != nil {
		return fmt.Errorf("state history: %w", err)
	}
	objects := make([]map[string]any, 0, len(states))
	for _, s := range states {
		var obj map[string]any
		if json.Unmarshal(s.Body, &obj) != nil {
			continue
		}
		at := s.ModifiedAt.UnixMilli()
		if !clause.Match(obj, at) {
			continue
		}
		obj["_created"] = at
		objects = append(objects, obj)
	}

	if !req.Query.Grouped {
		if len(req.Query.Aggregations) > 0 {
			writeJSON(w, http.StatusOK, struct {
				Aggregations []aggregation `json:"aggregations"`
			}{aggregate(req.Query.Aggregations, objects)})
			return nil
		}
		out := struct {
			Results           []map[string]any `json:"results"`
			NextPaginationKey string           `json:"nextPaginationKey,omitempty"`
		}{Results: []map[string]any{}}
		if offset < len(objects) {
			end := min(offset+limit, len(objects))
			out.Results = objects[offset:end]
			if end < len(objects) {
				out.NextPaginationKey = strconv.Itoa(end)
			}
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}

	interval, ok := groupingIntervals[thing.DataGroupingInterval]
	if !ok {
		interval = 15 * time.Minute
	}
	step := interval.Milliseconds()
	groups := []historyGroup{}
	var members []map[string]any
	flush := func(start int64) {
		g := historyGroup{Range: historyRange{From: start, To: start + step - 1}}
		if len(req.Query.Aggregations) > 0 {
			g.Aggregations = aggregate(req.Query.Aggregations, members)
		} else {
			for _, m := range members {
				b, _ := json.Marshal(m)
				g.Objects = append(g.Objects, b)
			}
		}
		groups = append(groups, g)
		members = members[:0]
	}
	start := int64(-1)
	for _, obj := range objects {
		at := obj["_created"].(int64)
		s := at - at%step
		if s != start && start >= 0 {
			flush(start)
		}
		start = s
		members = append(members, obj)
	}
	if start >= 0 {
		flush(start)
	}
	writeJSON(w, http.StatusOK, struct {
		GroupedResults []historyGroup `json:"groupedResults"`
	}{groups})
	return nil
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

// aggregate computes the aggregations over objects. COUNT counts the
// objects whose field is there and not null (all objects when no field is
// named), as Kii's console documents it; the others use the field's
// numeric values and are null without any. Every value is finite: MEAN
// never overflows (see mean); a SUM whose running total overflows is
// taken from the mean (n × mean), and one beyond a float64 even so is
// null, since JSON has no infinity and a 5xx would hide every other
// aggregation.
func aggregate(aggs []aggregation, objects []map[string]any) []aggregation {
	out := make([]aggregation, len(aggs))
	for i, a := range aggs {
		var n, sum float64
		var m mean
		var lo, hi *float64
		var loObj, hiObj map[string]any
		for _, obj := range objects {
			if a.Field == "" {
				n++
				continue
			}
			v, ok := obj[a.Field]
			if !ok || v == nil {
				continue
			}
			if a.Type == "COUNT" {
				n++
				continue
			}
			f, ok := v.(float64)
			if !ok {
				continue
			}
			n++
			sum += f
			m.add(f)
			if lo == nil || f < *lo {
				lo, loObj = &f, obj
			}
			if hi == nil || f > *hi {
				hi, hiObj = &f, obj
			}
		}
		a.Value, a.Object = nil, nil
		switch a.Type {
		case "COUNT":
			a.Value = &n
		case "SUM":
			if n > 0 {
				if math.IsInf(sum, 0) { // overflowed on the way, maybe not at the end
					sum = m.value * n
				}
				if !math.IsInf(sum, 0) {
					a.Value = &sum
				}
			}
		case "MEAN":
			if n > 0 {
				v := sum / n
				if math.IsInf(sum, 0) {
					v = m.value
				}
				a.Value = &v
			}
		case "MIN":
			a.Value, a.Object = lo, loObj
		case "MAX":
			a.Value, a.Object = hi, hiObj
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
