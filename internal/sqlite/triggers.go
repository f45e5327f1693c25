package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"

	"github.com/thingif/thingif/internal/store"
)

// The trigger methods run unprepared statements: none of them is on the
// per-message path of a device except EnabledTriggers, which uses a
// prepared one.

const (
	triggerCols = "seq, id, app_id, thing_id, event_source, predicate, command, server_code, title, description, metadata, disabled, disabled_reason, evaluated, satisfied, fired_at, created_at, modified_at"
	resultCols  = "seq, trigger_id, thing_id, succeeded, returned_value, error, endpoint, executed_at"
)

func scanTrigger(s scanner) (store.Trigger, int64, error) {
	var tr store.Trigger
	var seq, fired, created, modified int64
	if err := s.Scan(&seq, &tr.ID, &tr.AppID, &tr.ThingID, &tr.EventSource, jsonDest(&tr.Predicate),
		jsonDest(&tr.Command), jsonDest(&tr.ServerCode), &tr.Title, &tr.Description, jsonDest(&tr.Metadata),
		&tr.Disabled, &tr.DisabledReason, &tr.Run.Evaluated, &tr.Run.Satisfied, &fired, &created, &modified); err != nil {
		return store.Trigger{}, 0, err
	}
	tr.Run.FiredAt = fromMillis(fired)
	tr.CreatedAt = fromMillis(created)
	tr.ModifiedAt = fromMillis(modified)
	return tr, seq, nil
}

// CreateTrigger stores a new trigger. It returns store.ErrConflict if the
// ID is taken, store.ErrNotFound if its thing does not exist and
// store.ErrTooManyTriggers if maxPerThing > 0 and the thing has that many
// triggers.
func (db *DB) CreateTrigger(ctx context.Context, tr store.Trigger, maxPerThing int) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Counted in the insert's transaction on the writer's connection, as
		// CreateCommand counts pending commands: exact under concurrency.
		// The LIMIT keeps the count cheap for a thing far over the bound
		// (one made before the bound, or with a larger one).
		if maxPerThing > 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM triggers WHERE thing_id = ? LIMIT ?)`,
				tr.ThingID, maxPerThing).Scan(&n); err != nil {
				return fmt.Errorf("create trigger %q: count triggers: %w", tr.ID, err)
			}
			if n >= maxPerThing {
				return fmt.Errorf("create trigger %q: thing %q has %d or more: %w", tr.ID, tr.ThingID, n, store.ErrTooManyTriggers)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO triggers (id, app_id, thing_id, event_source, predicate, command,
			server_code, title, description, metadata, disabled, disabled_reason, evaluated, satisfied, fired_at,
			created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	tr, _, err := scanTrigger(db.r.QueryRowContext(ctx, `SELECT `+triggerCols+` FROM triggers WHERE thing_id = ? AND id = ?`, thingID, id))
	if err != nil {
		return store.Trigger{}, notFound(err, fmt.Sprintf("trigger %q", id))
	}
	return tr, nil
}

func (db *DB) queryTriggers(ctx context.Context, query string, args ...any) ([]store.Trigger, []int64, error) {
	return scanTriggers(db.r.QueryContext(ctx, query, args...))
}

func scanTriggers(rows *sql.Rows, err error) ([]store.Trigger, []int64, error) {
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	out := []store.Trigger{}
	var seqs []int64
	for rows.Next() {
		tr, seq, err := scanTrigger(rows)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, tr)
		seqs = append(seqs, seq)
	}
	return out, seqs, rows.Err()
}

// Triggers lists the triggers of a thing, oldest first.
func (db *DB) Triggers(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Trigger, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("triggers of %q: %w", thingID, err)
	}
	trs, seqs, err := db.queryTriggers(ctx, `SELECT `+triggerCols+` FROM triggers WHERE thing_id = ? AND seq > ?
		ORDER BY seq LIMIT ?`, thingID, after, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("triggers of %q: %w", thingID, err)
	}
	if limit > 0 && len(trs) > limit {
		return trs[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return trs, "", nil
}

// EnabledTriggers returns the enabled triggers with an event source.
func (db *DB) EnabledTriggers(ctx context.Context, thingID, eventSource string) ([]store.Trigger, error) {
	if thingID != "" {
		// Every state upload asks: a prepared statement, not a new parse
		// (BenchmarkEnabledTriggers).
		trs, _, err := scanTriggers(db.rs.enabledTriggers.QueryContext(ctx, eventSource, thingID))
		if err != nil {
			return nil, fmt.Errorf("enabled %s triggers: %w", eventSource, err)
		}
		return trs, nil
	}
	q := `SELECT ` + triggerCols + ` FROM triggers WHERE event_source = ? AND disabled = 0`
	args := []any{eventSource}
	if thingID != "" {
		q += ` AND thing_id = ?`
		args = append(args, thingID)
	}
	trs, _, err := db.queryTriggers(ctx, q+` ORDER BY seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("enabled %s triggers: %w", eventSource, err)
	}
	return trs, nil
}

