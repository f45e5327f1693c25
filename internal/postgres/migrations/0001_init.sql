-- 0001_init: the thingif schema on PostgreSQL, as SQLite's migrations
-- 0001 to 0006 leave it there (internal/sqlite/migrations), with
-- PostgreSQL's types: times are BIGINT unix milliseconds (0 for the zero
-- time), JSON documents TEXT as the clients sent them (NULL when absent),
-- flags BOOLEAN. seq columns give the stored order that SQLite's rowid
-- gives: the pagination position and the "newest" of PruneThingTokens.
--
-- Text that is sorted or compared byte-wise (IDs, aliases) is COLLATE "C",
-- as SQLite's BINARY collation, whatever the database's locale.

CREATE TABLE apps (
	id              TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	key_hash        TEXT    NOT NULL,
	allow_anonymous BOOLEAN NOT NULL DEFAULT false,
	created_at      BIGINT  NOT NULL
);

CREATE TABLE things (
	seq                    BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE,
	id                     TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	app_id                 TEXT    COLLATE "C" NOT NULL REFERENCES apps (id),
	vendor_thing_id        TEXT    COLLATE "C" NOT NULL,
	password_hash          TEXT    NOT NULL,
	thing_type             TEXT    NOT NULL DEFAULT '',
	firmware_version       TEXT    NOT NULL DEFAULT '',
	layout_position        TEXT    NOT NULL DEFAULT '',
	properties             TEXT,
	data_grouping_interval TEXT    NOT NULL DEFAULT '',
	created_at             BIGINT  NOT NULL,
	modified_at            BIGINT  NOT NULL,
	UNIQUE (app_id, vendor_thing_id)
);

CREATE INDEX things_app ON things (app_id, seq);

CREATE TABLE installations (
	seq           BIGINT GENERATED ALWAYS AS IDENTITY,
	id            TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	app_id        TEXT   COLLATE "C" NOT NULL REFERENCES apps (id),
	thing_id      TEXT   COLLATE "C" NOT NULL REFERENCES things (id),
	device_type   TEXT   NOT NULL DEFAULT '',
	mqtt_topic    TEXT   COLLATE "C" NOT NULL UNIQUE,
	username      TEXT   COLLATE "C" NOT NULL UNIQUE,
	password_hash TEXT   NOT NULL DEFAULT '',
	expires_at    BIGINT NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL
);

CREATE INDEX installations_thing ON installations (thing_id, created_at);

CREATE TABLE tokens (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY,
	hash       TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	app_id     TEXT   COLLATE "C" NOT NULL REFERENCES apps (id),
	kind       TEXT   NOT NULL,
	subject    TEXT   COLLATE "C" NOT NULL DEFAULT '',
	expires_at BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);

CREATE INDEX tokens_expires ON tokens (expires_at) WHERE expires_at > 0;
CREATE INDEX tokens_thing ON tokens (subject, seq) WHERE kind = 'thing';
CREATE INDEX tokens_user ON tokens (app_id, subject) WHERE kind = 'user';

CREATE TABLE commands (
	seq            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id             TEXT    COLLATE "C" NOT NULL UNIQUE,
	app_id         TEXT    COLLATE "C" NOT NULL REFERENCES apps (id),
	thing_id       TEXT    COLLATE "C" NOT NULL REFERENCES things (id),
	state          TEXT    NOT NULL,
	issuer         TEXT    NOT NULL DEFAULT '',
	schema_name    TEXT    NOT NULL DEFAULT '',
	schema_version INTEGER NOT NULL DEFAULT 0,
	actions        TEXT,
	action_results TEXT,
	title          TEXT    NOT NULL DEFAULT '',
	description    TEXT    NOT NULL DEFAULT '',
	metadata       TEXT,
	created_at     BIGINT  NOT NULL,
	modified_at    BIGINT  NOT NULL
);

CREATE INDEX commands_thing_seq ON commands (thing_id, seq);
CREATE INDEX commands_sending ON commands (thing_id, seq) WHERE state = 'SENDING';
CREATE INDEX commands_sending_created ON commands (created_at) WHERE state = 'SENDING';

