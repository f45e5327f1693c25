package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thingif/thingif/internal/store"
)

// historyEnv is a thing with a history of alias AC, and the _created time
// of each upload.
type historyEnv struct {
	*env
	admin   []string
	query   string
	created []int64
}

// newHistoryEnv uploads {"AC":{"t":v}} for each value, 10 minutes apart.
func newHistoryEnv(t *testing.T, values ...string) *historyEnv {
	e := newEnv(t)
	th := e.onboard("v-1", "pw")
	states := "/thing-if/apps/" + testApp + "/targets/thing:" + th.ThingID + "/states"
	for _, v := range values {
		check(t, e.do("PUT", states, `{"AC":{"t":`+v+`}}`,
			with(bearer(th.AccessToken), "Content-Type", "application/vnd.kii.MultipleTraitState+json")...), 204, "")
		e.advance(10 * time.Minute)
	}
	h := &historyEnv{env: e, query: states + "/aliases/AC/query",
		admin: with(bearer(e.appToken(testApp, testAppKey)), "Content-Type", "application/vnd.kii.TraitStateQueryRequest+json")}
	r := h.do("POST", h.query, `{"query":{"clause":{"type":"all"}},"bestEffortLimit":100}`, h.admin...)
	check(t, r, 200, "")
	var page struct {
		Results []struct {
			Created int64 `json:"_created"`
		}
	}
	r.decode(t, &page)
	for _, res := range page.Results {
		h.created = append(h.created, res.Created)
	}
	if len(h.created) != len(values) {
		t.Fatalf("history %s, want %d entries", r.body, len(values))
	}
	return h
}

// ts is the t of each result of an ungrouped answer, and its next key.
type tsPage struct {
	Results []struct {
		T       float64 `json:"t"`
		Created int64   `json:"_created"`
	}
	NextPaginationKey string
}

func (p tsPage) ts() []float64 {
	out := []float64{}
	for _, r := range p.Results {
		out = append(out, r.T)
	}
	return out
}

// TestHistoryQueryClauses: ungrouped queries in Kii's clause language, in
// the bytes thing-if's JavaScript SDK sends (bestEffortLimit,
// firmwareVersion and paginationKey before query, as JSON.stringify writes
// its object). Pages hold matching entries only; "{next}" in a body is the
// nextPaginationKey of the case before.
func TestHistoryQueryClauses(t *testing.T) {
	h := newHistoryEnv(t, "10", "35", "40", "20", "50")
	tests := []struct {
		name, body string
		want       []float64
		next       bool
	}{
		{"all", `{"query":{"clause":{"type":"all"}}}`, []float64{10, 35, 40, 20, 50}, false},
		{"no clause", `{"query":{}}`, []float64{10, 35, 40, 20, 50}, false},
		{"greaterThan, first page of the matching", `{"bestEffortLimit":2,"firmwareVersion":"1.0","query":{"clause":{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":false}}}`, []float64{35, 40}, true},
		{"greaterThan, second page", `{"bestEffortLimit":2,"firmwareVersion":"1.0","paginationKey":"{next}","query":{"clause":{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":false}}}`, []float64{50}, false},
		{"lessThanEquals", `{"query":{"clause":{"type":"range","field":"t","upperLimit":35,"upperIncluded":true}}}`, []float64{10, 35, 20}, false},
		{"range both limits, included by default", `{"query":{"clause":{"type":"range","field":"t","upperLimit":40,"lowerLimit":20}}}`, []float64{35, 40, 20}, false},
		{"eq", `{"query":{"clause":{"type":"eq","field":"t","value":40}}}`, []float64{40}, false},
		{"notEquals", `{"query":{"clause":{"type":"not","clause":{"type":"eq","field":"t","value":40}}}}`, []float64{10, 35, 20, 50}, false},
		{"and", `{"query":{"clause":{"type":"and","clauses":[{"type":"range","field":"t","lowerLimit":15},{"type":"range","field":"t","upperLimit":45}]}}}`, []float64{35, 40, 20}, false},
		{"or", `{"query":{"clause":{"type":"or","clauses":[{"type":"eq","field":"t","value":10},{"type":"eq","field":"t","value":50}]}}}`, []float64{10, 50}, false},
		{"eq on a missing field", `{"query":{"clause":{"type":"eq","field":"nope","value":1}}}`, []float64{}, false},
	}
	next := ""
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", h.query, strings.ReplaceAll(tt.body, "{next}", next), h.admin...)
			check(t, r, 200, "")
			var page tsPage
			r.decode(t, &page)
			next = page.NextPaginationKey
			if diff := cmp.Diff(tt.want, page.ts()); diff != "" {
				t.Fatalf("results %s (-want +got):\n%s", r.body, diff)
			}
			if got := page.NextPaginationKey != ""; got != tt.next {
				t.Fatalf("nextPaginationKey %q, want one: %v", page.NextPaginationKey, tt.next)
			}
		})
	}
	// A time range anywhere: within and, or, not; evaluated per entry.
	c := h.created
	for _, tt := range []struct {
		name, clause string
		want         []float64
	}{
		{"withinTimeRange", fmt.Sprintf(`{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}`, c[1], c[3]), []float64{35, 40, 20}},
		{"in and", fmt.Sprintf(`{"type":"and","clauses":[{"type":"range","field":"t","lowerLimit":30},{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}]}`, c[1], c[3]), []float64{35, 40}},
		{"in or", fmt.Sprintf(`{"type":"or","clauses":[{"type":"eq","field":"t","value":50},{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}]}`, c[0], c[0]), []float64{10, 50}},
		{"in not", fmt.Sprintf(`{"type":"not","clause":{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}}`, c[1], c[3]), []float64{10, 50}},
		{"two in and", fmt.Sprintf(`{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d},{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}]}`, c[0], c[2], c[2], c[4]), []float64{40}},
		{"disjoint in and", fmt.Sprintf(`{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d},{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}]}`, c[0], c[1], c[3], c[4]), []float64{}},
	} {
		t.Run("time range "+tt.name, func(t *testing.T) {
			r := h.do("POST", h.query, `{"query":{"clause":`+tt.clause+`}}`, h.admin...)
			check(t, r, 200, "")
			var page tsPage
			r.decode(t, &page)
			if diff := cmp.Diff(tt.want, page.ts()); diff != "" {
				t.Fatalf("results %s (-want +got):\n%s", r.body, diff)
			}
		})
	}
}

