-- 0005_wake_from_nodes: the nodes send wakes themselves, after the
-- command's commit and in batches (internal/cluster, notify.go), instead of
-- a trigger in the command's own transaction: a transaction that NOTIFYs
-- holds PostgreSQL's one notification lock from its pre-commit to the end
-- of its commit's WAL flush, so cross-node commands committed one at a time
-- (BENCHMARKS.md, "PostgreSQL and three nodes": Lock:object 78% of the
-- busy backends at 2,000 commands/s).
DROP TRIGGER commands_wake ON commands;
DROP FUNCTION thingif_command_wake();
