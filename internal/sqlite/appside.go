package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// The app-side methods run unprepared statements: none of them is on the
// per-message path of a device except EnabledTriggers, which SQLite's
// statement cache in the driver keeps cheap enough.

const (
	userCols    = "id, app_id, username, password_hash, created_at"
	triggerCols = "seq, id, app_id, thing_id, event_source, predicate, command, server_code, title, description, metadata, disabled, disabled_reason, evaluated, satisfied, fired_at, created_at, modified_at"
	resultCols  = "seq, trigger_id, thing_id, succeeded, returned_value, error, endpoint, executed_at"
)

func scanUser(s scanner) (store.User, error) {
	var u store.User
	var created int64
	if err := s.Scan(&u.ID, &u.AppID, &u.Username, &u.PasswordHash, &created); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

// CreateUser stores a new user.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	if _, err := db.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.AppID, u.Username, u.PasswordHash, millis(u.CreatedAt)); err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, translate(err))
	}
	return nil
}

// User returns a user of the app by ID, or store.ErrNotFound.
func (db *DB) User(ctx context.Context, appID, id string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE app_id = ? AND id = ?`, appID, id))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", id))
	}
	return u, nil
}

// UserByUsername returns a user of the app by username, or
// store.ErrNotFound.
func (db *DB) UserByUsername(ctx context.Context, appID, username string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE app_id = ? AND username = ?`, appID, username))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", username))
	}
	return u, nil
}

// Users lists the users of an app in creation (rowid) order.
func (db *DB) Users(ctx context.Context, appID, paginationKey string, limit int) ([]store.User, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT rowid, `+userCols+` FROM users WHERE app_id = ? AND rowid > ?
		ORDER BY rowid LIMIT ?`, appID, after, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	defer rows.Close()
	users := []store.User{}
	var seqs []int64
	for rows.Next() {
		var seq int64
		u, err := scanUser(prefixScanner{rows, &seq})
		if err != nil {
			return nil, "", fmt.Errorf("users of %q: %w", appID, err)
		}
		users = append(users, u)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("users of %q: %w", appID, err)
	}
	if limit > 0 && len(users) > limit {
		return users[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return users, "", nil
}

// DeleteUser deletes a user, its tokens, its group memberships and its
// ownership of things in one transaction. The rows that refer to the user
// go first: group_members references users.
func (db *DB) DeleteUser(ctx context.Context, appID, id string) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM tokens WHERE app_id = ?1 AND kind = 'user' AND subject = ?2`,
			`DELETE FROM group_members WHERE user_id = ?2 AND group_id IN (SELECT id FROM groups_ WHERE app_id = ?1)`,
			`DELETE FROM thing_owners WHERE owner = 'USER:' || ?2 AND thing_id IN (SELECT id FROM things WHERE app_id = ?1)`,
		} {
			if _, err := tx.ExecContext(ctx, q, appID, id); err != nil {
				return fmt.Errorf("delete user %q: %w", id, translate(err))
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE app_id = ? AND id = ?`, appID, id)
		if err != nil {
			return fmt.Errorf("delete user %q: %w", id, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete user %q: %w", id, err)
		} else if n == 0 {
			// Nothing referred to a user that does not exist: the
			// deletes above changed nothing.
			return fmt.Errorf("delete user %q: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// CreateGroup stores a group and its members in one transaction.
func (db *DB) CreateGroup(ctx context.Context, g store.Group) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		if _, err = tx.ExecContext(ctx, `INSERT INTO groups_ (id, app_id, name, owner, created_at) VALUES (?, ?, ?, ?, ?)`,
			g.ID, g.AppID, g.Name, g.Owner, millis(g.CreatedAt)); err != nil {
			return fmt.Errorf("create group %q: %w", g.ID, translate(err))
		}
		for _, m := range g.Members {
			// The member must be a user of the group's app.
			var n int
			if err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE app_id = ? AND id = ?`, g.AppID, m).Scan(&n); err != nil {
				return fmt.Errorf("create group %q: %w", g.ID, err)
			}
			if n == 0 {
				err = fmt.Errorf("create group %q: member %q: %w", g.ID, m, store.ErrNotFound)
				return err
			}
			if _, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)`, g.ID, m); err != nil {
				return fmt.Errorf("create group %q: member %q: %w", g.ID, m, translate(err))
			}
		}
		return nil
	})
}

// Group returns a group of the app with its members, or store.ErrNotFound.
func (db *DB) Group(ctx context.Context, appID, id string) (store.Group, error) {
	g := store.Group{Members: []string{}}
	var created int64
	err := db.r.QueryRowContext(ctx, `SELECT id, app_id, name, owner, created_at FROM groups_ WHERE app_id = ? AND id = ?`, appID, id).
		Scan(&g.ID, &g.AppID, &g.Name, &g.Owner, &created)
	if err != nil {
		return store.Group{}, notFound(err, fmt.Sprintf("group %q", id))
	}
	g.CreatedAt = fromMillis(created)
	if g.Members, err = db.strings(ctx, `SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id`, id); err != nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, err)
	}
	return g, nil
}

// GroupsOfUser returns the IDs of the groups the user is a member of.
func (db *DB) GroupsOfUser(ctx context.Context, appID, userID string) ([]string, error) {
	ids, err := db.strings(ctx, `SELECT g.id FROM group_members m JOIN groups_ g ON g.id = m.group_id
		WHERE g.app_id = ? AND m.user_id = ? ORDER BY g.id`, appID, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", userID, err)
	}
	return ids, nil
}

// strings runs a query of one TEXT column on the readers.
func (db *DB) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// AddOwner makes owner the owner of a thing of the app.
func (db *DB) AddOwner(ctx context.Context, appID, thingID, owner string, at time.Time) error {
	return db.write(ctx, func(ctx context.Context, tx *sql.Tx) (err error) {
		var n int
		if err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM things WHERE app_id = ? AND id = ?`, appID, thingID).Scan(&n); err != nil {
			return fmt.Errorf("add owner of %q: %w", thingID, err)
		}
		if n == 0 {
			err = fmt.Errorf("add owner of %q: %w", thingID, store.ErrNotFound)
			return err
		}
		var old string
		switch err = tx.QueryRowContext(ctx, `SELECT owner FROM thing_owners WHERE thing_id = ?`, thingID).Scan(&old); {
		case errors.Is(err, sql.ErrNoRows):
			if _, err = tx.ExecContext(ctx, `INSERT INTO thing_owners (thing_id, owner, created_at) VALUES (?, ?, ?)`,
				thingID, owner, millis(at)); err != nil {
				return fmt.Errorf("add owner of %q: %w", thingID, translate(err))
			}
		case err != nil:
			return fmt.Errorf("add owner of %q: %w", thingID, err)
		case old != owner:
			err = fmt.Errorf("add owner of %q: owned by %s: %w", thingID, old, store.ErrConflict)
			return err
		}
		return nil
	})
}

