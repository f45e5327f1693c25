package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thingif/thingif/internal/limit"
)

// The brute-force guard of a cluster.
//
// Guard is limit.Guard with its counts in the database (migration 0003), so
// that a guesser spread over N nodes gets the tries one node would give, not
// N times as many. Every rule is limit.Limiter's, computed by the same
// limit.Config.Block; what the database adds:
//
//   - One clock. Times are the database's (clock_timestamp()), so nodes
//     with skewed clocks agree on when a block ends.
//   - One statement per Fail (INSERT … ON CONFLICT DO UPDATE … RETURNING):
//     concurrent failures on any nodes are all counted, each seeing the
//     count its own failure made.
//   - Bounded tables. Rows of forgotten failures (Config.Forget) and expired
//     trust (Config.Trust) are deleted in chunks, at most once a minute per
//     node, by the node that is recording failures or successes anyway
//     (Prune); a key keeps its TrustedPerKey newest addresses.
//   - Few round trips on the way of a right credential: an Allow that finds
//     no row lets the key through without asking again for clearFor (a
//     Fail on this node ends that at once); a SucceedFrom already written
//     by this node within trustRefresh is not written again; AllowFrom
//     reads the failures and the trust in one statement.
//
// Outages. When a statement fails or does not answer within guardTimeout
// (the database down or overloaded, a broken connection, a missing table)
// the guard decides with its floor: an in-memory limit.Limiter of the same
// Config to which every call on this node is also made, all the time.
// Failing closed would lock every device out for as long as the database
// is away; failing open would give guessers unlimited tries whenever they
// can make it slow. With the floor each node limits by its own counts, as a
// single node always did: while the outage lasts a guesser gets at most N
// times the tries, never more, and a device is blocked only by failures on
// its own node. After a failure the database is left alone for downFor, so
// that an outage does not add guardTimeout to every login; the first
// failure and the recovery are logged. Failures recorded by the floor alone
// are not copied to the database afterwards.

var _ limit.Guard = (*Guard)(nil)

const (
	// guardTimeout bounds each statement of the guard: a slow database
	// makes the floor decide rather than holding a login.
	guardTimeout = 2 * time.Second
	// downFor is how long the guard decides with its floor alone after a
	// statement failed.
	downFor = 5 * time.Second
	// clearFor is how long an Allow that found no failures for a key lets
	// the key through without asking the database: failures on other
	// nodes within it may give this node one try more.
	clearFor = time.Second
	// clearMax bounds the keys remembered clear.
	clearMax = 10_000
	// trustRefresh is how long a SucceedFrom written by this node is not
	// written again: the trust it records lasts Config.Trust (30 days).
	trustRefresh = 10 * time.Minute
	// trustWrittenMax bounds the key and address pairs remembered written.
	trustWrittenMax = 10_000
	// pruneEvery is how often a node deletes forgotten rows, pruneChunk
	// how many a statement deletes and pruneBudget how long a node goes
	// on deleting full chunks.
	pruneEvery   = time.Minute
	pruneChunk   = 5000
	pruneBudget  = 250 * time.Millisecond
	pruneTimeout = 5 * time.Second
)

// The guard's statements. $1 is always the time: NULL for the database's
// clock, or Config.Now's in unix milliseconds (tests).
const (
	guardNow = `COALESCE($1::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)`

	// $2 key, $3 addr, $4 whether addr is asked about, $5 Free, $6
	// TrustedPerKey, $7 Trust (ms). The trust is read only when the key
	// is past its free failures.
	guardAllowSQL = `SELECT n.t, f.failures, f.last_failure,
	CASE WHEN $4 AND f.failures > $5 THEN EXISTS (
		SELECT 1 FROM (SELECT addr, at FROM login_trust WHERE key = $2 ORDER BY at DESC LIMIT $6) r
		WHERE r.addr = $3 AND r.at > n.t - $7)
	ELSE false END
FROM (SELECT ` + guardNow + ` AS t) n LEFT JOIN login_failures f ON f.key = $2`

	// $2 key, $3 Forget (ms). GREATEST: a failure that waited for the row
	// lock may carry an earlier time than the one it waited for.
	guardFailSQL = `INSERT INTO login_failures AS f (key, failures, last_failure) VALUES ($2, 1, ` + guardNow + `)
ON CONFLICT (key) DO UPDATE SET
	failures = CASE WHEN EXCLUDED.last_failure - f.last_failure >= $3 THEN 1 ELSE f.failures + 1 END,
	last_failure = GREATEST(f.last_failure, EXCLUDED.last_failure)
RETURNING failures`

	guardSucceedSQL = `DELETE FROM login_failures WHERE key = $1`

	// $2 key, $3 addr, $4 how many other addresses the key keeps. The
	// DELETE sees the table as it was before the INSERT, hence addr <> $3
	// on both sides; two concurrent new addresses may leave one row too
	// many, which the Allow's LIMIT ignores and the next SucceedFrom
	// deletes.
	guardTrustSQL = `WITH up AS (
	INSERT INTO login_trust (key, addr, at) VALUES ($2, $3, ` + guardNow + `)
	ON CONFLICT (key, addr) DO UPDATE SET at = GREATEST(login_trust.at, EXCLUDED.at)
)
DELETE FROM login_trust WHERE key = $2 AND addr <> $3 AND addr NOT IN (
	SELECT addr FROM login_trust WHERE key = $2 AND addr <> $3 ORDER BY at DESC LIMIT $4)`

	// $2 age (ms), $3 chunk. SKIP LOCKED: nodes pruning at once share the
	// work, and a row a Fail is reviving is left to it.
	guardPruneFailuresSQL = `DELETE FROM login_failures WHERE key IN (
	SELECT key FROM login_failures WHERE last_failure <= ` + guardNow + ` - $2 LIMIT $3 FOR UPDATE SKIP LOCKED)`
	guardPruneTrustSQL = `DELETE FROM login_trust WHERE (key, addr) IN (
	SELECT key, addr FROM login_trust WHERE at <= ` + guardNow + ` - $2 LIMIT $3 FOR UPDATE SKIP LOCKED)`
)

