package postgres

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/thingif/thingif/internal/store"
)

const triggerCols = "seq, id, app_id, thing_id, event_source, predicate, command, server_code, title, description, metadata, disabled, disabled_reason, evaluated, satisfied, fired_at, created_at, modified_at"

func scanTrigger(s pgx.Row) (store.Trigger, int64, error) {
	var tr store.Trigger
	var seq, fired, created, modified int64
	if err := s.Scan(&seq, &tr.ID, &tr.AppID, &tr.ThingID, &tr.EventSource, jsonDest{(*[]byte)(&tr.Predicate)},
		jsonDest{(*[]byte)(&tr.Command)}, jsonDest{(*[]byte)(&tr.ServerCode)}, &tr.Title, &tr.Description,
		jsonDest{(*[]byte)(&tr.Metadata)}, &tr.Disabled, &tr.DisabledReason, &tr.Run.Evaluated, &tr.Run.Satisfied,
		&fired, &created, &modified); err != nil {
		return store.Trigger{}, 0, err
	}
	tr.Run.FiredAt = fromMillis(fired)
	tr.CreatedAt = fromMillis(created)
	tr.ModifiedAt = fromMillis(modified)
	return tr, seq, nil
}

func scanTriggerRows(r pgx.Rows) (store.Trigger, int64, error) { return scanTrigger(r) }

// CreateTrigger stores a new trigger. It returns store.ErrConflict if the
// ID is taken, store.ErrNotFound if its thing does not exist and
// store.ErrTooManyTriggers if maxPerThing > 0 and the thing has that many
// triggers; the thing's trigger lock (lockThing) makes the bound exact
// across nodes.
func (db *DB) CreateTrigger(ctx context.Context, tr store.Trigger, maxPerThing int) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		if maxPerThing > 0 {
			if err := lockThing(ctx, tx, lockTriggers, tr.ThingID); err != nil {
				return fmt.Errorf("create trigger %q: %w", tr.ID, err)
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM triggers WHERE thing_id = $1 LIMIT $2) AS t`,
				tr.ThingID, maxPerThing).Scan(&n); err != nil {
				return fmt.Errorf("create trigger %q: count triggers: %w", tr.ID, err)
			}
			if n >= maxPerThing {
				return fmt.Errorf("create trigger %q: thing %q has %d or more: %w", tr.ID, tr.ThingID, n, store.ErrTooManyTriggers)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO triggers (id, app_id, thing_id, event_source, predicate, command,
			server_code, title, description, metadata, disabled, disabled_reason, evaluated, satisfied, fired_at,
			created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			tr.ID, tr.AppID, tr.ThingID, tr.EventSource, string(tr.Predicate), jsonArg(tr.Command), jsonArg(tr.ServerCode),
			tr.Title, tr.Description, jsonArg(tr.Metadata), tr.Disabled, tr.DisabledReason, tr.Run.Evaluated,
			tr.Run.Satisfied, millis(tr.Run.FiredAt), millis(tr.CreatedAt), millis(tr.ModifiedAt)); err != nil {
			return fmt.Errorf("create trigger %q: %w", tr.ID, translate(err))
		}
		return nil
	})
}

// Trigger returns a trigger of the thing, or store.ErrNotFound.
func (db *DB) Trigger(ctx context.Context, thingID, id string) (store.Trigger, error) {
	tr, _, err := scanTrigger(db.pool.QueryRow(ctx, `SELECT `+triggerCols+` FROM triggers WHERE thing_id = $1 AND id = $2`, thingID, id))
	if err != nil {
		return store.Trigger{}, notFound(err, fmt.Sprintf("trigger %q", id))
	}
	return tr, nil
}

// Triggers lists the triggers of a thing, oldest first.
func (db *DB) Triggers(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Trigger, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("triggers of %q: %w", thingID, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+triggerCols+` FROM triggers WHERE thing_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, thingID, after, sqlLimit(limit))
	trs, seqs, err := collect(rows, err, scanTriggerRows)
	if err != nil {
		return nil, "", fmt.Errorf("triggers of %q: %w", thingID, err)
	}
	trs, next := page(trs, seqs, limit)
	return trs, next, nil
}

// EnabledTriggers returns the enabled triggers with an event source, of one
// thing or of all.
func (db *DB) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	return enabledTriggers(ctx, db.pool, thingID, eventSource)
}

func enabledTriggers(ctx context.Context, q querier, thingID, eventSource string) ([]store.Trigger, error) {
	rows, err := q.Query(ctx, `SELECT `+triggerCols+` FROM triggers WHERE event_source = $1 AND NOT disabled
		AND ($2 = '' OR thing_id = $2) ORDER BY seq`, eventSource, thingID)
	trs, _, err := collect(rows, err, scanTriggerRows)
	if err != nil {
		return nil, fmt.Errorf("enabled %s triggers: %w", eventSource, err)
	}
	return trs, nil
}