CREATE TABLE states (
	thing_id    TEXT   COLLATE "C" NOT NULL REFERENCES things (id),
	alias       TEXT   COLLATE "C" NOT NULL,
	body        TEXT   NOT NULL,
	modified_at BIGINT NOT NULL,
	PRIMARY KEY (thing_id, alias)
);

CREATE TABLE state_history (
	seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	thing_id TEXT   COLLATE "C" NOT NULL REFERENCES things (id),
	alias    TEXT   COLLATE "C" NOT NULL,
	body     TEXT   NOT NULL,
	at       BIGINT NOT NULL
);

CREATE INDEX state_history_thing_alias_at ON state_history (thing_id, alias, at, seq);
CREATE INDEX state_history_at ON state_history (at);

CREATE TABLE users (
	seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
	id            TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	app_id        TEXT   COLLATE "C" NOT NULL REFERENCES apps (id),
	username      TEXT   COLLATE "C" NOT NULL,
	password_hash TEXT   NOT NULL,
	created_at    BIGINT NOT NULL,
	UNIQUE (app_id, username)
);

CREATE INDEX users_app ON users (app_id, seq);

CREATE TABLE groups_ (
	id         TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	app_id     TEXT   COLLATE "C" NOT NULL REFERENCES apps (id),
	name       TEXT   NOT NULL,
	owner      TEXT   COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
	group_id TEXT COLLATE "C" NOT NULL REFERENCES groups_ (id) ON DELETE CASCADE,
	user_id  TEXT COLLATE "C" NOT NULL REFERENCES users (id),
	PRIMARY KEY (group_id, user_id)
);

CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE thing_owners (
	thing_id   TEXT   COLLATE "C" NOT NULL PRIMARY KEY REFERENCES things (id),
	owner      TEXT   COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE INDEX thing_owners_owner ON thing_owners (owner);

CREATE TABLE end_nodes (
	thing_id    TEXT    COLLATE "C" NOT NULL PRIMARY KEY REFERENCES things (id),
	gateway_id  TEXT    COLLATE "C" NOT NULL REFERENCES things (id),
	online      BOOLEAN NOT NULL DEFAULT false,
	modified_at BIGINT  NOT NULL
);

CREATE TABLE triggers (
	seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id              TEXT    COLLATE "C" NOT NULL UNIQUE,
	app_id          TEXT    COLLATE "C" NOT NULL REFERENCES apps (id),
	thing_id        TEXT    COLLATE "C" NOT NULL REFERENCES things (id),
	event_source    TEXT    NOT NULL,
	predicate       TEXT    NOT NULL,
	command         TEXT,
	server_code     TEXT,
	title           TEXT    NOT NULL DEFAULT '',
	description     TEXT    NOT NULL DEFAULT '',
	metadata        TEXT,
	disabled        BOOLEAN NOT NULL DEFAULT false,
	disabled_reason TEXT    NOT NULL DEFAULT '',
	evaluated       BOOLEAN NOT NULL DEFAULT false,
	satisfied       BOOLEAN NOT NULL DEFAULT false,
	fired_at        BIGINT  NOT NULL DEFAULT 0,
	created_at      BIGINT  NOT NULL,
	modified_at     BIGINT  NOT NULL
);

CREATE INDEX triggers_thing ON triggers (thing_id, seq);
CREATE INDEX triggers_source ON triggers (event_source, disabled, seq);

CREATE TABLE trigger_results (
	seq            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	trigger_id     TEXT    COLLATE "C" NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
	thing_id       TEXT    COLLATE "C" NOT NULL,
	succeeded      BOOLEAN NOT NULL,
	returned_value TEXT,
	error          TEXT    NOT NULL DEFAULT '',
	endpoint       TEXT    NOT NULL DEFAULT '',
	executed_at    BIGINT  NOT NULL
);

CREATE INDEX trigger_results_trigger ON trigger_results (trigger_id, seq);
