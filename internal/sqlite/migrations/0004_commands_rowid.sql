-- commands gets a plain rowid key instead of AUTOINCREMENT. Commands are
-- never deleted, so the largest seq is never freed and a plain rowid keeps
-- counting up, as the pagination keys need; AUTOINCREMENT cost every new
-- command a read and a write of sqlite_sequence, one more page in the WAL.
CREATE TABLE commands_new (
	seq            INTEGER PRIMARY KEY,
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
INSERT INTO commands_new (seq, id, app_id, thing_id, state, issuer, schema_name, schema_version,
		actions, action_results, title, description, metadata, created_at, modified_at)
	SELECT seq, id, app_id, thing_id, state, issuer, schema_name, schema_version,
		actions, action_results, title, description, metadata, created_at, modified_at
	FROM commands;
DROP TABLE commands;
ALTER TABLE commands_new RENAME TO commands;
DELETE FROM sqlite_sequence WHERE name = 'commands';
CREATE INDEX commands_thing_seq ON commands (thing_id, seq);
CREATE INDEX commands_sending ON commands (thing_id, seq) WHERE state = 'SENDING';
CREATE INDEX commands_sending_created ON commands (created_at) WHERE state = 'SENDING';
