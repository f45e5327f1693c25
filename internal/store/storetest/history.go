package storetest

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// historyTests check the store.History methods.
var historyTests = []struct {
	name string
	run  func(t *testing.T, s store.Store)
}{
	{"StateHistory", testStateHistory},
	{"StateHistoryPaging", testStateHistoryPaging},
	{"StateHistoryKeyAcrossWrites", testStateHistoryKeyAcrossWrites},
	{"StateHistoryInvalidKey", testStateHistoryInvalidKey},
	{"PruneStateHistory", testPruneStateHistory},
	{"AggregateStateHistory", testAggregateStateHistory},
	{"AggregateStateHistoryFields", testAggregateStateHistoryFields},
	{"AggregateStateHistoryHugeNumbers", testAggregateStateHistoryHugeNumbers},
	{"AggregateStateHistoryGrouped", testAggregateStateHistoryGrouped},
	{"AggregateStateHistoryErrors", testAggregateStateHistoryErrors},
}

// putHistory writes body as the whole state of th.1, alias "a", at t.
func putHistory(t *testing.T, s store.Store, at time.Time, body string) {
	t.Helper()
	must(t, "WriteStates "+body, s.WriteStates(t.Context(), store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at,
		Aliases: map[string]json.RawMessage{"a": raw(body)}}))
}

// historyStates drops the keys of entries.
func historyStates(entries []store.HistoryEntry) []store.State {
	out := []store.State{}
	for _, e := range entries {
		out = append(out, e.State)
	}
	return out
}

// readHistory reads every page of q, limit entries a page, checking that
// each page but the last is full and that next is the key of a page's last
// entry, and returns the "i" of the entries and the number of pages.
func readHistory(t *testing.T, s store.Store, q store.HistoryQuery) (is []int, pages int) {
	t.Helper()
	is = []int{}
	for {
		entries, next, err := s.StateHistory(t.Context(), q)
		must(t, "StateHistory", err)
		pages++
		for _, e := range entries {
			var v struct{ I int }
			if err := json.Unmarshal(e.Body, &v); err != nil {
				t.Fatalf("entry %s: %v", e.Body, err)
			}
			is = append(is, v.I)
		}
		if next == "" {
			return is, pages
		}
		if len(entries) != q.Limit || next != entries[len(entries)-1].Key {
			t.Fatalf("page of %d entries (limit %d) with next %q, last key %q", len(entries), q.Limit, next, entries[len(entries)-1].Key)
		}
		if pages > 1000 {
			t.Fatal("StateHistory pages without end")
		}
		q.After = next
	}
}

func seq(from, to int) []int {
	out := []int{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func testStateHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	for i := 1; i <= 5; i++ {
		must(t, "WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(i * 10),
			Aliases: map[string]json.RawMessage{"a": raw(fmt.Sprintf(`{"t":%d}`, i)), "b": raw(`{"x":0}`)}}))
	}
	must(t, "WriteStates th.2", s.WriteStates(ctx, store.StateWrite{ThingID: "th.2", Mode: store.StateReplace, At: at(20),
		Aliases: map[string]json.RawMessage{"a": raw(`{"t":99}`)}}))
	must(t, "WriteStates merge", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(60),
		Aliases: map[string]json.RawMessage{"a": raw(`{"u":1}`)}}))

	h, next, err := s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "a", From: at(20), To: at(40)})
	must(t, "StateHistory", err)
	diff(t, "history 20..40", historyStates(h), []store.State{
		{ThingID: "th.1", Alias: "a", Body: raw(`{"t":2}`), ModifiedAt: at(20)},
		{ThingID: "th.1", Alias: "a", Body: raw(`{"t":3}`), ModifiedAt: at(30)},
		{ThingID: "th.1", Alias: "a", Body: raw(`{"t":4}`), ModifiedAt: at(40)},
	})
	if next != "" {
		t.Fatalf("next of the whole range %q, want none", next)
	}
	h, _, err = s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "a", From: at(45)})
	must(t, "StateHistory open end", err)
	diff(t, "history from 45 (merged states kept whole)", historyStates(h), []store.State{
		{ThingID: "th.1", Alias: "a", Body: raw(`{"t":5}`), ModifiedAt: at(50)},
		{ThingID: "th.1", Alias: "a", Body: raw(`{"t":5,"u":1}`), ModifiedAt: at(60)},
	})
	h, next, err = s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "a", From: at(0), Limit: 2})
	must(t, "StateHistory limit", err)
	if len(h) != 2 || !h[0].ModifiedAt.Equal(at(10)) || next == "" || next != h[1].Key {
		t.Fatalf("history limit 2: %v, next %q", h, next)
	}
	h, _, err = s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "nope"})
	must(t, "StateHistory unknown alias", err)
	if len(h) != 0 {
		t.Fatalf("history of unknown alias: %v", h)
	}
	h, _, err = s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "a", From: at(40), To: at(20)})
	must(t, "StateHistory From after To", err)
	if len(h) != 0 {
		t.Fatalf("history of From after To: %v", h)
	}
}

