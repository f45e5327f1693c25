package server

import (
	"context"
	"time"

	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/trigger"
)

// singletonsLease names the one lease under which a node runs the app
// side's background work (the trigger scheduler and housekeeping) on
// behalf of the cluster. One lease for both: each is light, they start and
// stop together, and one renewal costs half of two.
const singletonsLease = "singletons"

// pgRescan is the trigger scheduler's longest sleep on PostgreSQL: a
// schedule trigger created on another node wakes only that node's
// scheduler, and this one reads it within pgRescan.
const pgRescan = 5 * time.Second

// leader runs the jobs that one node of the cluster runs at a time.
type leader interface {
	// Run runs fn whenever this node holds the lease name, until ctx
	// ends: fn's context is cancelled when the lease may be lost, and Run
	// waits for fn to return before it runs it again and before it
	// returns.
	Run(ctx context.Context, name string, fn func(ctx context.Context))
}

var (
	_ leader         = (*postgres.Leader)(nil)
	_ leader         = soleNode{}
	_ trigger.Locker = pgLocker{}
)

// soleNode is the leader of a server that is its store's only user
// (SQLite, whose data directory is locked): it holds every lease.
type soleNode struct{}

// Run runs fn until ctx ends.
func (soleNode) Run(ctx context.Context, _ string, fn func(ctx context.Context)) { fn(ctx) }

// pgLocker is trigger.Locker on PostgreSQL: the evaluation of a thing's
// state triggers runs in a transaction under its advisory lock, which
// reads past this node's cache.
type pgLocker struct{ db *postgres.DB }

// LockThing implements trigger.Locker.
func (l pgLocker) LockThing(ctx context.Context, thingID string, fn func(st trigger.RunStore) error) error {
	return l.db.LockTriggerRuns(ctx, thingID, func(runs postgres.TriggerRuns) error { return fn(runs) })
}
