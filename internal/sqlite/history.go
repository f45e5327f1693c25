package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// The state history is one table, state_history, whose index
// (thing_id, alias, at) holds the rowid seq as its last column: every read
// below is a range of that index, and a page comes in history order
// (at, seq) without a sort (plan_test.go), so no new index was needed. A
// page key is the position of an entry, "at.seq"; an aggregation is one
// pass over the range in SQL, plus at most one per MIN or MAX to find the
// entry holding the value.

// historyRange is the WHERE clause of every history read: the entries of
// thing ?1, alias ?2, with ?3 <= at <= ?4 (ms).
const historyRange = `thing_id = ?1 AND alias = ?2 AND at >= ?3 AND at <= ?4`

// historyPageQuery is a page of the range after the position (?5, ?6) (at,
// seq), ?7 entries at most. ?3 must not be before ?5: SQLite bounds an
// index range by one lower bound only.
const historyPageQuery = `SELECT seq, body, at FROM state_history
	WHERE ` + historyRange + ` AND (at > ?5 OR seq > ?6)
	ORDER BY at, seq LIMIT ?7`

// StateHistory returns a page of the history of an alias in history order
// (at, seq), keyset-paged: the key is the (at, seq) of the entry the page
// starts after, so appends and prunes do not move it. The lower bound of
// the index range is the later of the query's From and the key's time; the
// entries at the key's time up to its seq are filtered out of the range.
// A page after a key at the end of 100,000 entries takes 0.4 ms, as the
// first page does (BenchmarkStateHistoryPage).
func (db *DB) StateHistory(ctx context.Context, q store.HistoryQuery) ([]store.HistoryEntry, string, error) {
	lo, hi := store.HistoryBounds(q.From, q.To)
	afterAt, afterSeq := int64(math.MinInt64), int64(0)
	if q.After != "" {
		var err error
		if afterAt, afterSeq, err = store.ParseHistoryKey(q.After); err != nil {
			return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
		}
	}
	rows, err := db.r.QueryContext(ctx, historyPageQuery, q.ThingID, q.Alias, max(lo, afterAt), hi, afterAt, afterSeq, sqlLimit(q.Limit))
	if err != nil {
		return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
	}
	defer rows.Close()
	out := []store.HistoryEntry{}
	for rows.Next() {
		e := store.HistoryEntry{State: store.State{ThingID: q.ThingID, Alias: q.Alias}}
		var seq, ms int64
		if err := rows.Scan(&seq, jsonDest(&e.Body), &ms); err != nil {
			return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
		}
		e.ModifiedAt = fromMillis(ms)
		e.Key = store.HistoryKey(ms, seq)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("state history of %q: %w", q.ThingID, err)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
		return out, out[len(out)-1].Key, nil
	}
	return out, "", nil
}

// scaleDown and scaleUp scale the numbers of a SUM by 2^-64 and back: a
// float64 total of fewer than 2^64 scaled numbers cannot overflow, and a
// power of two scales exactly (but for numbers below 2^-958, which cannot
// matter next to a sum that overflowed).
var scaleDown, scaleUp = math.Ldexp(1, -64), math.Ldexp(1, 64)

