package sqlite

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// StateHistory returns the history of an alias, oldest first.
func (db *DB) StateHistory(ctx context.Context, thingID, alias string, from, to time.Time, limit int) ([]store.State, error) {
	upper, lim := int64(math.MaxInt64), int64(-1)
	if limit > 0 {
		lim = int64(limit)
	}
	if !to.IsZero() {
		upper = to.UnixMilli()
	}
	rows, err := db.r.QueryContext(ctx, `SELECT thing_id, alias, body, at FROM state_history
		WHERE thing_id = ? AND alias = ? AND at >= ? AND at <= ? ORDER BY at, seq LIMIT ?`,
		thingID, alias, from.UnixMilli(), upper, lim)
	if err != nil {
		return nil, fmt.Errorf("state history of %q: %w", thingID, err)
	}
	defer rows.Close()
	out := []store.State{}
	for rows.Next() {
		var s store.State
		var ms int64
		if err := rows.Scan(&s.ThingID, &s.Alias, jsonDest(&s.Body), &ms); err != nil {
			return nil, fmt.Errorf("state history of %q: %w", thingID, err)
		}
		s.ModifiedAt = fromMillis(ms)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state history of %q: %w", thingID, err)
	}
	return out, nil
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
