package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// benchHistory stores n history entries of th.1's alias AC, a second apart
// from a full hour, and another thing's n/5 in the same table.
func benchHistory(b *testing.B, n int) (*DB, time.Time) {
	db := benchDB(b)
	ctx := b.Context()
	start := time.UnixMilli(1_750_000_000_000).Truncate(time.Hour)
	if err := db.SaveOnboarding(ctx, store.Onboarding{
		Thing:        store.Thing{ID: "th.2", AppID: "app1", VendorThingID: "v2", PasswordHash: "p"},
		NewThing:     true,
		Installation: store.Installation{ID: "in2", AppID: "app1", ThingID: "th.2", MQTTTopic: "t2", Username: "u2"},
		Token:        store.Token{Hash: "tok2", AppID: "app1", Kind: store.TokenThing, Subject: "th.2"},
	}); err != nil {
		b.Fatal(err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n + n/5 {
		thing, at := "th.1", start.Add(time.Duration(i)*time.Second)
		if i >= n {
			thing, at = "th.2", start.Add(time.Duration(i-n)*time.Second)
		}
		body := fmt.Sprintf(`{"power":true,"presetTemperature":%d,"fanSpeed":%d,"currentTemperature":%d.%d,"mode":"cool","label":"living room"}`,
			18+i%10, i%5, 15+i%20, i%10)
		if _, err := tx.ExecContext(ctx, `INSERT INTO state_history (thing_id, alias, body, at) VALUES (?, 'AC', ?, ?)`,
			thing, body, at.UnixMilli()); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return db, start
}

// BenchmarkStateHistoryPage reads a page of 100 of a thing's 100,000
// history entries: the first, one after a key at the end, and the last
// minute by time range.
func BenchmarkStateHistoryPage(b *testing.B) {
	const n = 100_000
	db, start := benchHistory(b, n)
	ctx := b.Context()
	all := store.HistoryQuery{ThingID: "th.1", Alias: "AC"}
	entries, _, err := db.StateHistory(ctx, store.HistoryQuery{ThingID: "th.1", Alias: "AC", From: start.Add((n - 101) * time.Second)})
	if err != nil || len(entries) != 101 {
		b.Fatal(len(entries), err)
	}
	for _, bb := range []struct {
		name string
		q    store.HistoryQuery
	}{
		{"first", all},
		{"after a key at the end", store.HistoryQuery{ThingID: "th.1", Alias: "AC", After: entries[0].Key}},
		{"last minute", store.HistoryQuery{ThingID: "th.1", Alias: "AC", From: start.Add((n - 60) * time.Second)}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			bb.q.Limit = 100
			for b.Loop() {
				page, _, err := db.StateHistory(ctx, bb.q)
				if err != nil || len(page) == 0 {
					b.Fatal(len(page), err)
				}
			}
		})
	}
}

// BenchmarkAggregateStateHistory aggregates a thing's 100,000 history
// entries (28 hours at one a second), over all of them and by 15 minutes
// (112 groups): a COUNT of entries, the SUM and MEAN of a field, its MIN
// and MAX (one more pass each, to find the entry), and all five.
func BenchmarkAggregateStateHistory(b *testing.B) {
	db, _ := benchHistory(b, 100_000)
	ctx := b.Context()
	const f = "presetTemperature"
	for _, aggs := range []struct {
		name string
		aggs []store.Aggregate
	}{
		{"count", []store.Aggregate{{Kind: store.AggregateCount}}},
		{"sum mean", []store.Aggregate{{Kind: store.AggregateSum, Field: f}, {Kind: store.AggregateMean, Field: f}}},
		{"min max", []store.Aggregate{{Kind: store.AggregateMin, Field: f}, {Kind: store.AggregateMax, Field: f}}},
		{"all five", []store.Aggregate{{Kind: store.AggregateCount, Field: f}, {Kind: store.AggregateSum, Field: f},
			{Kind: store.AggregateMean, Field: f}, {Kind: store.AggregateMin, Field: f}, {Kind: store.AggregateMax, Field: f}}},
	} {
		for _, interval := range []time.Duration{0, 15 * time.Minute} {
			b.Run(fmt.Sprintf("%s/grouped %v", aggs.name, interval), func(b *testing.B) {
				q := store.HistoryAggregation{ThingID: "th.1", Alias: "AC", Interval: interval, Aggregates: aggs.aggs}
				for b.Loop() {
					groups, err := db.AggregateStateHistory(ctx, q)
					if err != nil || len(groups) == 0 {
						b.Fatal(len(groups), err)
					}
				}
			})
		}
	}
}