// TestHistoryQueryGrouped: grouped queries as the JavaScript SDK sends them
// ({"query":{"grouped":true,"clause":…}, "firmwareVersion"}, the clause
// being the time range alone or and of a clause and the time range), with
// and without aggregations (which it sends with fieldType). Groups are
// aligned to the thing's dataGroupingInterval (15 minutes by default) and
// hold matching entries only.
func TestHistoryQueryGrouped(t *testing.T) {
	h := newHistoryEnv(t, "10", "35", "40", "20", "50")
	c := h.created
	const step = 15 * 60 * 1000
	group := func(i int) historyRange { s := c[i] - c[i]%step; return historyRange{From: s, To: s + step - 1} }
	type groupOut struct {
		Range   historyRange
		Objects []struct {
			T       float64 `json:"t"`
			Created int64   `json:"_created"`
		}
		Aggregations []aggregation
	}
	query := func(t *testing.T, body string) []groupOut {
		t.Helper()
		r := h.do("POST", h.query, body, h.admin...)
		check(t, r, 200, "")
		var out struct{ GroupedResults []groupOut }
		r.decode(t, &out)
		if !strings.HasPrefix(string(r.body), `{"groupedResults":[`) {
			t.Fatalf("answer %s", r.body)
		}
		return out.GroupedResults
	}
	// The uploads are 10 minutes apart from 03:04:05: entries 0 and 1 share
	// a 15-minute group, 2 is alone, 3 and 4 share one.
	if group(0) != group(1) || group(1) == group(2) || group(2) == group(3) || group(3) != group(4) {
		t.Fatalf("uploads at %v do not fall in the groups this test expects", c)
	}
	timeRange := fmt.Sprintf(`{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}`, c[0], c[4])

	t.Run("clause and time range", func(t *testing.T) {
		got := query(t, `{"query":{"grouped":true,"clause":{"type":"and","clauses":[{"type":"range","field":"t","lowerLimit":30,"lowerIncluded":false},`+timeRange+`]}},"firmwareVersion":"1.0"}`)
		want := []struct {
			r  historyRange
			ts []float64
		}{{group(1), []float64{35}}, {group(2), []float64{40}}, {group(4), []float64{50}}}
		if len(got) != len(want) {
			t.Fatalf("%d groups %+v, want %d", len(got), got, len(want))
		}
		for i, g := range got {
			var ts []float64
			for _, o := range g.Objects {
				ts = append(ts, o.T)
			}
			if g.Range != want[i].r || !cmp.Equal(ts, want[i].ts) {
				t.Fatalf("group %d: %+v %v, want %+v %v", i, g.Range, ts, want[i].r, want[i].ts)
			}
		}
	})
	t.Run("time range first, narrowing", func(t *testing.T) {
		got := query(t, fmt.Sprintf(`{"query":{"grouped":true,"clause":{"type":"and","clauses":[{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d},{"type":"range","field":"t","lowerLimit":30}]}}}`, c[1], c[3]))
		if len(got) != 2 || got[0].Range != group(1) || got[1].Range != group(2) || len(got[0].Objects) != 1 || got[0].Objects[0].Created != c[1] {
			t.Fatalf("groups %+v", got)
		}
	})
	t.Run("aggregation MAX", func(t *testing.T) {
		got := query(t, `{"query":{"grouped":true,"clause":`+timeRange+`,"aggregations":[{"type":"MAX","field":"t","fieldType":"INTEGER","putAggregationInto":"max"}]},"firmwareVersion":"1.0"}`)
		want := []struct {
			r       historyRange
			max     float64
			created int64
		}{{group(0), 35, c[1]}, {group(2), 40, c[2]}, {group(3), 50, c[4]}}
		if len(got) != len(want) {
			t.Fatalf("%d groups %+v, want %d", len(got), got, len(want))
		}
		for i, g := range got {
			if len(g.Aggregations) != 1 || g.Objects != nil {
				t.Fatalf("group %d: %+v", i, g)
			}
			a := g.Aggregations[0]
			if g.Range != want[i].r || a.Type != "MAX" || a.FieldType != "INTEGER" || a.PutAggregationInto != "max" ||
				a.Value == nil || *a.Value != want[i].max || a.Object["t"] != want[i].max || a.Object["_created"] != float64(want[i].created) {
				t.Fatalf("group %d: %+v %+v, want %+v", i, g.Range, a, want[i])
			}
		}
	})
	t.Run("aggregations with a clause", func(t *testing.T) {
		got := query(t, `{"query":{"grouped":true,"clause":{"type":"and","clauses":[{"type":"not","clause":{"type":"eq","field":"t","value":35}},`+timeRange+`]},`+
			`"aggregations":[{"type":"COUNT","field":"t","fieldType":"INTEGER","putAggregationInto":"count"},{"type":"SUM","field":"t","fieldType":"DECIMAL","putAggregationInto":"sum"},{"type":"MEAN","field":"t","fieldType":"DECIMAL","putAggregationInto":"mean"}]}}`)
		var rows []string
		for _, g := range got {
			var vals []string
			for _, a := range g.Aggregations {
				vals = append(vals, fmt.Sprintf("%s=%g", a.Type, *a.Value))
			}
			rows = append(rows, strings.Join(vals, " "))
		}
		want := []string{"COUNT=1 SUM=10 MEAN=10", "COUNT=1 SUM=40 MEAN=40", "COUNT=2 SUM=70 MEAN=35"}
		if diff := cmp.Diff(want, rows); diff != "" {
			t.Fatalf("aggregations (-want +got):\n%s", diff)
		}
	})
}