// testStateHistoryPaging: pages cover every entry once, in history order
// (time, then stored order for equal times, whatever order the times were
// written in), and the last page says so even when it is full.
func testStateHistoryPaging(t *testing.T, s store.Store) {
	setup(t, s)
	// 60 entries, three per millisecond, written newest millisecond first
	// for the second half: "i" is the history order.
	ms := func(i int) time.Time { return base.Add(time.Duration(i/3) * time.Millisecond) }
	for i := range 30 {
		putHistory(t, s, ms(i), fmt.Sprintf(`{"i":%d}`, i))
	}
	for j := 59; j >= 30; j -= 3 {
		for i := j - 2; i <= j; i++ {
			putHistory(t, s, ms(i), fmt.Sprintf(`{"i":%d}`, i))
		}
	}
	all := store.HistoryQuery{ThingID: "th.1", Alias: "a"}
	for _, tt := range []struct {
		limit, pages int
	}{{7, 9}, {6, 10}, {60, 1}, {61, 1}, {1, 60}, {0, 1}} {
		t.Run(fmt.Sprintf("limit %d", tt.limit), func(t *testing.T) {
			q := all
			q.Limit = tt.limit
			is, pages := readHistory(t, s, q)
			diff(t, "entries", is, seq(0, 59))
			if pages != tt.pages {
				t.Fatalf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
	t.Run("after each key", func(t *testing.T) {
		entries, _, err := s.StateHistory(t.Context(), all)
		must(t, "StateHistory", err)
		for k, e := range entries {
			q := all
			q.After, q.Limit = e.Key, 2
			is, _ := readHistory(t, s, q)
			diff(t, fmt.Sprintf("entries after %d", k), is, seq(k+1, 59))
		}
	})
	t.Run("within a time range", func(t *testing.T) {
		q := all
		q.From, q.To, q.Limit = ms(10), ms(20), 4 // entries 9 to 20
		is, pages := readHistory(t, s, q)
		diff(t, "entries", is, seq(9, 20))
		if pages != 3 {
			t.Fatalf("%d pages, want 3", pages)
		}
	})
}

// testStateHistoryKeyAcrossWrites: a key keeps its place while entries are
// added and pruned.
func testStateHistoryKeyAcrossWrites(t *testing.T, s store.Store) {
	setup(t, s)
	for i := 1; i <= 5; i++ {
		putHistory(t, s, at(i), fmt.Sprintf(`{"i":%d}`, i))
	}
	q := store.HistoryQuery{ThingID: "th.1", Alias: "a", Limit: 3}
	page, next, err := s.StateHistory(t.Context(), q)
	must(t, "StateHistory", err)
	if len(page) != 3 || next == "" {
		t.Fatalf("first page %v, next %q", page, next)
	}
	putHistory(t, s, at(3), `{"i":31}`) // the key's time, stored after it
	putHistory(t, s, at(2), `{"i":21}`) // before the key: on no later page
	putHistory(t, s, at(6), `{"i":6}`)
	putHistory(t, s, at(7), `{"i":7}`)
	q.After = next
	is, _ := readHistory(t, s, q)
	diff(t, "entries after the key", is, []int{31, 4, 5, 6, 7})

	n, err := s.PruneStateHistory(t.Context(), at(4))
	must(t, "PruneStateHistory", err)
	if n != 5 {
		t.Fatalf("pruned %d, want 5", n)
	}
	is, _ = readHistory(t, s, q)
	diff(t, "entries after the key, the key's entry pruned", is, []int{4, 5, 6, 7})
	q.After = ""
	is, _ = readHistory(t, s, q)
	diff(t, "entries after the prune", is, []int{4, 5, 6, 7})
}

func testStateHistoryInvalidKey(t *testing.T, s store.Store) {
	setup(t, s)
	putHistory(t, s, at(1), `{"i":1}`)
	putHistory(t, s, at(2), `{"i":2}`)
	page, _, err := s.StateHistory(t.Context(), store.HistoryQuery{ThingID: "th.1", Alias: "a", Limit: 1})
	must(t, "StateHistory", err)
	for _, key := range []string{"nope", page[0].Key + "x", "x" + page[0].Key, "-", " ", page[0].Key + " "} {
		_, _, err := s.StateHistory(t.Context(), store.HistoryQuery{ThingID: "th.1", Alias: "a", After: key})
		wantErr(t, fmt.Sprintf("StateHistory after %q", key), err, store.ErrInvalidPaginationKey)
	}
}

func testPruneStateHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	for i := 1; i <= 3; i++ {
		must(t, "WriteStates", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: at(i * 10),
			Aliases: map[string]json.RawMessage{"a": raw(fmt.Sprintf(`{"t":%d}`, i))}}))
	}
	n, err := s.PruneStateHistory(ctx, at(30))
	must(t, "PruneStateHistory", err)
	if n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	h, _, err := s.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "a"})
	must(t, "StateHistory", err)
	diff(t, "history after prune", historyStates(h), []store.State{{ThingID: "th.1", Alias: "a", Body: raw(`{"t":3}`), ModifiedAt: at(30)}})
	states, err := s.States(ctx, "th.1")
	must(t, "States", err)
	if len(states) != 1 {
		t.Fatalf("latest states after prune: %v", states)
	}
}

