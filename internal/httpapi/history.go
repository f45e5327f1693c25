package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
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
		Clause *struct {
			Type       string `json:"type"`
			LowerLimit *int64 `json:"lowerLimit"`
			UpperLimit *int64 `json:"upperLimit"`
		} `json:"clause"`
		Grouped      bool          `json:"grouped"`
		Aggregations []aggregation `json:"aggregations"`
	} `json:"query"`
	BestEffortLimit int    `json:"bestEffortLimit"`
	PaginationKey   string `json:"paginationKey"`
}

// aggregation is one requested aggregation, and in answers its value.
type aggregation struct {
	Type               string   `json:"type"`
	PutAggregationInto string   `json:"putAggregationInto"`
	Field              string   `json:"field"`
	Value              *float64 `json:"value"`
}

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
// within a time range, one object per upload with "_created" (ms) added,
// oldest first; or grouped by the thing's dataGroupingInterval; with
// aggregations (COUNT, MIN, MAX, MEAN, SUM of a field) per group or over
// the whole range.
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
	var from, to time.Time
	if c := req.Query.Clause; c != nil {
		switch c.Type {
		case "withinTimeRange":
			if c.LowerLimit == nil || c.UpperLimit == nil || *c.LowerLimit < 0 || *c.UpperLimit < *c.LowerLimit {
				return errInvalidInput.with("withinTimeRange takes lowerLimit <= upperLimit (ms)")
			}
			from, to = time.UnixMilli(*c.LowerLimit), time.UnixMilli(*c.UpperLimit)
		case "all":
		default:
			return errInvalidInput.with("clause type must be withinTimeRange or all")
		}
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
		if a.PutAggregationInto == "" {
			a.PutAggregationInto = strings.ToLower(a.Type)
		}
		if a.Value != nil {
			return errInvalidInput.with("aggregations[%d]: value is an answer field", i)
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
		obj["_created"] = s.ModifiedAt.UnixMilli()
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

// aggregate computes the aggregations over objects. COUNT counts the
// objects that have the field (all objects when no field is named); the
// others use the field's numeric values and are null without any.
func aggregate(aggs []aggregation, objects []map[string]any) []aggregation {
	out := make([]aggregation, len(aggs))
	for i, a := range aggs {
		var n, sum float64
		var lo, hi *float64
		for _, obj := range objects {
			if a.Field == "" {
				n++
				continue
			}
			v, ok := obj[a.Field]
			if !ok {
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
			if lo == nil || f < *lo {
				lo = &f
			}
			if hi == nil || f > *hi {
				hi = &f
			}
		}
		a.Value = nil
		switch a.Type {
		case "COUNT":
			a.Value = &n
		case "SUM":
			if n > 0 {
				a.Value = &sum
			}
		case "MEAN":
			if n > 0 {
				mean := sum / n
				a.Value = &mean
			}
		case "MIN":
			a.Value = lo
		case "MAX":
			a.Value = hi
		}
		out[i] = a
	}
	return out
}
