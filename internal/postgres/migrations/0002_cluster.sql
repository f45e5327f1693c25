-- 0002_cluster: the nodes sharing this database, where each thing is
-- placed, and which node holds each MQTT session (internal/cluster,
-- docs/scale-out.md).

-- thingif_now_ms is the database clock in unix milliseconds: every node
-- reads liveness and leases on this one clock, whatever its own says.
CREATE FUNCTION thingif_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE
	AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- One row per node name. incarnation tells a restarted node from its
-- previous life; a node whose heartbeat_at is older than the cluster's
-- dead-after is dead. assigned counts the things placed on it.
CREATE TABLE nodes (
	name         TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	incarnation  BIGINT NOT NULL,
	host         TEXT   NOT NULL,
	port_tcp     INTEGER NOT NULL,
	port_ssl     INTEGER NOT NULL,
	port_ws      INTEGER NOT NULL,
	port_wss     INTEGER NOT NULL,
	started_at   BIGINT NOT NULL,
	heartbeat_at BIGINT NOT NULL,
	connections  BIGINT NOT NULL DEFAULT 0,
	assigned     BIGINT NOT NULL DEFAULT 0
);

-- The node each thing's onboarding answer named.
CREATE TABLE thing_nodes (
	thing_id    TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	node        TEXT   COLLATE "C" NOT NULL,
	assigned_at BIGINT NOT NULL
);

CREATE INDEX thing_nodes_node ON thing_nodes (node);

-- One row per MQTT client ID connected to an API broker of the cluster:
-- the node that holds it and that connection's session number.
CREATE TABLE sessions (
	client_id    TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
	thing_id     TEXT   COLLATE "C" NOT NULL,
	node         TEXT   COLLATE "C" NOT NULL,
	session      BIGINT NOT NULL,
	connected_at BIGINT NOT NULL
);

CREATE INDEX sessions_thing ON sessions (thing_id);
CREATE INDEX sessions_node ON sessions (node);

-- A new command wakes the nodes that hold a session of its thing, but the
-- node that stored it (its connections say application_name
-- 'thingif/NODE'), which pushes it itself. NOTIFY is delivered at commit,
-- so the woken node finds the command stored.
CREATE FUNCTION thingif_command_wake() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	n TEXT;
BEGIN
	FOR n IN SELECT DISTINCT node FROM sessions WHERE thing_id = NEW.thing_id LOOP
		IF 'thingif/' || n IS DISTINCT FROM current_setting('application_name') THEN
			PERFORM pg_notify('thingif_' || n, 'wake ' || NEW.thing_id);
		END IF;
	END LOOP;
	RETURN NULL;
END
$$;

CREATE TRIGGER commands_wake AFTER INSERT ON commands
	FOR EACH ROW EXECUTE FUNCTION thingif_command_wake();