// aggValue is an aggregate value as the tests write it: nil for none, and
// for MIN and MAX the time (seconds after base, at) and body of the entry.
type aggValue struct {
	V     *float64
	At    int
	Entry json.RawMessage
}

func num(f float64) *float64 { return &f }

// aggValues converts a group's values to aggValues.
func aggValues(t *testing.T, vals []store.AggregateValue) []aggValue {
	t.Helper()
	out := []aggValue{}
	for _, v := range vals {
		a := aggValue{V: v.Value}
		if v.Entry != nil {
			a.Entry = v.Entry.Body
			a.At = int(v.Entry.ModifiedAt.Sub(base) / time.Second)
			if v.Entry.ThingID != "th.1" || v.Entry.Alias != "a" {
				t.Fatalf("entry of %s/%s", v.Entry.ThingID, v.Entry.Alias)
			}
		}
		out = append(out, a)
	}
	return out
}

// aggregate runs an ungrouped aggregation of th.1's alias "a" and returns
// its one group's values.
func aggregate(t *testing.T, s store.Store, from, to time.Time, aggs ...store.Aggregate) []aggValue {
	t.Helper()
	groups, err := s.AggregateStateHistory(t.Context(), store.HistoryAggregation{ThingID: "th.1", Alias: "a", From: from, To: to, Aggregates: aggs})
	must(t, "AggregateStateHistory", err)
	if len(groups) != 1 || !groups[0].Start.IsZero() || len(groups[0].Values) != len(aggs) {
		t.Fatalf("ungrouped aggregation: %+v", groups)
	}
	return aggValues(t, groups[0].Values)
}

// every is each aggregate of field t, and COUNT of entries.
var every = []store.Aggregate{
	{Kind: store.AggregateCount}, {Kind: store.AggregateCount, Field: "t"}, {Kind: store.AggregateMin, Field: "t"},
	{Kind: store.AggregateMax, Field: "t"}, {Kind: store.AggregateSum, Field: "t"}, {Kind: store.AggregateMean, Field: "t"},
}