// AggregateStateHistory computes the aggregates in one read transaction
// (one snapshot): one pass over the range computes every COUNT, SUM and
// MEAN and the MIN and MAX values (historyStats); then each MIN and MAX
// finds the first entry holding its value in each group, at most one more
// pass (historyExtremes). See fieldValueSQL for how a field is read.
func (db *DB) AggregateStateHistory(ctx context.Context, q store.HistoryAggregation) ([]store.HistoryGroup, error) {
	fail := func(err error) ([]store.HistoryGroup, error) {
		return nil, fmt.Errorf("aggregate state history of %q: %w", q.ThingID, err)
	}
	step, fields, col, err := q.Plan()
	if err != nil {
		return fail(err)
	}
	lo, hi := store.HistoryBounds(q.From, q.To)

	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback() // read-only: nothing to commit

	groups, err := historyStats(ctx, tx, q, fields, lo, hi, step)
	if err != nil {
		return fail(err)
	}
	totals := make([]store.GroupTotals, len(groups))
	for i, g := range groups {
		totals[i] = store.GroupTotals{Start: g.start, Entries: g.entries, Fields: make([]store.FieldTotals, len(g.fields))}
		for j, f := range g.fields {
			totals[i].Fields[j] = store.FieldTotals{Present: f.present, Sum: f.sum(), Mean: f.mean()}
		}
	}
	out, err := q.Assemble(step, col, totals, func(a store.Aggregate) (map[int]store.AggregateValue, error) {
		return historyExtremes(ctx, tx, q, a, lo, hi, step, groups, col[a.Field])
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// groupStats is what the first pass of an aggregation finds in one group.
type groupStats struct {
	start   int64 // ms; 0 when not grouped
	entries int64
	fields  []fieldStats // one per field
}

// fieldStats is what the first pass of an aggregation finds of one field in
// one group: the count of its values and of its numbers, and of those the
// totals, the smallest and the largest.
type fieldStats struct {
	present, numbers int64
	// total is the TOTAL of the numbers, NULL if SQLite made it NaN;
	// scaled the TOTAL of the numbers times scaleDown.
	total            sql.NullFloat64
	scaled           float64
	minimum, maximum float64
}

// sum is the SUM: the total, or when it overflowed, the scaled total
// scaled back; nil without numbers or beyond a float64.
func (f fieldStats) sum() *float64 {
	if f.numbers == 0 {
		return nil
	}
	s := f.total.Float64
	if !f.total.Valid || math.IsInf(s, 0) {
		s = f.scaled * scaleUp
	}
	if math.IsInf(s, 0) {
		return nil
	}
	return &s
}

// mean is the MEAN, kept between the smallest and largest number (scaling
// back can round past them at the edge of the float64 range); nil without
// numbers.
func (f fieldStats) mean() *float64 {
	if f.numbers == 0 {
		return nil
	}
	n := float64(f.numbers)
	m := f.total.Float64 / n
	if !f.total.Valid || math.IsInf(f.total.Float64, 0) {
		m = f.scaled / n * scaleUp
	}
	m = min(max(m, f.minimum), f.maximum)
	return &m
}

// historyStats runs the first pass of an aggregation: every group, oldest
// first; one group, start 0, when step is 0.
func historyStats(ctx context.Context, tx *sql.Tx, q store.HistoryAggregation, fields []string, lo, hi, step int64) ([]groupStats, error) {
	args := sqlArgs{q.ThingID, q.Alias, lo, hi}
	rowsSQL := historyRows(fields, step, &args)
	var b strings.Builder
	b.WriteString(`SELECT g, COUNT(*)`)
	if len(fields) > 0 {
		scale := args.add(scaleDown)
		for i := range fields {
			x := fmt.Sprintf("(CASE WHEN typeof(v%d) = 'real' THEN v%d END)", i, i)
			fmt.Fprintf(&b, `, COUNT(v%d), COUNT(%s), TOTAL(%s), TOTAL(%s * %s), MIN(%s), MAX(%s)`, i, x, x, x, scale, x, x)
		}
	}
	b.WriteString(` FROM ` + rowsSQL)
	if step > 0 {
		b.WriteString(` GROUP BY g ORDER BY g`)
	}
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []groupStats
	for rows.Next() {
		var g sql.NullInt64 // NULL in the one row of no entry
		gs := groupStats{fields: make([]fieldStats, len(fields))}
		dest := []any{&g, &gs.entries}
		for i := range gs.fields {
			f := &gs.fields[i]
			dest = append(dest, &f.present, &f.numbers, &f.total, &f.scaled, nullAsZero{&f.minimum}, nullAsZero{&f.maximum})
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		gs.start = g.Int64
		out = append(out, gs)
	}
	return out, rows.Err()
}

// nullAsZero scans a REAL or NULL column into a float64, NULL as 0.
type nullAsZero struct{ f *float64 }

func (n nullAsZero) Scan(src any) error {
	var v sql.NullFloat64
	if err := v.Scan(src); err != nil {
		return err
	}
	*n.f = v.Float64
	return nil
}

// historyExtremes finds, for a MIN or MAX of the field in column col, the
// first entry in history order of each group whose number is the group's
// smallest or largest, as the first pass found it. The groups and their
// values go in as one JSON array parameter, [[start, value], …]; for each,
// a correlated subquery walks the group's range of the index from its
// start and stops at the first entry holding the value: usually soon,
// at worst at the group's end, so never more than one more pass.
func historyExtremes(ctx context.Context, tx *sql.Tx, q store.HistoryAggregation, a store.Aggregate, lo, hi, step int64,
	groups []groupStats, col int) (map[int]store.AggregateValue, error) {
	var list []byte
	index := map[int64]int{}
	for gi, g := range groups {
		f := g.fields[col]
		if f.numbers == 0 {
			continue
		}
		v := f.minimum
		if a.Kind == store.AggregateMax {
			v = f.maximum
		}
		if len(list) == 0 {
			list = append(list, '[')
		} else {
			list = append(list, ',')
		}
		// 'g' with the shortest precision reads back as the same float64.
		list = fmt.Appendf(list, "[%d,%s]", g.start, strconv.FormatFloat(v, 'g', -1, 64))
		index[g.start] = gi
	}
	if len(list) == 0 {
		return nil, nil
	}
	list = append(list, ']')
	// The group's range is the one bound of each side of at: SQLite
	// bounds an index range by one only, and one from the whole range
	// would walk it from its start for every group.
	args := sqlArgs{q.ThingID, q.Alias, lo, hi}
	groupRange := `at >= ?3 AND at <= ?4`
	if step > 0 {
		groupRange = `at >= max(?3, m.g) AND at <= min(?4, m.g + ` + args.add(step-1) + `)`
	}
	listArg := args.add(string(list))
	value := fieldValueSQL(a.Field, &args)
	rows, err := tx.QueryContext(ctx, `WITH m (g, v) AS (SELECT value ->> 0, value ->> 1 FROM json_each(`+listArg+`))
		SELECT m.g, m.v, h.at, h.body FROM m JOIN state_history AS h ON h.seq = (SELECT seq FROM state_history
			WHERE thing_id = ?1 AND alias = ?2 AND `+groupRange+` AND `+value+` = m.v ORDER BY at, seq LIMIT 1)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]store.AggregateValue{}
	for rows.Next() {
		var g, ms int64
		var v float64
		e := &store.State{ThingID: q.ThingID, Alias: q.Alias}
		if err := rows.Scan(&g, &v, &ms, jsonDest(&e.Body)); err != nil {
			return nil, err
		}
		e.ModifiedAt = fromMillis(ms)
		if gi, ok := index[g]; ok {
			out[gi] = store.AggregateValue{Value: &v, Entry: e}
		}
	}
	return out, rows.Err()
}

// sqlArgs are the arguments of a query being built, numbered ?1, ?2, … in
// order.
type sqlArgs []any

// add appends an argument and returns its parameter.
func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "?" + strconv.Itoa(len(*a))
}

// historyRows is a subquery of the entries in the range (parameters ?1 to
// ?4), one row each: seq, at, g (the group's start, at − at % step, or 0
// when step is 0) and v0, v1, … the values of fields (fieldValueSQL). Its
// parameters are added to args. Its LIMIT -1 keeps SQLite from flattening
// it into the query around it, which would compute each v once per use
// instead of once per row.
func historyRows(fields []string, step int64, args *sqlArgs) string {
	var b strings.Builder
	b.WriteString(`(SELECT seq, at, `)
	if step > 0 {
		b.WriteString(`at - at % ` + args.add(step) + ` AS g`)
	} else {
		b.WriteString(`0 AS g`)
	}
	for i, f := range fields {
		fmt.Fprintf(&b, `, %s AS v%d`, fieldValueSQL(f, args), i)
	}
	b.WriteString(` FROM state_history WHERE ` + historyRange + ` LIMIT -1)`)
	return b.String()
}

// fieldValueSQL is an SQL expression of the member called name of the
// row's body: REAL for a JSON number, 'x' for any other value but null,
// NULL for null or no such member. Its parameter is added to args.
//
// It reads the members with json_each rather than a JSON path: a path
// finds the first member of a name given twice, Go and jsonb take the
// last, and a path would need the name escaped. max(id) picks the last
// (the bare columns of a max() come from its row; ids are unique), and
// costs no more than a path did (json_type and ->>) in
// BenchmarkAggregateStateHistory.
func fieldValueSQL(name string, args *sqlArgs) string {
	return `(SELECT CASE WHEN type IN ('integer', 'real') THEN CAST(value AS REAL) WHEN type <> 'null' THEN 'x' END
		FROM (SELECT type, value, max(id) FROM json_each(body) WHERE key = ` + args.add(name) + `))`
}

// PruneStateHistory deletes the history older than before, a chunk at a
// time (execChunks).
func (db *DB) PruneStateHistory(ctx context.Context, before time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `DELETE FROM state_history WHERE seq IN
		(SELECT seq FROM state_history WHERE at < ? LIMIT ?)`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("prune state history: %w", err)
	}
	return n, nil
}
