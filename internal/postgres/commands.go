package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/thingif/thingif/internal/store"
)

const commandCols = "seq, id, app_id, thing_id, state, issuer, schema_name, schema_version, actions, action_results, title, description, metadata, created_at, modified_at"

// scanCommand scans a command row and returns its seq, the pagination
// position.
func scanCommand(s pgx.Row) (store.Command, int64, error) {
	var c store.Command
	var seq, created, modified int64
	var state string
	if err := s.Scan(&seq, &c.ID, &c.AppID, &c.ThingID, &state, &c.Issuer, &c.Schema, &c.SchemaVersion,
		jsonDest{(*[]byte)(&c.Actions)}, jsonDest{(*[]byte)(&c.ActionResults)}, &c.Title, &c.Description,
		jsonDest{(*[]byte)(&c.Metadata)}, &created, &modified); err != nil {
		return store.Command{}, 0, err
	}
	c.State = store.CommandState(state)
	c.CreatedAt = fromMillis(created)
	c.ModifiedAt = fromMillis(modified)
	return c, seq, nil
}

func scanCommandRows(r pgx.Rows) (store.Command, int64, error) { return scanCommand(r) }

// CreateCommand stores a new command. It returns store.ErrConflict if the
// command ID is taken, store.ErrNotFound if its thing does not exist and
// store.ErrTooManyPending if maxPending > 0 and the thing has that many
// SENDING commands.
//
// It holds the thing's command lock (lockThing) from the count to the
// commit, so the bound is exact when several nodes create commands for one
// thing at once, and the thing's commands commit in the order of their seq:
// a reader of PendingCommands never sees a command appear behind a page it
// has read.
func (db *DB) CreateCommand(ctx context.Context, c store.Command, maxPending int) error {
	// One round trip: a batch runs in one implicit transaction, the lock
	// first, then the insert, whose count of the pending commands is taken
	// by a statement of its own, after the lock, so it sees every command
	// committed before (READ COMMITTED takes a snapshot per statement).
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(lockCommands), c.ThingID)
	b.Queue(`INSERT INTO commands (id, app_id, thing_id, state, issuer, schema_name, schema_version,
		actions, action_results, title, description, metadata, created_at, modified_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
		WHERE $15::bigint <= 0 OR (SELECT COUNT(*) FROM (SELECT 1 FROM commands
			WHERE thing_id = $3 AND state = 'SENDING' LIMIT $15::bigint) AS p) < $15::bigint`,
		c.ID, c.AppID, c.ThingID, string(c.State), c.Issuer, c.Schema, c.SchemaVersion, jsonArg(c.Actions),
		jsonArg(c.ActionResults), c.Title, c.Description, jsonArg(c.Metadata), millis(c.CreatedAt),
		millis(c.ModifiedAt), int64(max(maxPending, 0)))
	br := db.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("create command %q: %w", c.ID, translate(err))
	case tag.RowsAffected() == 0:
		return fmt.Errorf("create command %q: thing %q has %d or more: %w", c.ID, c.ThingID, maxPending, store.ErrTooManyPending)
	}
	return nil
}

// Command returns a command of the thing, or store.ErrNotFound.
func (db *DB) Command(ctx context.Context, thingID, id string) (store.Command, error) {
	c, _, err := scanCommand(db.pool.QueryRow(ctx, `SELECT `+commandCols+` FROM commands WHERE thing_id = $1 AND id = $2`,
		thingID, id))
	if err != nil {
		return store.Command{}, notFound(err, fmt.Sprintf("command %q", id))
	}
	return c, nil
}

// Commands lists the commands of a thing, newest first. The key is the
// decimal seq of the last command of the previous page.
func (db *DB) Commands(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Command, string, error) {
	before, err := parseKey(paginationKey, math.MaxInt64)
	if err != nil {
		return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+commandCols+` FROM commands WHERE thing_id = $1 AND seq < $2
		ORDER BY seq DESC LIMIT $3`, thingID, before, sqlLimit(limit))
	cmds, seqs, err := collect(rows, err, scanCommandRows)
	if err != nil {
		return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
	}
	if len(cmds) == 0 {
		cmds = nil
	}
	cmds, next := page(cmds, seqs, limit)
	return cmds, next, nil
}