// TestHistoryAggregateHugeNumbers: SUM and MEAN over values near the
// largest float64 answer finite numbers or null, never a 5xx; COUNT counts
// non-null values only. Alike when the store aggregates (no clause) and
// when the handler does (a clause on a field).
func TestHistoryAggregateHugeNumbers(t *testing.T) {
	null := math.NaN() // stands for a JSON null in want
	tests := []struct {
		name             string
		values           []string
		sum, mean, count float64
	}{
		{"sum overflows", []string{"1e308", "1e308"}, null, 1e308, 2},
		{"sum overflows on the way only", []string{"1.5e308", "1.5e308", "-1.5e308"}, 1.5e308, 0.5e308, 3},
		{"negative overflow", []string{"-1.7976931348623157e308", "-1.7976931348623157e308", "-1"}, null, -math.MaxFloat64 * 2 / 3, 3},
		{"largest values", []string{"1.7976931348623157e308", "1.7976931348623157e308", "1.7976931348623157e308"}, null, math.MaxFloat64, 3},
		{"nulls and strings", []string{"null", `"x"`, "2"}, 2, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistoryEnv(t, tt.values...)
			for _, clause := range []string{"", `"clause":{"type":"not","clause":{"type":"eq","field":"nope","value":1}},`} {
				r := h.do("POST", h.query, `{"query":{`+clause+`"aggregations":[{"type":"SUM","field":"t"},{"type":"MEAN","field":"t"},{"type":"COUNT","field":"t"}]}}`, h.admin...)
				check(t, r, 200, "")
				var out struct{ Aggregations []aggregation }
				r.decode(t, &out)
				if len(out.Aggregations) != 3 {
					t.Fatalf("answer %s", r.body)
				}
				for i, want := range []float64{tt.sum, tt.mean, tt.count} {
					got := out.Aggregations[i].Value
					switch {
					case math.IsNaN(want) && got != nil:
						t.Errorf("%s = %g, want null (%s)", out.Aggregations[i].Type, *got, r.body)
					case !math.IsNaN(want) && (got == nil || math.Abs(*got-want) > math.Abs(want)*1e-15):
						t.Errorf("%s = %v, want %g (%s)", out.Aggregations[i].Type, got, want, r.body)
					}
				}
			}
		})
	}
}

