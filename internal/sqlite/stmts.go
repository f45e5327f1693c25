package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Column lists, in the order the scan functions expect.
const (
	appCols          = "id, key_hash, allow_anonymous, created_at"
	thingCols        = "id, app_id, vendor_thing_id, password_hash, thing_type, firmware_version, layout_position, properties, data_grouping_interval, created_at, modified_at"
	installationCols = "id, app_id, thing_id, device_type, mqtt_topic, username, password_hash, expires_at, created_at"
	tokenCols        = "hash, app_id, kind, subject, expires_at, created_at"
	commandCols      = "seq, id, app_id, thing_id, state, issuer, schema_name, schema_version, actions, action_results, title, description, metadata, created_at, modified_at"
	stateCols        = "thing_id, alias, body, modified_at"
)

// pruneThingTokensQuery deletes a thing's thing tokens but the ? newest.
const pruneThingTokensQuery = `DELETE FROM tokens WHERE rowid IN (SELECT rowid FROM tokens
	WHERE kind = 'thing' AND subject = ? ORDER BY rowid DESC LIMIT -1 OFFSET ?) RETURNING hash`

// writeStmts are the statements prepared on the writer connection. Inside a
// transaction they are used through tx.StmtContext, which reuses the
// preparation because the writer has a single connection.
type writeStmts struct {
	putApp             *sql.Stmt
	insertThing        *sql.Stmt
	updateThing        *sql.Stmt
	updateVendorID     *sql.Stmt
	rehashThing        *sql.Stmt
	putInstallation    *sql.Stmt
	deleteInstallation *sql.Stmt
	putToken           *sql.Stmt
	deleteToken        *sql.Stmt
	pruneThingTokens   *sql.Stmt
	countPending       *sql.Stmt
	createCommand      *sql.Stmt
	markDelivered      *sql.Stmt
	setActionResults   *sql.Stmt
	deleteStates       *sql.Stmt
	deleteOtherStates  *sql.Stmt
	stateBody          *sql.Stmt
	upsertState        *sql.Stmt
	insertHistory      *sql.Stmt
}

// readStmts are the statements prepared on the reader pool.
type readStmts struct {
	app                    *sql.Stmt
	apps                   *sql.Stmt
	thing                  *sql.Stmt
	thingByVendorID        *sql.Stmt
	installation           *sql.Stmt
	installationByUsername *sql.Stmt
	installations          *sql.Stmt
	token                  *sql.Stmt
	command                *sql.Stmt
	commandsFrom           *sql.Stmt
	pendingCommands        *sql.Stmt
	states                 *sql.Stmt
	// enabledTriggers serves the lookup every state upload makes.
	enabledTriggers *sql.Stmt
}

