package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// scanCommand scans a command row and returns its internal sequence number,
// the pagination position.
func scanCommand(s scanner) (store.Command, int64, error) {
	var c store.Command
	var seq, created, modified int64
	var state string
	if err := s.Scan(&seq, &c.ID, &c.AppID, &c.ThingID, &state, &c.Issuer, &c.Schema, &c.SchemaVersion,
		jsonDest(&c.Actions), jsonDest(&c.ActionResults), &c.Title, &c.Description, jsonDest(&c.Metadata),
		&created, &modified); err != nil {
		return store.Command{}, 0, err
	}
	c.State = store.CommandState(state)
	c.CreatedAt = fromMillis(created)
	c.ModifiedAt = fromMillis(modified)
	return c, seq, nil
}

// CreateCommand stores a new command. It returns store.ErrConflict if the
// command ID is taken, store.ErrNotFound if its thing does not exist and
// store.ErrTooManyPending if maxPending > 0 and the thing has that many
// SENDING commands. The command is in the WAL when CreateCommand returns.
func (db *DB) CreateCommand(ctx context.Context, c store.Command, maxPending int) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Counted on the writer's connection, in the same transaction as the
		// insert: exact under concurrency, and without a read transaction of
		// its own (which cost more than the count).
		if maxPending > 0 {
			var n int
			if err := tx.StmtContext(ctx, db.ws.countPending).QueryRowContext(ctx, c.ThingID, maxPending).Scan(&n); err != nil {
				return fmt.Errorf("create command %q: count pending: %w", c.ID, err)
			}
			if n >= maxPending {
				return fmt.Errorf("create command %q: thing %q has %d or more: %w", c.ID, c.ThingID, n, store.ErrTooManyPending)
			}
		}
		if _, err := tx.StmtContext(ctx, db.ws.createCommand).ExecContext(ctx, c.ID, c.AppID, c.ThingID, string(c.State), c.Issuer,
			c.Schema, c.SchemaVersion, jsonArg(c.Actions), jsonArg(c.ActionResults), c.Title, c.Description,
			jsonArg(c.Metadata), millis(c.CreatedAt), millis(c.ModifiedAt)); err != nil {
			return fmt.Errorf("create command %q: %w", c.ID, translate(err))
		}
		return nil
	})
}

// Command returns a command of the thing, or store.ErrNotFound.
func (db *DB) Command(ctx context.Context, thingID, id string) (store.Command, error) {
	c, _, err := scanCommand(db.rs.command.QueryRowContext(ctx, thingID, id))
	if err != nil {
		return store.Command{}, notFound(err, fmt.Sprintf("command %q", id))
	}
	return c, nil
}

// Commands lists the commands of a thing, newest first, at most limit (all
// when limit <= 0), after the position named by paginationKey. The key is
// the decimal sequence number of the last command of the previous page; it
// stays valid while commands are added.
func (db *DB) Commands(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Command, string, error) {
	before, err := parseKey(paginationKey, math.MaxInt64)
	if err != nil {
		return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
	}
	sqlLimit := int64(-1)
	if limit > 0 {
		sqlLimit = int64(limit) + 1 // one more tells whether there is a next page
	}
	rows, err := db.rs.commandsFrom.QueryContext(ctx, thingID, before, sqlLimit)
	if err != nil {
		return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
	}
	defer rows.Close()
	var cmds []store.Command
	var seqs []int64
	for rows.Next() {
		c, seq, err := scanCommand(rows)
		if err != nil {
			return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
		}
		cmds = append(cmds, c)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("commands of %q: %w", thingID, err)
	}
	if limit > 0 && len(cmds) > limit {
		return cmds[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return cmds, "", nil
}

// pendingCommandsQuery pages the thing's SENDING commands by seq, the
// creation order, after the seq of the command ?2 (0, the start, when the
// thing has no such command); a negative LIMIT means no limit in SQLite.
// The partial index commands_sending serves it (plan_test.go).
const pendingCommandsQuery = `SELECT ` + commandCols + ` FROM commands WHERE thing_id = ?1 AND state = 'SENDING'
	AND seq > COALESCE((SELECT seq FROM commands WHERE id = ?2 AND thing_id = ?1), 0)
	ORDER BY seq LIMIT ?3`

// PendingCommands returns the thing's commands still in state SENDING in
// creation order, after the command afterID (empty, or not the thing's: from
// the first), at most limit (all when limit <= 0).
func (db *DB) PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error) {
	sqlLimit := int64(-1)
	if limit > 0 {
		sqlLimit = int64(limit)
	}
	rows, err := db.rs.pendingCommands.QueryContext(ctx, thingID, afterID, sqlLimit)
	if err != nil {
		return nil, fmt.Errorf("pending commands of %q: %w", thingID, err)
	}
	defer rows.Close()
	var cmds []store.Command
	for rows.Next() {
		c, _, err := scanCommand(rows)
		if err != nil {
			return nil, fmt.Errorf("pending commands of %q: %w", thingID, err)
		}
		cmds = append(cmds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending commands of %q: %w", thingID, err)
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
// command. The mark is a lazy write (writer.writeLazy): under load it
// commits with the next command's insert instead of alone.
func (db *DB) MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error) {
	var marked bool
	err := db.wr.writeLazy(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, db.ws.markDelivered).ExecContext(ctx, millis(at), thingID, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if marked = n > 0; marked {
			return nil
		}
		// Rare path: tell "not SENDING" from "no such command".
		var one int
		return notFound(tx.QueryRowContext(ctx, `SELECT 1 FROM commands WHERE thing_id = ? AND id = ?`, thingID, id).Scan(&one),
			fmt.Sprintf("command %q", id))
	})
	db.health.note(err)
	if err != nil {
		return false, fmt.Errorf("mark command %q delivered: %w", id, err)
	}
	return marked, nil
}

// SetActionResults stores the action results of a command, moves it to
// state and returns the updated command, or store.ErrNotFound.
func (db *DB) SetActionResults(ctx context.Context, thingID, id string, results json.RawMessage, state store.CommandState, at time.Time) (store.Command, error) {
	var c store.Command
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		c, _, err = scanCommand(tx.StmtContext(ctx, db.ws.setActionResults).QueryRowContext(ctx, jsonArg(results), string(state), millis(at), thingID, id))
		return notFound(err, fmt.Sprintf("set action results of command %q", id))
	})
	if err != nil {
		return store.Command{}, err
	}
	return c, nil
}

// ExpireCommands moves old SENDING commands to EXPIRED, a chunk at a time
// (execChunks).
func (db *DB) ExpireCommands(ctx context.Context, createdBefore, at time.Time) (int64, error) {
	n, err := db.execChunks(ctx, `UPDATE commands SET state = ?, modified_at = ? WHERE seq IN
		(SELECT seq FROM commands WHERE state = 'SENDING' AND created_at < ? LIMIT ?)`,
		string(store.CommandExpired), millis(at), createdBefore.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("expire commands: %w", err)
	}
	return n, nil
}