// TestHistoryQueryErrors: bad clauses and aggregations are 400
// INVALID_INPUT_DATA naming the problem.
func TestHistoryQueryErrors(t *testing.T) {
	h := newHistoryEnv(t, "1")
	deep := `{"type":"eq","field":"a","value":1}`
	for range 20 {
		deep = `{"type":"not","clause":` + deep + `}`
	}
	many := `{"type":"or","clauses":[` + strings.TrimSuffix(strings.Repeat(`{"type":"all"},`, 250), ",") + `]}`
	tests := []struct{ name, body, want string }{
		{"unknown clause type", `{"query":{"clause":{"type":"like","field":"t","value":1}}}`, "clause: type must be all, withinTimeRange, eq, not, range, and or or"},
		{"withTimeRange (a typo of one SDK version)", `{"query":{"clause":{"type":"withTimeRange","lowerLimit":1,"upperLimit":2}}}`, "clause: type must be"},
		{"eq without field", `{"query":{"clause":{"type":"eq","value":1}}}`, "clause: eq takes field and value"},
		{"eq with an object", `{"query":{"clause":{"type":"eq","field":"t","value":{}}}}`, "eq compares a string, number, boolean or null"},
		{"range limit a string", `{"query":{"clause":{"type":"range","field":"t","lowerLimit":"1"}}}`, "lowerLimit"},
		{"range without limits", `{"query":{"clause":{"type":"range","field":"t"}}}`, "range needs lowerLimit or upperLimit"},
		{"not without clause", `{"query":{"clause":{"type":"not"}}}`, "clause: not takes one clause"},
		{"and member bad", `{"query":{"clause":{"type":"and","clauses":[{"type":"all"},{"type":"eq"}]}}}`, "clause.clauses[1]: eq takes field and value"},
		{"clauses not an array", `{"query":{"clause":{"type":"or","clauses":{}}}}`, "clauses"},
		{"alias in a clause", `{"query":{"clause":{"type":"eq","alias":"AC","field":"t","value":1}}}`, "alias is not taken"},
		{"time range without upperLimit", `{"query":{"clause":{"type":"withinTimeRange","lowerLimit":1}}}`, "needs upperLimit"},
		{"time range inverted", `{"query":{"clause":{"type":"withinTimeRange","lowerLimit":5,"upperLimit":1}}}`, "lowerLimit is above upperLimit"},
		{"clause not an object", `{"query":{"clause":"all"}}`, "clause: must be a JSON object"},
		{"too deep", `{"query":{"clause":` + deep + `}}`, "nested more than 16 deep"},
		{"too many clauses", `{"query":{"clause":` + many + `}}`, "more than 200 clauses"},
		{"unknown clause field", `{"query":{"clause":{"type":"all","where":1}}}`, `unknown field \"where\"`},
		{"bad fieldType", `{"query":{"aggregations":[{"type":"COUNT","field":"t","fieldType":"DATE"}]}}`, "fieldType must be"},
		{"MAX of booleans", `{"query":{"aggregations":[{"type":"MAX","field":"t","fieldType":"BOOLEAN"}]}}`, "MAX takes fieldType INTEGER or DECIMAL"},
		{"object sent", `{"query":{"aggregations":[{"type":"MAX","field":"t","object":{}}]}}`, "answer fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", h.query, tt.body, h.admin...)
			check(t, r, 400, "INVALID_INPUT_DATA")
			if !strings.Contains(string(r.body), tt.want) {
				t.Fatalf("answer %s does not say %q", r.body, tt.want)
			}
		})
	}
}

