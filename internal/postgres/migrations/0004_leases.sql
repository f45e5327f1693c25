-- 0004_leases: the leases of the jobs that one node of the cluster runs at
-- a time (lease.go). The holder is a node and its incarnation, so that a
-- restarted node is a new holder. Unlike the other tables' times, which
-- are BIGINT unix milliseconds from the nodes' clocks, a lease's times are
-- the database's own (clock_timestamp()), and only the database compares
-- them: the nodes' clocks never decide who holds a lease.

CREATE TABLE leases (
	name        TEXT        COLLATE "C" NOT NULL PRIMARY KEY,
	node        TEXT        NOT NULL,
	incarnation TEXT        NOT NULL,
	term        BIGINT      NOT NULL,
	acquired_at TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL
);