// prepare prepares every statement once, so that no call does schema work
// or SQL parsing on the hot path.
func (db *DB) prepare(ctx context.Context) error {
	w := []struct {
		dst   **sql.Stmt
		query string
	}{
		{&db.ws.putApp, `INSERT INTO apps (` + appCols + `) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET key_hash = excluded.key_hash, allow_anonymous = excluded.allow_anonymous`},
		{&db.ws.insertThing, `INSERT INTO things (` + thingCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&db.ws.updateThing, `UPDATE things SET thing_type = ?, firmware_version = ?, layout_position = ?,
			properties = ?, data_grouping_interval = ?, modified_at = ? WHERE app_id = ? AND id = ?`},
		{&db.ws.updateVendorID, `UPDATE things SET vendor_thing_id = ?,
			password_hash = CASE WHEN ? = '' THEN password_hash ELSE ? END, modified_at = ? WHERE app_id = ? AND id = ?`},
		{&db.ws.rehashThing, `UPDATE things SET password_hash = ? WHERE app_id = ? AND id = ?`},
		{&db.ws.putInstallation, `INSERT INTO installations (` + installationCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, thing_id = excluded.thing_id,
			device_type = excluded.device_type, mqtt_topic = excluded.mqtt_topic, username = excluded.username,
			password_hash = excluded.password_hash, expires_at = excluded.expires_at, created_at = excluded.created_at`},
		{&db.ws.deleteInstallation, `DELETE FROM installations WHERE id = ?`},
		{&db.ws.putToken, `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?)`},
		{&db.ws.deleteToken, `DELETE FROM tokens WHERE hash = ?`},
		// Served by tokens_thing (migration 0005), whose entries end with
		// the rowid: the thing's tokens newest first, skipping the kept.
		{&db.ws.pruneThingTokens, pruneThingTokensQuery},
		{&db.ws.countPending, `SELECT COUNT(*) FROM (SELECT 1 FROM commands WHERE thing_id = ? AND state = 'SENDING' LIMIT ?)`},
		{&db.ws.createCommand, `INSERT INTO commands (id, app_id, thing_id, state, issuer, schema_name, schema_version,
			actions, action_results, title, description, metadata, created_at, modified_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&db.ws.markDelivered, `UPDATE commands SET state = 'DELIVERED', modified_at = ?
			WHERE thing_id = ? AND id = ? AND state = 'SENDING'`},
		{&db.ws.setActionResults, `UPDATE commands SET action_results = ?, state = ?, modified_at = ?
			WHERE thing_id = ? AND id = ? RETURNING ` + commandCols},
		// A replacing upload removes the aliases it does not name (a JSON
		// array) and overwrites the others in place: deleting them all and
		// inserting them again would be twice the B-tree work.
		{&db.ws.deleteStates, `DELETE FROM states WHERE thing_id = ? AND alias NOT IN (SELECT value FROM json_each(?))`},
		{&db.ws.deleteOtherStates, `DELETE FROM states WHERE thing_id = ? AND alias <> ?`},
		{&db.ws.stateBody, `SELECT body FROM states WHERE thing_id = ? AND alias = ?`},
		{&db.ws.upsertState, `INSERT INTO states (` + stateCols + `) VALUES (?, ?, ?, ?)
			ON CONFLICT (thing_id, alias) DO UPDATE SET body = excluded.body, modified_at = excluded.modified_at`},
		{&db.ws.insertHistory, `INSERT INTO state_history (thing_id, alias, body, at) VALUES (?, ?, ?, ?)`},
	}
	r := []struct {
		dst   **sql.Stmt
		query string
	}{
		{&db.rs.app, `SELECT ` + appCols + ` FROM apps WHERE id = ?`},
		{&db.rs.apps, `SELECT ` + appCols + ` FROM apps ORDER BY created_at, id`},
		{&db.rs.thing, `SELECT ` + thingCols + ` FROM things WHERE app_id = ? AND id = ?`},
		{&db.rs.thingByVendorID, `SELECT ` + thingCols + ` FROM things WHERE app_id = ? AND vendor_thing_id = ?`},
		{&db.rs.installation, `SELECT ` + installationCols + ` FROM installations WHERE app_id = ? AND id = ?`},
		{&db.rs.installationByUsername, `SELECT ` + installationCols + ` FROM installations WHERE username = ?`},
		{&db.rs.installations, `SELECT ` + installationCols + ` FROM installations WHERE thing_id = ?
			ORDER BY created_at DESC, rowid DESC`},
		{&db.rs.token, `SELECT ` + tokenCols + ` FROM tokens WHERE hash = ?`},
		{&db.rs.command, `SELECT ` + commandCols + ` FROM commands WHERE thing_id = ? AND id = ?`},
		// A negative LIMIT means no limit in SQLite.
		{&db.rs.commandsFrom, `SELECT ` + commandCols + ` FROM commands WHERE thing_id = ? AND seq < ?
			ORDER BY seq DESC LIMIT ?`},
		{&db.rs.pendingCommands, pendingCommandsQuery},
		{&db.rs.states, `SELECT ` + stateCols + ` FROM states WHERE thing_id = ? ORDER BY alias`},
		{&db.rs.enabledTriggers, `SELECT ` + triggerCols + ` FROM triggers WHERE event_source = ? AND disabled = 0
			AND thing_id = ? ORDER BY seq`},
	}
	for _, s := range w {
		stmt, err := db.w.PrepareContext(ctx, s.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", s.query, err)
		}
		*s.dst = stmt
	}
	for _, s := range r {
		stmt, err := db.r.PrepareContext(ctx, s.query)
		if err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", s.query, err)
		}
		*s.dst = stmt
	}
	return nil
}

func (s *writeStmts) close() error {
	return closeStmts(s.putApp, s.insertThing, s.updateThing, s.updateVendorID, s.rehashThing, s.putInstallation, s.deleteInstallation,
		s.putToken, s.deleteToken, s.pruneThingTokens, s.countPending, s.createCommand, s.markDelivered, s.setActionResults,
		s.deleteStates, s.deleteOtherStates, s.stateBody, s.upsertState, s.insertHistory)
}

func (s *readStmts) close() error {
	return closeStmts(s.app, s.apps, s.thing, s.thingByVendorID, s.installation, s.installationByUsername,
		s.installations, s.token, s.command, s.commandsFrom, s.pendingCommands, s.states)
}

func closeStmts(stmts ...*sql.Stmt) error {
	var first error
	for _, s := range stmts {
		if s == nil {
			continue
		}
		if err := s.Close(); err != nil && first == nil {
			first = fmt.Errorf("sqlite: close statement: %w", err)
		}
	}
	return first
}