// UpdateTrigger replaces the definition of a trigger.
func (db *DB) UpdateTrigger(ctx context.Context, tr store.Trigger) error {
	tag, err := db.pool.Exec(ctx, `UPDATE triggers SET event_source = $1, predicate = $2, command = $3, server_code = $4,
		title = $5, description = $6, metadata = $7, disabled = $8, disabled_reason = $9, evaluated = $10, satisfied = $11,
		fired_at = $12, modified_at = $13 WHERE thing_id = $14 AND id = $15`,
		tr.EventSource, string(tr.Predicate), jsonArg(tr.Command), jsonArg(tr.ServerCode), tr.Title, tr.Description,
		jsonArg(tr.Metadata), tr.Disabled, tr.DisabledReason, tr.Run.Evaluated, tr.Run.Satisfied,
		millis(tr.Run.FiredAt), millis(tr.ModifiedAt), tr.ThingID, tr.ID)
	return oneRow(tag, err, fmt.Sprintf("update trigger %q", tr.ID))
}

// SetTriggerRun records the evaluation state of a trigger.
func (db *DB) SetTriggerRun(ctx context.Context, thingID, id string, run store.TriggerRun) error {
	return setTriggerRun(ctx, db.pool, thingID, id, run)
}

func setTriggerRun(ctx context.Context, q querier, thingID, id string, run store.TriggerRun) error {
	tag, err := q.Exec(ctx, `UPDATE triggers SET evaluated = $1, satisfied = $2, fired_at = $3
		WHERE thing_id = $4 AND id = $5`, run.Evaluated, run.Satisfied, millis(run.FiredAt), thingID, id)
	return oneRow(tag, err, fmt.Sprintf("set run of trigger %q", id))
}

// DeleteTrigger deletes a trigger and its results.
func (db *DB) DeleteTrigger(ctx context.Context, thingID, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM triggers WHERE thing_id = $1 AND id = $2`, thingID, id)
	return oneRow(tag, err, fmt.Sprintf("delete trigger %q", id))
}

// AddTriggerResult stores the result of one server-code execution.
func (db *DB) AddTriggerResult(ctx context.Context, r store.TriggerResult) error {
	tag, err := db.pool.Exec(ctx, `INSERT INTO trigger_results (trigger_id, thing_id, succeeded, returned_value,
		error, endpoint, executed_at) SELECT id, thing_id, $1, $2, $3, $4, $5 FROM triggers WHERE thing_id = $6 AND id = $7`,
		r.Succeeded, jsonArg(r.ReturnedValue), r.Error, r.Endpoint, millis(r.ExecutedAt), r.ThingID, r.TriggerID)
	return oneRow(tag, err, fmt.Sprintf("add result of trigger %q", r.TriggerID))
}

// TriggerResults lists the results of a trigger, newest first.
func (db *DB) TriggerResults(ctx context.Context, thingID, triggerID, paginationKey string, limit int) ([]store.TriggerResult, string, error) {
	before, err := parseKey(paginationKey, math.MaxInt64)
	if err != nil {
		return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT seq, trigger_id, thing_id, succeeded, returned_value, error, endpoint, executed_at
		FROM trigger_results WHERE thing_id = $1 AND trigger_id = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4`,
		thingID, triggerID, before, sqlLimit(limit))
	out, seqs, err := collect(rows, err, func(r pgx.Rows) (store.TriggerResult, int64, error) {
		var res store.TriggerResult
		var seq, ms int64
		if err := r.Scan(&seq, &res.TriggerID, &res.ThingID, &res.Succeeded, jsonDest{(*[]byte)(&res.ReturnedValue)},
			&res.Error, &res.Endpoint, &ms); err != nil {
			return store.TriggerResult{}, 0, err
		}
		res.ExecutedAt = fromMillis(ms)
		return res, seq, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
	}
	out, next := page(out, seqs, limit)
	return out, next, nil
}

// LockTriggerRuns runs fn in a transaction that holds the thing's
// evaluation lock (lockThing), for the evaluation of its state triggers:
// one at a time in the cluster, reading the runs the previous one
// committed. fn reads and writes through runs, in the transaction, which
// commits if fn returns nil. Reads and writes on one connection: an
// evaluation holding a connection for its lock never waits for a second
// one, so evaluations cannot exhaust the pool between them.
func (db *DB) LockTriggerRuns(ctx context.Context, thingID string, fn func(runs TriggerRuns) error) error {
	return db.tx(ctx, func(tx pgx.Tx) error {
		if err := lockThing(ctx, tx, lockEvaluation, thingID); err != nil {
			return fmt.Errorf("evaluate triggers of %q: %w", thingID, err)
		}
		return fn(TriggerRuns{tx})
	})
}

// TriggerRuns is the store as LockTriggerRuns's transaction sees it: what
// an evaluation of state triggers reads and writes.
type TriggerRuns struct{ tx pgx.Tx }

// EnabledTriggers is DB.EnabledTriggers in the transaction.
func (r TriggerRuns) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	return enabledTriggers(ctx, r.tx, thingID, eventSource)
}

// States is DB.States in the transaction.
func (r TriggerRuns) States(ctx context.Context, thingID string) ([]store.State, error) {
	return states(ctx, r.tx, thingID)
}

// SetTriggerRun is DB.SetTriggerRun in the transaction.
func (r TriggerRuns) SetTriggerRun(ctx context.Context, thingID, id string, run store.TriggerRun) error {
	return setTriggerRun(ctx, r.tx, thingID, id, run)
}
