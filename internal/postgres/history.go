package postgres

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// StateHistory returns the history of an alias, oldest first.
func (db *DB) StateHistory(ctx context.Context, thingID, alias string, from, to time.Time, limit int) ([]store.State, error) {
	upper := int64(math.MaxInt64)
	if !to.IsZero() {
		upper = to.UnixMilli()
	}
	rows, err := db.pool.Query(ctx, `SELECT thing_id, alias, body, at FROM state_history
		WHERE thing_id = $1 AND alias = $2 AND at >= $3 AND at <= $4 ORDER BY at, seq LIMIT $5`,
		thingID, alias, from.UnixMilli(), upper, pageLimit(limit))
	states, _, err := collect(rows, err, scanState)
	if err != nil {
		return nil, fmt.Errorf("state history of %q: %w", thingID, err)
	}
	return states, nil
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