// Guard is a limit.Guard that counts in the database, for every node that
// shares it (the rules in limit's package comment, the design in this
// file's header). It is safe for concurrent use. It needs no closing; it
// uses the DB's pool, which must stay open while the Guard is used.
type Guard struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	cfg  limit.Config // with its defaults
	// clock is Config.Now as given: nil for the database's clock.
	clock func() time.Time

	floor   *limit.Limiter // the decisions while the database is unavailable
	written *limit.Limiter // the trust written by this node within trustRefresh
	clear   clearCache

	// downUntil is when the database is asked again after a failure (unix
	// nanoseconds), downFor after it; down says a failure was logged and
	// recovery is not.
	downUntil atomic.Int64
	downFor   time.Duration
	down      atomic.Bool
	// pruned is when this node last pruned (unix nanoseconds).
	pruned atomic.Int64
}

// NewGuard returns a Guard on db's tables for cfg, whose zero fields take
// limit's defaults. If cfg.Now is nil the database's clock tells the time,
// else cfg.Now does (tests). MaxKeys and MaxTrusted bound only the floor:
// the tables are bounded by Forget and Trust.
func NewGuard(db *DB, cfg limit.Config) *Guard {
	g := &Guard{pool: db.pool, log: db.log, clock: cfg.Now, cfg: cfg.WithDefaults(), clear: clearCache{ttl: clearFor}, downFor: downFor}
	g.floor = limit.New(g.cfg)
	g.written = limit.New(limit.Config{Trust: trustRefresh, MaxTrusted: trustWrittenMax, Now: g.cfg.Now})
	return g
}

// Allow reports whether key may try now; see limit.Guard.
func (g *Guard) Allow(key string) (retryAfter time.Duration, ok bool) {
	return g.allow(key, "", false)
}

// AllowFrom is Allow for a try from addr; see limit.Guard.
func (g *Guard) AllowFrom(key, addr string) (retryAfter time.Duration, ok bool) {
	return g.allow(key, addr, true)
}

func (g *Guard) allow(key, addr string, from bool) (time.Duration, bool) {
	if g.clear.has(key) {
		return 0, true
	}
	if !g.up() {
		return g.floorAllow(key, addr, from)
	}
	gen := g.clear.generation()
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	var (
		now      int64
		failures *int32
		last     *int64
		trusted  bool
	)
	err := g.pool.QueryRow(ctx, guardAllowSQL, g.at(), key, addr, from, g.cfg.Free, limit.TrustedPerKey, g.cfg.Trust.Milliseconds()).
		Scan(&now, &failures, &last, &trusted)
	if err != nil {
		g.fail("allow", err)
		return g.floorAllow(key, addr, from)
	}
	g.recovered()
	if failures == nil || now-*last >= g.cfg.Forget.Milliseconds() {
		g.clear.add(key, gen)
		return 0, true
	}
	if trusted {
		return 0, true
	}
	if wait := time.Duration(*last-now)*time.Millisecond + g.cfg.Block(int(*failures)); wait > 0 {
		return max(wait, time.Second).Round(time.Second), false
	}
	return 0, true
}

func (g *Guard) floorAllow(key, addr string, from bool) (time.Duration, bool) {
	if from {
		return g.floor.AllowFrom(key, addr)
	}
	return g.floor.Allow(key)
}