// ThingOwner returns the owner of a thing, or store.ErrNotFound.
func (db *DB) ThingOwner(ctx context.Context, thingID string) (string, error) {
	var owner string
	if err := db.r.QueryRowContext(ctx, `SELECT owner FROM thing_owners WHERE thing_id = ?`, thingID).Scan(&owner); err != nil {
		return "", notFound(err, fmt.Sprintf("owner of %q", thingID))
	}
	return owner, nil
}

// parseKey parses a pagination key: the decimal position after which the
// next page starts.
func parseKey(key string, def int64) (int64, error) {
	if key == "" {
		return def, nil
	}
	k, err := strconv.ParseInt(key, 10, 64)
	if err != nil || k <= 0 {
		return 0, fmt.Errorf("%w: %q", store.ErrInvalidPaginationKey, key)
	}
	return k, nil
}

// sqlLimit is the LIMIT for a page of limit items: one more tells whether
// there is a next page; -1 is no limit.
func sqlLimit(limit int) int64 {
	if limit > 0 {
		return int64(limit) + 1
	}
	return -1
}

// Things lists the things of an app in creation (rowid) order. A search
// walks the app's things in that order until the page is full (LIKE is
// case-insensitive for ASCII in SQLite), so a page costs at most one pass
// over the app's things: BenchmarkThingsSearch.
func (db *DB) Things(ctx context.Context, appID, search, paginationKey string, limit int) ([]store.Thing, string, error) {
	after, err := parseKey(paginationKey, 0)
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	pattern := "%" + likeEscaper.Replace(search) + "%"
	rows, err := db.r.QueryContext(ctx, `SELECT rowid, `+thingCols+` FROM things WHERE app_id = ? AND rowid > ?
		AND (? = '' OR id LIKE ? ESCAPE '\' OR vendor_thing_id LIKE ? ESCAPE '\')
		ORDER BY rowid LIMIT ?`, appID, after, search, pattern, pattern, sqlLimit(limit))
	if err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	defer rows.Close()
	things := []store.Thing{}
	var seqs []int64
	for rows.Next() {
		var seq int64
		t, err := scanThing(prefixScanner{rows, &seq})
		if err != nil {
			return nil, "", fmt.Errorf("things of %q: %w", appID, err)
		}
		things = append(things, t)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("things of %q: %w", appID, err)
	}
	if limit > 0 && len(things) > limit {
		return things[:limit], strconv.FormatInt(seqs[limit-1], 10), nil
	}
	return things, "", nil
}

// likeEscaper makes a search string match itself in a LIKE pattern.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// prefixScanner scans one leading column into first, the rest with the
// wrapped scan function's destinations.
type prefixScanner struct {
	s     scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.s.Scan(append([]any{p.first}, dest...)...)
}

// PutEndNode stores (or replaces) the gateway link of an end node.
func (db *DB) PutEndNode(ctx context.Context, e store.EndNode) error {
	if _, err := db.exec(ctx, `INSERT INTO end_nodes (thing_id, gateway_id, online, modified_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (thing_id) DO UPDATE SET gateway_id = excluded.gateway_id, online = excluded.online,
		modified_at = excluded.modified_at`, e.ThingID, e.GatewayID, e.Online, millis(e.ModifiedAt)); err != nil {
		return fmt.Errorf("put end node %q: %w", e.ThingID, translate(err))
	}
	return nil
}

// EndNode returns the gateway link of an end node, or store.ErrNotFound.
func (db *DB) EndNode(ctx context.Context, thingID string) (store.EndNode, error) {
	var e store.EndNode
	var modified int64
	if err := db.r.QueryRowContext(ctx, `SELECT thing_id, gateway_id, online, modified_at FROM end_nodes WHERE thing_id = ?`, thingID).
		Scan(&e.ThingID, &e.GatewayID, &e.Online, &modified); err != nil {
		return store.EndNode{}, notFound(err, fmt.Sprintf("end node %q", thingID))
	}
	e.ModifiedAt = fromMillis(modified)
	return e, nil
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
