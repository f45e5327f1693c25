package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/thingif/thingif/internal/store"
)

// WriteStates applies one state upload in one transaction. With
// store.StateReplace the thing's other aliases are removed; with
// store.StateMerge each alias is merged into its stored object with
// store.MergeObject. Every written alias also gets a state_history row
// holding its resulting state. It returns store.ErrNotFound if the thing
// does not exist and an error if a body is not a JSON object.
func (db *DB) WriteStates(ctx context.Context, w store.StateWrite) error {
	// Validate (and, for merges, compact) outside the transaction: the
	// writer connection is shared by every write.
	bodies, err := w.Bodies()
	if err != nil {
		return fmt.Errorf("write states of %q: %w", w.ThingID, err)
	}

	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		switch w.Mode {
		case store.StateReplace:
			if len(bodies) == 1 { // the common case, without json_each
				for alias := range bodies {
					_, err = tx.StmtContext(ctx, db.ws.deleteOtherStates).ExecContext(ctx, w.ThingID, alias)
				}
			} else {
				keep, _ := json.Marshal(slices.Collect(maps.Keys(bodies))) // strings: cannot fail
				_, err = tx.StmtContext(ctx, db.ws.deleteStates).ExecContext(ctx, w.ThingID, string(keep))
			}
			if err != nil {
				return fmt.Errorf("write states of %q: %w", w.ThingID, err)
			}
		case store.StateMerge:
			get := tx.StmtContext(ctx, db.ws.stateBody)
			for alias, patch := range bodies {
				var old []byte
				switch err = get.QueryRowContext(ctx, w.ThingID, alias).Scan(&old); {
				case errors.Is(err, sql.ErrNoRows):
					err = nil
					continue // the patch is the whole new state
				case err != nil:
					return fmt.Errorf("write states of %q: read alias %q: %w", w.ThingID, alias, err)
				}
				var merged json.RawMessage
				if merged, err = store.MergeObject(old, patch); err != nil {
					return fmt.Errorf("write states of %q: alias %q: %w", w.ThingID, alias, err)
				}
				bodies[alias] = merged
			}
		default:
			return fmt.Errorf("write states of %q: unknown mode %d", w.ThingID, w.Mode)
		}

		at := millis(w.At)
		upsert := tx.StmtContext(ctx, db.ws.upsertState)
		history := tx.StmtContext(ctx, db.ws.insertHistory)
		for _, alias := range slices.Sorted(maps.Keys(bodies)) { // deterministic history order
			body := bodies[alias]
			if _, err = upsert.ExecContext(ctx, w.ThingID, alias, string(body), at); err != nil {
				return fmt.Errorf("write states of %q: alias %q: %w", w.ThingID, alias, translate(err))
			}
			if _, err = history.ExecContext(ctx, w.ThingID, alias, string(body), at); err != nil {
				return fmt.Errorf("write states of %q: history of alias %q: %w", w.ThingID, alias, translate(err))
			}
		}
		return nil
	})
}

// States returns the latest state of every alias of the thing, ordered by
// alias; an empty slice when none was uploaded.
func (db *DB) States(ctx context.Context, thingID string) ([]store.State, error) {
	rows, err := db.rs.states.QueryContext(ctx, thingID)
	if err != nil {
		return nil, fmt.Errorf("states of %q: %w", thingID, err)
	}
	defer rows.Close()
	states := []store.State{}
	for rows.Next() {
		var s store.State
		var modified int64
		if err := rows.Scan(&s.ThingID, &s.Alias, jsonDest(&s.Body), &modified); err != nil {
			return nil, fmt.Errorf("states of %q: %w", thingID, err)
		}
		s.ModifiedAt = fromMillis(modified)
		states = append(states, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("states of %q: %w", thingID, err)
	}
	return states, nil
}