// UpdateTrigger replaces the definition of a trigger.
func (db *DB) UpdateTrigger(ctx context.Context, tr store.Trigger) error {
	res, err := db.exec(ctx, `UPDATE triggers SET event_source = ?, predicate = ?, command = ?, server_code = ?,
		title = ?, description = ?, metadata = ?, disabled = ?, disabled_reason = ?, evaluated = ?, satisfied = ?,
		fired_at = ?, modified_at = ? WHERE thing_id = ? AND id = ?`,
		tr.EventSource, string(tr.Predicate), jsonArg(tr.Command), jsonArg(tr.ServerCode), tr.Title, tr.Description,
		jsonArg(tr.Metadata), tr.Disabled, tr.DisabledReason, tr.Run.Evaluated, tr.Run.Satisfied,
		millis(tr.Run.FiredAt), millis(tr.ModifiedAt), tr.ThingID, tr.ID)
	return oneRow(res, err, fmt.Sprintf("update trigger %q", tr.ID))
}

// SetTriggerRun records the evaluation state of a trigger.
func (db *DB) SetTriggerRun(ctx context.Context, thingID, id string, run store.TriggerRun) error {
	res, err := db.exec(ctx, `UPDATE triggers SET evaluated = ?, satisfied = ?, fired_at = ?
		WHERE thing_id = ? AND id = ?`, run.Evaluated, run.Satisfied, millis(run.FiredAt), thingID, id)
	return oneRow(res, err, fmt.Sprintf("set run of trigger %q", id))
}

// DeleteTrigger deletes a trigger and its results.
func (db *DB) DeleteTrigger(ctx context.Context, thingID, id string) error {
	res, err := db.exec(ctx, `DELETE FROM triggers WHERE thing_id = ? AND id = ?`, thingID, id)
	return oneRow(res, err, fmt.Sprintf("delete trigger %q", id))
}

// oneRow turns the result of an UPDATE or DELETE of one row into nil, or
// store.ErrNotFound when no row matched.
func oneRow(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// AddTriggerResult stores the result of one server-code execution.
func (db *DB) AddTriggerResult(ctx context.Context, r store.TriggerResult) error {
	res, err := db.exec(ctx, `INSERT INTO trigger_results (trigger_id, thing_id, succeeded, returned_value,
		error, endpoint, executed_at) SELECT id, thing_id, ?, ?, ?, ?, ? FROM triggers WHERE thing_id = ? AND id = ?`,
		r.Succeeded, jsonArg(r.ReturnedValue), r.Error, r.Endpoint, millis(r.ExecutedAt), r.ThingID, r.TriggerID)
	return oneRow(res, err, fmt.Sprintf("add result of trigger %q", r.TriggerID))
}

// TriggerResults lists the results of a trigger, newest first.
func (db *DB) TriggerResults(ctx context.Context, thingID, triggerID, paginationKey string, limit int) ([]store.TriggerResult, string, error) {
	before, err := parseKey(paginationKey, math.MaxInt64)
	if err != nil {
		return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+resultCols+` FROM trigger_results WHERE thing_id = ? AND trigger_id = ?
		AND seq < ? ORDER BY seq DESC LIMIT ?`, thingID, triggerID, before, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
	}
	defer rows.Close()
	out := []store.TriggerResult{}
	var seqs []int64
	for rows.Next() {
		var r store.TriggerResult
		var seq, ms int64
		if err := rows.Scan(&seq, &r.TriggerID, &r.ThingID, &r.Succeeded, jsonDest(&r.ReturnedValue), &r.Error,
			&r.Endpoint, &ms); err != nil {
			return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
		}
		r.ExecutedAt = fromMillis(ms)
		out = append(out, r)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("results of trigger %q: %w", triggerID, err)
	}
	if limit > 0 && len(out) > limit {
		return out[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return out, "", nil
}
