-- 0003_login_failures: the brute-force counts that every node shares
-- (guard.go; docs/security.md, "Brute force"). Times are BIGINT unix
-- milliseconds of the database's clock, so that nodes whose clocks differ
-- agree on when a block ends. (0002 is another change's.)

-- One row per key with failures not yet forgotten; rows forgotten
-- (last_failure older than limit.Config.Forget) are deleted in chunks.
CREATE TABLE login_failures (
	key          TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	failures     INTEGER NOT NULL,
	last_failure BIGINT  NOT NULL
);

CREATE INDEX login_failures_last ON login_failures (last_failure);

-- The addresses that recently gave a key's right credential: the newest
-- limit.TrustedPerKey of each key count, older ones are deleted.
CREATE TABLE login_trust (
	key  TEXT   COLLATE "C" NOT NULL,
	addr TEXT   COLLATE "C" NOT NULL,
	at   BIGINT NOT NULL,
	PRIMARY KEY (key, addr)
);

CREATE INDEX login_trust_at ON login_trust (at);