func testAggregateStateHistory(t *testing.T, s store.Store) {
	ctx := t.Context()
	setup(t, s)
	must(t, "SaveOnboarding th.2", s.SaveOnboarding(ctx, onboarding("app1", "th.2", "v2", "in2", "tok2")))
	none := aggregate(t, s, time.Time{}, time.Time{}, every...)
	diff(t, "aggregates without entries", none, []aggValue{{V: num(0)}, {V: num(0)}, {}, {}, {}, {}})

	bodies := []string{`{"t":3}`, `{"t":null}`, `{"t":"x"}`, `{"t":true}`, `{"t":-2.5}`, `{"u":1}`, `{"t":{"a":1}}`,
		`{"t":[1]}`, `{"t":7}`, `{"t":-2.5}`, `{"t":7}`, `{"t":0.25}`}
	for i, b := range bodies {
		putHistory(t, s, at(i+1), b)
	}
	// Other things and aliases are not counted.
	must(t, "WriteStates th.2", s.WriteStates(ctx, store.StateWrite{ThingID: "th.2", Mode: store.StateReplace, At: at(3),
		Aliases: map[string]json.RawMessage{"a": raw(`{"t":-100}`)}}))
	must(t, "WriteStates b", s.WriteStates(ctx, store.StateWrite{ThingID: "th.1", Mode: store.StateMerge, At: at(3),
		Aliases: map[string]json.RawMessage{"b": raw(`{"t":100}`)}}))

	diff(t, "aggregates", aggregate(t, s, time.Time{}, time.Time{}, every...), []aggValue{
		{V: num(12)}, // every entry
		{V: num(10)}, // all but null and missing
		{V: num(-2.5), At: 5, Entry: raw(`{"t":-2.5}`)}, // the first of two
		{V: num(7), At: 9, Entry: raw(`{"t":7}`)},
		{V: num(12.25)},
		{V: num(12.25 / 6)},
	})
	diff(t, "aggregates from 6 to 9, both included", aggregate(t, s, at(6), at(9), every...), []aggValue{
		{V: num(4)}, {V: num(3)}, {V: num(7), At: 9, Entry: raw(`{"t":7}`)}, {V: num(7), At: 9, Entry: raw(`{"t":7}`)},
		{V: num(7)}, {V: num(7)},
	})
	diff(t, "aggregates of a field without numbers", aggregate(t, s, at(2), at(4), every[1:]...), []aggValue{
		{V: num(2)}, {}, {}, {}, {},
	})
	diff(t, "aggregates of an absent field", aggregate(t, s, time.Time{}, time.Time{},
		store.Aggregate{Kind: store.AggregateCount, Field: "nope"}, store.Aggregate{Kind: store.AggregateMax, Field: "nope"}),
		[]aggValue{{V: num(0)}, {}})
	diff(t, "the same aggregate twice, and a field twice", aggregate(t, s, time.Time{}, time.Time{},
		store.Aggregate{Kind: store.AggregateMax, Field: "u"}, store.Aggregate{Kind: store.AggregateMax, Field: "u"},
		store.Aggregate{Kind: store.AggregateMin, Field: "u"}), []aggValue{
		{V: num(1), At: 6, Entry: raw(`{"u":1}`)}, {V: num(1), At: 6, Entry: raw(`{"u":1}`)}, {V: num(1), At: 6, Entry: raw(`{"u":1}`)},
	})

	// MIN and MAX take the first entry in history order: stored order
	// among equal times.
	putHistory(t, s, at(20), `{"m":1,"n":"first"}`)
	putHistory(t, s, at(20), `{"m":1,"n":"second"}`)
	putHistory(t, s, at(19), `{"m":0.5,"n":"earlier, stored later"}`)
	putHistory(t, s, at(19), `{"m":2,"n":"earlier, stored later"}`)
	diff(t, "ties", aggregate(t, s, at(20), at(20), store.Aggregate{Kind: store.AggregateMin, Field: "m"},
		store.Aggregate{Kind: store.AggregateMax, Field: "m"}), []aggValue{
		{V: num(1), At: 20, Entry: raw(`{"m":1,"n":"first"}`)}, {V: num(1), At: 20, Entry: raw(`{"m":1,"n":"first"}`)},
	})
	diff(t, "ties, earlier", aggregate(t, s, at(19), at(20), store.Aggregate{Kind: store.AggregateMin, Field: "m"},
		store.Aggregate{Kind: store.AggregateMax, Field: "m"}), []aggValue{
		{V: num(0.5), At: 19, Entry: raw(`{"m":0.5,"n":"earlier, stored later"}`)},
		{V: num(2), At: 19, Entry: raw(`{"m":2,"n":"earlier, stored later"}`)},
	})
}

