package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

// WriteStates applies one state upload in one transaction, holding the
// thing's state lock (lockThing) so that merges from several nodes lose
// nothing and the thing's history rows commit in seq order. With
// store.StateReplace the thing's other aliases are removed; with
// store.StateMerge each alias is merged into its stored object with
// store.MergeObject. Every written alias also gets a state_history row
// holding its resulting state. It returns store.ErrNotFound if the thing
// does not exist and an error if a body is not a JSON object.
func (db *DB) WriteStates(ctx context.Context, w store.StateWrite) error {
	bodies, err := w.Bodies()
	if err != nil {
		return fmt.Errorf("write states of %q: %w", w.ThingID, err)
	}
	if w.Mode != store.StateReplace && w.Mode != store.StateMerge {
		return fmt.Errorf("write states of %q: unknown mode %d", w.ThingID, w.Mode)
	}
	if w.Mode == store.StateReplace {
		return db.replaceStates(ctx, w, bodies)
	}
	return db.tx(ctx, func(tx pgx.Tx) error {
		if err := lockThing(ctx, tx, lockStates, w.ThingID); err != nil {
			return fmt.Errorf("write states of %q: %w", w.ThingID, err)
		}
		aliases := slices.Sorted(maps.Keys(bodies)) // deterministic history order
		switch w.Mode {
		case store.StateReplace:
			if _, err := tx.Exec(ctx, `DELETE FROM states WHERE thing_id = $1 AND alias <> ALL($2::text[])`,
				w.ThingID, aliases); err != nil {
				return fmt.Errorf("write states of %q: %w", w.ThingID, err)
			}
		case store.StateMerge:
			for _, alias := range aliases {
				var old string
				err := tx.QueryRow(ctx, `SELECT body FROM states WHERE thing_id = $1 AND alias = $2`, w.ThingID, alias).Scan(&old)
				switch {
				case errors.Is(err, pgx.ErrNoRows):
					continue // the patch is the whole new state
				case err != nil:
					return fmt.Errorf("write states of %q: read alias %q: %w", w.ThingID, alias, err)
				}
				merged, err := store.MergeObject([]byte(old), bodies[alias])
				if err != nil {
					return fmt.Errorf("write states of %q: alias %q: %w", w.ThingID, alias, err)
				}
				bodies[alias] = merged
			}
		}
		at := millis(w.At)
		for _, alias := range aliases {
			body := string(bodies[alias])
			if _, err := tx.Exec(ctx, `INSERT INTO states (thing_id, alias, body, modified_at) VALUES ($1, $2, $3, $4)
				ON CONFLICT (thing_id, alias) DO UPDATE SET body = excluded.body, modified_at = excluded.modified_at`,
				w.ThingID, alias, body, at); err != nil {
				return fmt.Errorf("write states of %q: alias %q: %w", w.ThingID, alias, translate(err))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO state_history (thing_id, alias, body, at) VALUES ($1, $2, $3, $4)`,
				w.ThingID, alias, body, at); err != nil {
				return fmt.Errorf("write states of %q: history of alias %q: %w", w.ThingID, alias, translate(err))
			}
		}
		return nil
	})
}

// replaceStates is WriteStates of a replacing upload in one round trip: a
// batch, which runs in one implicit transaction, of the thing's state lock,
// the removal of the aliases it does not name, and each alias's state and
// history row. It reads nothing, so nothing waits for an answer in between.
func (db *DB) replaceStates(ctx context.Context, w store.StateWrite, bodies map[string]json.RawMessage) error {
	aliases := slices.Sorted(maps.Keys(bodies)) // deterministic history order
	at := millis(w.At)
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockStates), w.ThingID)
	b.Queue(`DELETE FROM states WHERE thing_id = $1 AND alias <> ALL($2::text[])`, w.ThingID, aliases)
	for _, alias := range aliases {
		body := string(bodies[alias])
		b.Queue(`INSERT INTO states (thing_id, alias, body, modified_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (thing_id, alias) DO UPDATE SET body = excluded.body, modified_at = excluded.modified_at`,
			w.ThingID, alias, body, at)
		b.Queue(`INSERT INTO state_history (thing_id, alias, body, at) VALUES ($1, $2, $3, $4)`, w.ThingID, alias, body, at)
	}
	br := db.pool.SendBatch(ctx, b)
	var err error
	for range b.Len() {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write states of %q: %w", w.ThingID, translate(err))
	}
	return nil
}

// States returns the latest state of every alias of the thing, ordered by
// alias; an empty slice when none was uploaded.
func (db *DB) States(ctx context.Context, thingID string) ([]store.State, error) {
	return states(ctx, db.pool, thingID)
}

func states(ctx context.Context, q querier, thingID string) ([]store.State, error) {
	rows, err := q.Query(ctx, `SELECT thing_id, alias, body, modified_at FROM states WHERE thing_id = $1 ORDER BY alias`, thingID)
	states, _, err := collect(rows, err, scanState)
	if err != nil {
		return nil, fmt.Errorf("states of %q: %w", thingID, err)
	}
	return states, nil
}

// scanState scans thing_id, alias, body and a time.
func scanState(r pgx.Rows) (store.State, int64, error) {
	var s store.State
	var ms int64
	if err := r.Scan(&s.ThingID, &s.Alias, jsonDest{(*[]byte)(&s.Body)}, &ms); err != nil {
		return store.State{}, 0, err
	}
	s.ModifiedAt = fromMillis(ms)
	return s, 0, nil
}