// newBigHistoryEnv stores n states {"AC":{"t":i}} of one thing, a second
// apart from e.now, through the store (uploads over HTTP would take
// minutes), and returns them with the time of the first.
func newBigHistoryEnv(t *testing.T, n int) (*historyEnv, time.Time) {
	e := newEnv(t)
	th := e.onboard("v-1", "pw")
	start := e.now.Truncate(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 { // concurrent writes commit in groups: seconds, not minutes
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if err := e.st.WriteStates(t.Context(), store.StateWrite{ThingID: th.ThingID, Mode: store.StateReplace,
					At: start.Add(time.Duration(i) * time.Second), Aliases: map[string]json.RawMessage{"AC": json.RawMessage(fmt.Sprintf(`{"t":%d}`, i))}}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return &historyEnv{env: e, query: "/thing-if/apps/" + testApp + "/targets/thing:" + th.ThingID + "/states/aliases/AC/query",
		admin: with(bearer(e.appToken(testApp, testAppKey)), "Content-Type", "application/vnd.kii.TraitStateQueryRequest+json")}, start
}

// TestHistoryBeyondTenThousand: a history of more than the 10,000 entries
// one query used to read. Paging reaches the newest, a page with a clause
// that matches rarely ends after 10,000 entries with a key to go on,
// aggregations under a time range are exact over the whole range, and
// queries evaluated entry by entry answer in full or 400, never a part.
func TestHistoryBeyondTenThousand(t *testing.T) {
	const n = 10_050
	h, start := newBigHistoryEnv(t, n)
	post := func(t *testing.T, body string, status int) resp {
		t.Helper()
		r := h.do("POST", h.query, body, h.admin...)
		code := ""
		if status == 400 {
			code = "INVALID_INPUT_DATA"
		}
		check(t, r, status, code)
		return r
	}

	t.Run("paging reaches the newest", func(t *testing.T) {
		var ts []float64
		key, pages := "", 0
		for {
			body := `{"query":{"clause":{"type":"all"}},"bestEffortLimit":100`
			if key != "" {
				body += `,"paginationKey":"` + key + `"`
			}
			var page tsPage
			post(t, body+`}`, 200).decode(t, &page)
			pages++
			ts = append(ts, page.ts()...)
			if key = page.NextPaginationKey; key == "" {
				break
			}
			if pages > n {
				t.Fatal("pages without end")
			}
		}
		if len(ts) != n || pages != 101 || ts[0] != 0 || ts[n-1] != n-1 {
			t.Fatalf("%d pages of %d entries, first %v last %v; want 101 pages of all %d", pages, len(ts), ts[0], ts[len(ts)-1], n)
		}
		for i, v := range ts {
			if v != float64(i) {
				t.Fatalf("entry %d is t=%v", i, v)
			}
		}
	})
	t.Run("a page ends after 10,000 entries read", func(t *testing.T) {
		body := fmt.Sprintf(`"query":{"clause":{"type":"eq","field":"t","value":%d}}`, n-1)
		var page tsPage
		post(t, `{`+body+`}`, 200).decode(t, &page)
		if len(page.Results) != 0 || page.NextPaginationKey == "" {
			t.Fatalf("first page %+v, want no results and a key", page)
		}
		key := page.NextPaginationKey
		page = tsPage{}
		post(t, `{`+body+`,"paginationKey":"`+key+`"}`, 200).decode(t, &page)
		if diff := cmp.Diff([]float64{n - 1}, page.ts()); diff != "" || page.NextPaginationKey != "" {
			t.Fatalf("second page %+v (-want +got):\n%s", page, diff)
		}
	})
	t.Run("a time range reaches the newest at once", func(t *testing.T) {
		var page tsPage
		post(t, fmt.Sprintf(`{"query":{"clause":{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}}}`,
			start.Add((n-3)*time.Second).UnixMilli(), start.Add(n*time.Second).UnixMilli()), 200).decode(t, &page)
		if diff := cmp.Diff([]float64{n - 3, n - 2, n - 1}, page.ts()); diff != "" || page.NextPaginationKey != "" {
			t.Fatalf("page %+v (-want +got):\n%s", page, diff)
		}
	})
	t.Run("aggregations are exact", func(t *testing.T) {
		var out struct{ Aggregations []aggregation }
		post(t, `{"query":{"aggregations":[{"type":"COUNT"},{"type":"SUM","field":"t"},{"type":"MEAN","field":"t"},{"type":"MIN","field":"t"},{"type":"MAX","field":"t"}]}}`, 200).decode(t, &out)
		var got []string
		for _, a := range out.Aggregations {
			v, _ := json.Marshal(a.Value)
			o, _ := json.Marshal(a.Object)
			got = append(got, fmt.Sprintf("%s=%s %s", a.Type, v, o))
		}
		want := []string{fmt.Sprintf("COUNT=%d null", n), fmt.Sprintf("SUM=%d null", n*(n-1)/2), fmt.Sprintf("MEAN=%v null", float64(n-1)/2),
			fmt.Sprintf(`MIN=0 {"_created":%d,"t":0}`, start.UnixMilli()),
			fmt.Sprintf(`MAX=%d {"_created":%d,"t":%d}`, n-1, start.Add((n-1)*time.Second).UnixMilli(), n-1)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("aggregations (-want +got):\n%s", diff)
		}
	})
	t.Run("grouped aggregations agree with the entry-by-entry evaluation", func(t *testing.T) {
		timeRange := fmt.Sprintf(`{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}`, start.UnixMilli(), start.Add(n*time.Second).UnixMilli())
		aggs := `"aggregations":[{"type":"COUNT","field":"t"},{"type":"SUM","field":"t"},{"type":"MEAN","field":"t"},{"type":"MIN","field":"t"},{"type":"MAX","field":"t"}]`
		store := post(t, `{"query":{"grouped":true,"clause":`+timeRange+`,`+aggs+`}}`, 200)
		// A clause on a field that every entry passes is evaluated here.
		each := post(t, `{"query":{"grouped":true,"clause":{"type":"and","clauses":[{"type":"not","clause":{"type":"eq","field":"nope","value":1}},`+timeRange+`]},`+aggs+`}}`, 200)
		if string(store.body) != string(each.body) {
			t.Fatalf("store's answer\n%.2000s\ndiffers from the entry-by-entry one\n%.2000s", store.body, each.body)
		}
		var out struct{ GroupedResults []historyGroup }
		store.decode(t, &out)
		if len(out.GroupedResults) != 12 { // 10,050 s in groups of 15 minutes from a full hour
			t.Fatalf("%d groups, want 12", len(out.GroupedResults))
		}
	})
	t.Run("grouped objects beyond 10,000", func(t *testing.T) {
		r := post(t, `{"query":{"grouped":true,"clause":{"type":"all"}}}`, 400)
		if !strings.Contains(string(r.body), "at most 10000 entries") || !strings.Contains(string(r.body), "narrow the time range") {
			t.Fatalf("answer %s", r.body)
		}
		var out struct{ GroupedResults []historyGroup }
		post(t, fmt.Sprintf(`{"query":{"grouped":true,"clause":{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}}}`,
			start.UnixMilli(), start.Add(time.Hour-time.Millisecond).UnixMilli()), 200).decode(t, &out)
		if len(out.GroupedResults) != 4 || len(out.GroupedResults[3].Objects) != 900 {
			t.Fatalf("%d groups in an hour", len(out.GroupedResults))
		}
	})
	t.Run("a clause on fields beyond the scan bound", func(t *testing.T) {
		defer func(old int) { maxHistoryScan = old }(maxHistoryScan)
		maxHistoryScan = 5000
		clause := `{"type":"not","clause":{"type":"eq","field":"t","value":-1}}`
		r := post(t, `{"query":{"clause":`+clause+`,"aggregations":[{"type":"COUNT"}]}}`, 400)
		if !strings.Contains(string(r.body), "at most 5000 entries") || !strings.Contains(string(r.body), "narrow the time range") {
			t.Fatalf("answer %s", r.body)
		}
		var out struct{ Aggregations []aggregation }
		post(t, fmt.Sprintf(`{"query":{"clause":{"type":"and","clauses":[%s,{"type":"withinTimeRange","lowerLimit":%d,"upperLimit":%d}]},"aggregations":[{"type":"COUNT"}]}}`,
			clause, start.UnixMilli(), start.Add(4999*time.Second).UnixMilli()), 200).decode(t, &out)
		if len(out.Aggregations) != 1 || *out.Aggregations[0].Value != 5000 {
			t.Fatalf("aggregations %+v", out.Aggregations)
		}
	})
}