// testAggregateStateHistoryFields: a field is a member name, not a path; a
// name given twice counts once, its last value.
func testAggregateStateHistoryFields(t *testing.T, s store.Store) {
	setup(t, s)
	bodies := []string{
		`{"t":1,"t":5}`, `{"t":"x","t":2}`, `{"t":3,"t":null}`, `{"\u0074":4}`, `{"t":9,"\u0074":6}`,
		`{"x":{"t":100},"t":7}`, `{"s":"\"t\":50","t":8}`, `{"t":10,"x":{"t":200}}`,
		`{"a.b":2,"a":{"b":100}}`, `{"a\"b":3}`, `{"a\\b":4}`, `{"é":5}`, `{"$":6}`, `{"a[0]":7}`,
		`{"caf\u00e9":9}`, `{"a\u2028b":10}`,
	}
	for i, b := range bodies {
		putHistory(t, s, at(i+1), b)
	}
	all := func(field string) []aggValue {
		return aggregate(t, s, time.Time{}, time.Time{}, store.Aggregate{Kind: store.AggregateCount, Field: field},
			store.Aggregate{Kind: store.AggregateSum, Field: field})
	}
	// t: 5, 2, null, 4, 6, 7, 8, 10
	diff(t, "t", all("t"), []aggValue{{V: num(7)}, {V: num(42)}})
	diff(t, "MIN t", aggregate(t, s, at(1), at(3), store.Aggregate{Kind: store.AggregateMin, Field: "t"}),
		[]aggValue{{V: num(2), At: 2, Entry: raw(`{"t":"x","t":2}`)}})
	diff(t, "MAX t", aggregate(t, s, at(1), at(3), store.Aggregate{Kind: store.AggregateMax, Field: "t"}),
		[]aggValue{{V: num(5), At: 1, Entry: raw(`{"t":1,"t":5}`)}})
	for _, tt := range []struct {
		field string
		want  float64
	}{{"a.b", 2}, {`a"b`, 3}, {`a\b`, 4}, {"é", 5}, {"$", 6}, {"a[0]", 7}, {"café", 9}, {"a\u2028b", 10}} {
		diff(t, "field "+tt.field, all(tt.field), []aggValue{{V: num(1)}, {V: num(tt.want)}})
	}
}

// testAggregateStateHistoryHugeNumbers: SUM is finite whenever the sum is,
// MEAN always; SUM of a sum beyond a float64 is none.
func testAggregateStateHistoryHugeNumbers(t *testing.T, s store.Store) {
	setup(t, s)
	const maxF = math.MaxFloat64
	tests := []struct {
		name      string
		values    []string
		sum, mean float64 // NaN: none
	}{
		{"sum overflows", []string{"1e308", "1e308"}, math.NaN(), 1e308},
		{"sum overflows on the way only", []string{"1.5e308", "1.5e308", "-1.5e308"}, 1.5e308, 0.5e308},
		{"negative overflow", []string{"-1.7976931348623157e308", "-1.7976931348623157e308", "-1"}, math.NaN(), -maxF * 2 / 3},
		{"largest values", []string{"1.7976931348623157e308", "1.7976931348623157e308", "1.7976931348623157e308"}, math.NaN(), maxF},
		{"big integers", []string{"9007199254740993", "1"}, 9007199254740994, 4503599627370497},
		{"tiny", []string{"5e-324", "5e-324"}, 1e-323, 5e-324},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from := at(100 * (i + 1))
			for j, v := range tt.values {
				putHistory(t, s, from.Add(time.Duration(j)*time.Second), `{"t":`+v+`}`)
			}
			got := aggregate(t, s, from, from.Add(time.Minute), store.Aggregate{Kind: store.AggregateSum, Field: "t"},
				store.Aggregate{Kind: store.AggregateMean, Field: "t"})
			for k, want := range []float64{tt.sum, tt.mean} {
				switch v := got[k].V; {
				case math.IsNaN(want) && v != nil:
					t.Errorf("%s = %g, want none", every[4+k].Kind, *v)
				case !math.IsNaN(want) && (v == nil || math.Abs(*v-want) > math.Abs(want)*1e-15):
					t.Errorf("%s = %v, want %g", every[4+k].Kind, v, want)
				}
			}
		})
	}
}

