-- 0002_appside: users, groups, ownership, end nodes, triggers and their
-- results.

CREATE TABLE users (
	id            TEXT    NOT NULL PRIMARY KEY,
	app_id        TEXT    NOT NULL REFERENCES apps (id),
	username      TEXT    NOT NULL,
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL,
	UNIQUE (app_id, username)
);

CREATE TABLE groups_ (
	id         TEXT    NOT NULL PRIMARY KEY,
	app_id     TEXT    NOT NULL REFERENCES apps (id),
	name       TEXT    NOT NULL,
	owner      TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE group_members (
	group_id TEXT NOT NULL REFERENCES groups_ (id) ON DELETE CASCADE,
	user_id  TEXT NOT NULL REFERENCES users (id),
	PRIMARY KEY (group_id, user_id)
);

CREATE INDEX group_members_user ON group_members (user_id);

-- A thing has at most one owner: a user or a group ("USER:id", "GROUP:id").
CREATE TABLE thing_owners (
	thing_id   TEXT    NOT NULL PRIMARY KEY REFERENCES things (id),
	owner      TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);

CREATE TABLE end_nodes (
	thing_id    TEXT    NOT NULL PRIMARY KEY REFERENCES things (id),
	gateway_id  TEXT    NOT NULL REFERENCES things (id),
	online      INTEGER NOT NULL DEFAULT 0,
	modified_at INTEGER NOT NULL
);

CREATE INDEX commands_state_created ON commands (state, created_at);
CREATE INDEX state_history_at ON state_history (at);

-- seq orders triggers by creation and is the pagination position.
CREATE TABLE triggers (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	id              TEXT    NOT NULL UNIQUE,
	app_id          TEXT    NOT NULL REFERENCES apps (id),
	thing_id        TEXT    NOT NULL REFERENCES things (id),
	event_source    TEXT    NOT NULL,
	predicate       TEXT    NOT NULL,
	command         TEXT,
	server_code     TEXT,
	title           TEXT    NOT NULL DEFAULT '',
	description     TEXT    NOT NULL DEFAULT '',
	metadata        TEXT,
	disabled        INTEGER NOT NULL DEFAULT 0,
	disabled_reason TEXT    NOT NULL DEFAULT '',
	evaluated       INTEGER NOT NULL DEFAULT 0,
	satisfied       INTEGER NOT NULL DEFAULT 0,
	fired_at        INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	modified_at     INTEGER NOT NULL
);

CREATE INDEX triggers_thing ON triggers (thing_id, seq);
CREATE INDEX triggers_source ON triggers (event_source, disabled, seq);

CREATE TABLE trigger_results (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	trigger_id     TEXT    NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
	thing_id       TEXT    NOT NULL,
	succeeded      INTEGER NOT NULL,
	returned_value TEXT,
	error          TEXT    NOT NULL DEFAULT '',
	endpoint       TEXT    NOT NULL DEFAULT '',
	executed_at    INTEGER NOT NULL
);

CREATE INDEX trigger_results_trigger ON trigger_results (trigger_id, seq);