// PendingCommands returns the thing's commands still in state SENDING in
// creation order, after the command afterID (empty, or not the thing's: from
// the first), at most limit (all when limit <= 0). commands_sending serves
// it.
func (db *DB) PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+commandCols+` FROM commands WHERE thing_id = $1 AND state = 'SENDING'
		AND seq > COALESCE((SELECT seq FROM commands WHERE id = $2 AND thing_id = $1), 0)
		ORDER BY seq LIMIT $3`, thingID, afterID, pageLimit(limit))
	cmds, _, err := collect(rows, err, scanCommandRows)
	if err != nil {
		return nil, fmt.Errorf("pending commands of %q: %w", thingID, err)
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	return cmds, nil
}

// PendingThings returns the IDs of the things with SENDING commands.
func (db *DB) PendingThings(ctx context.Context) ([]string, error) {
	ids, err := db.strings(ctx, `SELECT DISTINCT thing_id FROM commands WHERE state = 'SENDING' ORDER BY thing_id`)
	if err != nil {
		return nil, fmt.Errorf("things with pending commands: %w", err)
	}
	return ids, nil
}

// MarkDelivered moves a command from SENDING to DELIVERED and reports
// whether it did. It returns store.ErrNotFound if the thing has no such
// command.
//
// The mark commits with synchronous_commit off: it is not flushed to disk
// before the call returns, so it costs no WAL flush of its own (it goes to
// disk with the next synchronous commit, within PostgreSQL's
// wal_writer_delay, 200 ms by default). A database crash may lose the
// last marks: those commands are SENDING again and pushed once more, which
// devices tell by the command ID (docs/scale-out.md). It is the lazy
// write of SQLite's writer, done by PostgreSQL.
func (db *DB) MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error) {
	tag, err := db.pool.Exec(ctx, `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
		UPDATE commands SET state = 'DELIVERED', modified_at = $1 FROM async
		WHERE thing_id = $2 AND id = $3 AND state = 'SENDING'`, millis(at), thingID, id)
	if err != nil {
		return false, fmt.Errorf("mark command %q delivered: %w", id, err)
	}
	if tag.RowsAffected() > 0 {
		return true, nil
	}
	// Rare path: tell "not SENDING" from "no such command".
	var one int
	if err := db.pool.QueryRow(ctx, `SELECT 1 FROM commands WHERE thing_id = $1 AND id = $2`, thingID, id).Scan(&one); err != nil {
		return false, fmt.Errorf("mark command %q delivered: %w", id, notFound(err, fmt.Sprintf("command %q", id)))
	}
	return false, nil
}

// SetActionResults stores the action results of a command, moves it to
// state and returns the updated command, or store.ErrNotFound.
func (db *DB) SetActionResults(ctx context.Context, thingID, id string, results json.RawMessage, state store.CommandState, at time.Time) (store.Command, error) {
	c, _, err := scanCommand(db.pool.QueryRow(ctx, `UPDATE commands SET action_results = $1, state = $2, modified_at = $3
		WHERE thing_id = $4 AND id = $5 RETURNING `+commandCols, jsonArg(results), string(state), millis(at), thingID, id))
	if err != nil {
		return store.Command{}, notFound(err, fmt.Sprintf("set action results of command %q", id))
	}
	return c, nil
}

// ExpireCommands moves old SENDING commands to EXPIRED, a chunk at a time,
// through commands_sending_created.
func (db *DB) ExpireCommands(ctx context.Context, createdBefore, at time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `UPDATE commands SET state = $1, modified_at = $2 WHERE seq IN
		(SELECT seq FROM commands WHERE state = 'SENDING' AND created_at < $3 LIMIT $4)`,
		string(store.CommandExpired), millis(at), createdBefore.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("expire commands: %w", err)
	}
	return n, nil
}