func testAggregateStateHistoryGrouped(t *testing.T, s store.Store) {
	setup(t, s)
	// Groups of 10 s start at multiples of 10 s since the epoch.
	t0 := time.UnixMilli(1_750_000_000_000).UTC()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, e := range []struct {
		at   int
		body string
	}{
		{0, `{"t":1}`}, {9_999, `{"t":2}`}, {10_000, `{"t":3}`}, {35_000, `{"t":4}`}, {36_000, `{"u":1}`}, {39_999, `{"t":4}`},
		{50_000, `{"u":2}`},
	} {
		putHistory(t, s, ms(e.at), e.body)
	}
	q := store.HistoryAggregation{ThingID: "th.1", Alias: "a", Interval: 10 * time.Second, Aggregates: every}
	groups, err := s.AggregateStateHistory(t.Context(), q)
	must(t, "AggregateStateHistory", err)
	type group struct {
		Start  time.Time
		Values []aggValue
	}
	var got []group
	for _, g := range groups {
		got = append(got, group{g.Start, aggValues(t, g.Values)})
	}
	entryAt := func(n int, body string) aggValue {
		return aggValue{At: int(ms(n).Sub(base) / time.Second), Entry: raw(body)}
	}
	with := func(v float64, a aggValue) aggValue { a.V = num(v); return a }
	diff(t, "groups", got, []group{
		{ms(0), []aggValue{{V: num(2)}, {V: num(2)}, with(1, entryAt(0, `{"t":1}`)), with(2, entryAt(9_999, `{"t":2}`)), {V: num(3)}, {V: num(1.5)}}},
		{ms(10_000), []aggValue{{V: num(1)}, {V: num(1)}, with(3, entryAt(10_000, `{"t":3}`)), with(3, entryAt(10_000, `{"t":3}`)), {V: num(3)}, {V: num(3)}}},
		{ms(30_000), []aggValue{{V: num(3)}, {V: num(2)}, with(4, entryAt(35_000, `{"t":4}`)), with(4, entryAt(35_000, `{"t":4}`)), {V: num(8)}, {V: num(4)}}},
		{ms(50_000), []aggValue{{V: num(1)}, {V: num(0)}, {}, {}, {}, {}}},
	})

	q.From, q.To = ms(9_999), ms(35_000)
	groups, err = s.AggregateStateHistory(t.Context(), q)
	must(t, "AggregateStateHistory in a range", err)
	if len(groups) != 3 || !groups[0].Start.Equal(ms(0)) || *groups[0].Values[0].Value != 1 || *groups[2].Values[0].Value != 1 {
		t.Fatalf("groups in a range: %+v", groups)
	}
	q.From, q.To = ms(11_000), ms(34_000)
	groups, err = s.AggregateStateHistory(t.Context(), q)
	must(t, "AggregateStateHistory of an empty range", err)
	if len(groups) != 0 {
		t.Fatalf("groups of an empty range: %+v", groups)
	}
	q.From, q.To, q.Interval = time.Time{}, time.Time{}, 15*time.Minute
	groups, err = s.AggregateStateHistory(t.Context(), q)
	must(t, "AggregateStateHistory by 15 minutes", err)
	if len(groups) != 1 || !groups[0].Start.Equal(time.UnixMilli(1_750_000_000_000-1_750_000_000_000%900_000)) || *groups[0].Values[0].Value != 7 {
		t.Fatalf("groups of 15 minutes: %+v", groups)
	}
}

func testAggregateStateHistoryErrors(t *testing.T, s store.Store) {
	setup(t, s)
	putHistory(t, s, at(1), `{"t":1}`)
	for _, a := range []store.Aggregate{{Kind: "MEDIAN", Field: "t"}, {Kind: store.AggregateMin}, {Kind: store.AggregateSum}} {
		_, err := s.AggregateStateHistory(t.Context(), store.HistoryAggregation{ThingID: "th.1", Alias: "a", Aggregates: []store.Aggregate{a}})
		if err == nil {
			t.Errorf("aggregate %s of %q: no error", a.Kind, a.Field)
		}
	}
}