// Fail records a wrong credential for key in one statement and returns
// key's block; see limit.Guard.
func (g *Guard) Fail(key string) time.Duration {
	g.clear.drop(key)
	local := g.floor.Fail(key)
	if !g.up() {
		return local
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	var failures int32
	if err := g.pool.QueryRow(ctx, guardFailSQL, g.at(), key, g.cfg.Forget.Milliseconds()).Scan(&failures); err != nil {
		g.fail("fail", err)
		return local
	}
	g.recovered()
	g.maybePrune()
	return g.cfg.Block(int(failures))
}

// Succeed forgets key's failures on every node; see limit.Guard. A key an
// Allow has just found clear is not written.
func (g *Guard) Succeed(key string) {
	g.floor.Succeed(key)
	if g.clear.has(key) || !g.up() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	if _, err := g.pool.Exec(ctx, guardSucceedSQL, key); err != nil {
		g.fail("succeed", err)
		return
	}
	g.recovered()
}

// SucceedFrom trusts addr for key on every node; see limit.Guard. A pair
// this node wrote within trustRefresh is not written again.
func (g *Guard) SucceedFrom(key, addr string) {
	g.floor.SucceedFrom(key, addr)
	if g.written.Trusted(key, addr) || !g.up() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	if _, err := g.pool.Exec(ctx, guardTrustSQL, g.at(), key, addr, limit.TrustedPerKey-1); err != nil {
		g.fail("trust", err)
		return
	}
	g.recovered()
	g.written.SucceedFrom(key, addr)
	g.maybePrune()
}

// Prune deletes the rows of failures older than Config.Forget and of trust
// older than Config.Trust, pruneChunk rows a statement, for as long as it
// finds full chunks and pruneBudget has not passed. It returns how many
// rows it deleted. The Guard calls it itself, once a minute on each node
// that records failures or successes.
func (g *Guard) Prune(ctx context.Context) (int64, error) {
	start, n := time.Now(), int64(0)
	for _, p := range []struct {
		name, sql string
		age       time.Duration
	}{
		{"failures", guardPruneFailuresSQL, g.cfg.Forget},
		{"trust", guardPruneTrustSQL, g.cfg.Trust},
	} {
		for {
			tag, err := g.pool.Exec(ctx, p.sql, g.at(), p.age.Milliseconds(), pruneChunk)
			if err != nil {
				return n, fmt.Errorf("prune login %s: %w", p.name, err)
			}
			n += tag.RowsAffected()
			if tag.RowsAffected() < pruneChunk || time.Since(start) > pruneBudget {
				break
			}
		}
	}
	return n, nil
}

// maybePrune prunes if this node has not for pruneEvery.
func (g *Guard) maybePrune() {
	now, last := time.Now().UnixNano(), g.pruned.Load()
	if now-last < int64(pruneEvery) || !g.pruned.CompareAndSwap(last, now) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pruneTimeout)
	defer cancel()
	if n, err := g.Prune(ctx); err != nil {
		g.log.Warn("prune login guard", "error", err)
	} else if n > 0 {
		g.log.Debug("login guard pruned", "rows", n)
	}
}

// at is the statements' $1: NULL for the database's clock, or the given
// clock's time in unix milliseconds.
func (g *Guard) at() any {
	if g.clock == nil {
		return nil
	}
	return g.clock().UnixMilli()
}

// up reports whether the database is to be asked: no statement failed
// within downFor.
func (g *Guard) up() bool { return time.Now().UnixNano() >= g.downUntil.Load() }

// fail leaves the database alone for downFor after err, logging the first
// failure of an outage.
func (g *Guard) fail(op string, err error) {
	g.downUntil.Store(time.Now().Add(g.downFor).UnixNano())
	if !g.down.Swap(true) {
		g.log.Warn("login guard: database unavailable; limiting by this node's counts alone", "op", op, "error", err)
	}
}

// recovered logs the end of an outage.
func (g *Guard) recovered() {
	if g.down.Load() && g.down.Swap(false) {
		g.log.Info("login guard: database available again; limiting by the cluster's counts")
	}
}

// clearCache remembers, for ttl, the keys an Allow found without failures.
// A Fail on this node drops its key at once, and an Allow whose statement
// ran across any Fail does not add its key (generation), so a key is
// remembered clear only if no Fail on this node could have made it not.
// When full it starts again empty.
type clearCache struct {
	ttl  time.Duration // zero: nothing is remembered
	mu   sync.Mutex
	keys map[string]time.Time // when the key stops being clear
	gen  uint64               // Fails so far
}

func (c *clearCache) has(key string) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.keys[key]
	if ok && time.Now().After(until) {
		delete(c.keys, key)
		return false
	}
	return ok
}

func (c *clearCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *clearCache) add(key string, gen uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.keys == nil || len(c.keys) >= clearMax {
		c.keys = make(map[string]time.Time)
	}
	c.keys[key] = time.Now().Add(c.ttl)
}

func (c *clearCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.keys, key)
}
