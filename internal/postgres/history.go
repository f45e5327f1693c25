package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

// The state history is one table, state_history, read by ranges of its
// index (thing_id, alias, at, seq): a page is keyset-paged by (at, seq) as
// in SQLite ("at.seq" keys), so appends do not move it; WriteStates holds
// the thing's state lock, so a thing's entries commit in seq order and a
// page never misses one. Aggregates are one pass in SQL over the range with
// the bodies read as jsonb (whose -> takes the last member of a name given
// twice, as the store's contract says) and the numbers summed as numeric,
// which cannot overflow: SUM and MEAN are exact before the conversion to
// float64. MIN and MAX find their entries in one more pass each.

// StateHistory returns a page of the history of an alias in history order
// (at, seq), after the entry whose key is q.After.
func (db *DB) StateHistory(ctx context.Context, q store.HistoryQuery) ([]store.HistoryEntry, string, error) {
	lo, hi := store.HistoryBounds(q.From, q.To)
	afterAt, afterSeq := int64(math.MinInt64), int64(0)
	if q.After != "" {
		var err error
		if afterAt, afterSeq, err = store.ParseHistoryKey(q.After); err != nil {
			return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
		}
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, body, at FROM state_history
		WHERE thing_id = $1 AND alias = $2 AND at >= $3 AND at <= $4 AND (at, seq) > ($5, $6)
		ORDER BY at, seq LIMIT $7`, q.ThingID, q.Alias, lo, hi, afterAt, afterSeq, sqlLimit(q.Limit))
	out, _, err := collect(rows, err, func(r pgx.Rows) (store.HistoryEntry, int64, error) {
		e := store.HistoryEntry{State: store.State{ThingID: q.ThingID, Alias: q.Alias}}
		var seq, ms int64
		if err := r.Scan(&seq, jsonDest{(*[]byte)(&e.Body)}, &ms); err != nil {
			return e, 0, err
		}
		e.ModifiedAt = fromMillis(ms)
		e.Key = store.HistoryKey(ms, seq)
		return e, seq, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
		return out, out[len(out)-1].Key, nil
	}
	return out, "", nil
}

// args are the arguments of a query being built, numbered $1, $2, … in
// order.
type args []any

func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// historyRows is the CTE r of the entries in the range: seq, at, body, g
// (the group's start, at − at % step, or 0) and j, the body as jsonb.
func historyRows(q store.HistoryAggregation, lo, hi, step int64, a *args) string {
	g := `0::bigint`
	if step > 0 {
		g = `at - at % ` + a.add(step)
	}
	return `r AS (SELECT seq, at, body, ` + g + ` AS g, body::jsonb AS j FROM state_history
		WHERE thing_id = ` + a.add(q.ThingID) + ` AND alias = ` + a.add(q.Alias) + ` AND at >= ` + a.add(lo) +
		` AND at <= ` + a.add(hi) + `)`
}

// numberSQL is the numeric value of the member named by parameter p of j,
// NULL unless it is a JSON number.
func numberSQL(p string) string {
	return `(CASE WHEN jsonb_typeof(j -> ` + p + `) = 'number' THEN (j -> ` + p + `)::numeric END)`
}

// AggregateStateHistory computes the aggregates in one repeatable-read
// transaction (one snapshot).
func (db *DB) AggregateStateHistory(ctx context.Context, q store.HistoryAggregation) ([]store.HistoryGroup, error) {
	fail := func(err error) ([]store.HistoryGroup, error) {
		return nil, fmt.Errorf("aggregate state history of %q: %w", q.ThingID, err)
	}
	step, fields, col, err := q.Plan()
	if err != nil {
		return fail(err)
	}
	lo, hi := store.HistoryBounds(q.From, q.To)
	var out []store.HistoryGroup
	err = pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		groups, err := historyStats(ctx, tx, q, fields, lo, hi, step)
		if err != nil {
			return err
		}
		index := map[int64]int{}
		totals := make([]store.GroupTotals, len(groups))
		for i, g := range groups {
			index[g.start] = i
			totals[i] = store.GroupTotals{Start: g.start, Entries: g.entries, Fields: make([]store.FieldTotals, len(g.fields))}
			for j, f := range g.fields {
				totals[i].Fields[j] = store.FieldTotals{Present: f.present, Sum: finite(f.sum), Mean: f.meanValue()}
			}
		}
		out, err = q.Assemble(step, col, totals, func(a store.Aggregate) (map[int]store.AggregateValue, error) {
			return historyExtremes(ctx, tx, q, a, lo, hi, step, index)
		})
		return err
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

type groupStats struct {
	start   int64
	entries int64
	fields  []fieldStats
}

// fieldStats holds the numeric aggregates as PostgreSQL's text: exact, and
// beyond a float64 when they are.
type fieldStats struct {
	present                     int64
	sum, mean, minimum, maximum *string
}

// meanValue is the MEAN as a float64, kept between MIN and MAX (the
// rounding of the numeric can step past them at the float64 edge); nil
// without a number.
func (f fieldStats) meanValue() *float64 {
	m := finite(f.mean)
	if m == nil {
		return nil
	}
	if lo := finite(f.minimum); lo != nil && *m < *lo {
		m = lo
	}
	if hi := finite(f.maximum); hi != nil && *m > *hi {
		m = hi
	}
	return m
}

// finite converts a numeric's text to a float64: nil for NULL or a value
// beyond a float64.
func finite(s *string) *float64 {
	if s == nil {
		return nil
	}
	f, err := strconv.ParseFloat(*s, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func historyStats(ctx context.Context, tx pgx.Tx, q store.HistoryAggregation, fields []string, lo, hi, step int64) ([]groupStats, error) {
	var a args
	cte := historyRows(q, lo, hi, step, &a)
	var b strings.Builder
	g := `g`
	if step == 0 {
		g = `MIN(g)` // one group of every entry, NULL when there is none
	}
	b.WriteString(`WITH ` + cte + ` SELECT ` + g + `, COUNT(*)`)
	for _, f := range fields {
		p := a.add(f)
		x := numberSQL(p)
		fmt.Fprintf(&b, `, COUNT(*) FILTER (WHERE jsonb_typeof(j -> %s) IS DISTINCT FROM 'null' AND j ? %s)`, p, p)
		fmt.Fprintf(&b, `, SUM(%s)::text, AVG(%s)::text, MIN(%s)::text, MAX(%s)::text`, x, x, x, x)
	}
	b.WriteString(` FROM r`)
	if step > 0 {
		b.WriteString(` GROUP BY g ORDER BY g`)
	}
	rows, err := tx.Query(ctx, b.String(), a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []groupStats
	for rows.Next() {
		var g *int64 // NULL in the one row of no entry
		gs := groupStats{fields: make([]fieldStats, len(fields))}
		dest := []any{&g, &gs.entries}
		for i := range gs.fields {
			f := &gs.fields[i]
			dest = append(dest, &f.present, &f.sum, &f.mean, &f.minimum, &f.maximum)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if g != nil {
			gs.start = *g
		}
		out = append(out, gs)
	}
	return out, rows.Err()
}

// historyExtremes finds, for a MIN or MAX, the first entry in history order
// of each group whose number is the group's smallest or largest.
func historyExtremes(ctx context.Context, tx pgx.Tx, q store.HistoryAggregation, agg store.Aggregate, lo, hi, step int64,
	index map[int64]int) (map[int]store.AggregateValue, error) {
	var a args
	cte := historyRows(q, lo, hi, step, &a)
	x := numberSQL(a.add(agg.Field))
	fn := "MIN"
	if agg.Kind == store.AggregateMax {
		fn = "MAX"
	}
	rows, err := tx.Query(ctx, `WITH `+cte+`, m AS (SELECT g, `+fn+`(`+x+`) AS v FROM r GROUP BY g)
		SELECT DISTINCT ON (r.g) r.g, m.v::text, r.at, r.body FROM r JOIN m ON m.g = r.g AND `+x+` = m.v
		ORDER BY r.g, r.at, r.seq`, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]store.AggregateValue{}
	for rows.Next() {
		var g, ms int64
		var v string
		e := &store.State{ThingID: q.ThingID, Alias: q.Alias}
		if err := rows.Scan(&g, &v, &ms, jsonDest{(*[]byte)(&e.Body)}); err != nil {
			return nil, err
		}
		e.ModifiedAt = fromMillis(ms)
		gi, ok := index[g]
		if !ok {
			continue
		}
		if f := finite(&v); f != nil {
			out[gi] = store.AggregateValue{Value: f, Entry: e}
		}
	}
	return out, rows.Err()
}

// PruneStateHistory deletes the history older than before, a chunk at a
// time, through state_history_at.
func (db *DB) PruneStateHistory(ctx context.Context, before time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `DELETE FROM state_history WHERE seq IN
		(SELECT seq FROM state_history WHERE at < $1 LIMIT $2)`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("prune state history: %w", err)
	}
	return n, nil
}
