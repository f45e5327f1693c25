-- 0001_init: the initial thingif schema.
--
-- Times are INTEGER unix milliseconds, 0 for the zero time. JSON is TEXT,
-- NULL for an absent document. Everything here is plain SQL that PostgreSQL
-- also accepts, except AUTOINCREMENT (an identity column there).

CREATE TABLE apps (
	id              TEXT    NOT NULL PRIMARY KEY,
	key_hash        TEXT    NOT NULL,
	allow_anonymous INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL
);

CREATE TABLE things (
	id                     TEXT    NOT NULL PRIMARY KEY,
	app_id                 TEXT    NOT NULL REFERENCES apps (id),
	vendor_thing_id        TEXT    NOT NULL,
	password_hash          TEXT    NOT NULL,
	thing_type             TEXT    NOT NULL DEFAULT '',
	firmware_version       TEXT    NOT NULL DEFAULT '',
	layout_position        TEXT    NOT NULL DEFAULT '',
	properties             TEXT,
	data_grouping_interval TEXT    NOT NULL DEFAULT '',
	created_at             INTEGER NOT NULL,
	modified_at            INTEGER NOT NULL,
	UNIQUE (app_id, vendor_thing_id)
);

CREATE TABLE installations (
	id            TEXT    NOT NULL PRIMARY KEY,
	app_id        TEXT    NOT NULL REFERENCES apps (id),
	thing_id      TEXT    NOT NULL REFERENCES things (id),
	device_type   TEXT    NOT NULL DEFAULT '',
	mqtt_topic    TEXT    NOT NULL UNIQUE,
	username      TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL DEFAULT '',
	expires_at    INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);

CREATE INDEX installations_thing ON installations (thing_id, created_at);

CREATE TABLE tokens (
	hash       TEXT    NOT NULL PRIMARY KEY,
	app_id     TEXT    NOT NULL REFERENCES apps (id),
	kind       TEXT    NOT NULL,
	subject    TEXT    NOT NULL DEFAULT '',
	expires_at INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);

-- seq orders commands by creation and is the pagination position.
CREATE TABLE commands (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	id             TEXT    NOT NULL UNIQUE,
	app_id         TEXT    NOT NULL REFERENCES apps (id),
	thing_id       TEXT    NOT NULL REFERENCES things (id),
	state          TEXT    NOT NULL,
	issuer         TEXT    NOT NULL DEFAULT '',
	schema_name    TEXT    NOT NULL DEFAULT '',
	schema_version INTEGER NOT NULL DEFAULT 0,
	actions        TEXT,
	action_results TEXT,
	title          TEXT    NOT NULL DEFAULT '',
	description    TEXT    NOT NULL DEFAULT '',
	metadata       TEXT,
	created_at     INTEGER NOT NULL,
	modified_at    INTEGER NOT NULL
);

CREATE INDEX commands_thing_seq ON commands (thing_id, seq);
CREATE INDEX commands_thing_state ON commands (thing_id, state, seq);

-- states holds the latest state of each alias of a thing.
CREATE TABLE states (
	thing_id    TEXT    NOT NULL REFERENCES things (id),
	alias       TEXT    NOT NULL,
	body        TEXT    NOT NULL,
	modified_at INTEGER NOT NULL,
	PRIMARY KEY (thing_id, alias)
);

-- state_history keeps the state of an alias after every upload. No query
-- API reads it yet.
CREATE TABLE state_history (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	thing_id TEXT    NOT NULL REFERENCES things (id),
	alias    TEXT    NOT NULL,
	body     TEXT    NOT NULL,
	at       INTEGER NOT NULL
);

CREATE INDEX state_history_thing_alias_at ON state_history (thing_id, alias, at);
