package postgres

// Leases: a job that must run on one node of the cluster at a time (the
// trigger scheduler, housekeeping) runs on the node that holds its lease, a
// row of the leases table naming the holder and an expiry on the
// database's clock.
//
// The holder renews it every TTL/3 with the statement that acquires it
// (AcquireLease), and stops the job TTL/6 before the lease could expire:
// at the start of the last successful renewal request, by the node's
// monotonic clock, plus TTL minus TTL/6. The database set the expiry at
// TTL past a moment after that start, so the job has stopped at least
// TTL/6 before another node can acquire the lease, whatever the two
// clocks say; the TTL/6 covers a write the job sent just before it
// stopped and the drift of the clocks' rates.
//
// A node that dies holds the lease until it expires: another node gets it
// at its next attempt after that, within TTL + TTL/3 of the last renewal.
// A node that shuts down releases it (expiry now), and the next attempt of
// another node, within TTL/3, gets it.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultLeaseTTL is LeaderConfig.TTL's default: a dead node's jobs move
// within 8 s (TTL + TTL/3), and a holder keeps its lease through two
// failed renewals.
const DefaultLeaseTTL = 6 * time.Second

// releaseTimeout bounds the release of a lease at shutdown.
const releaseTimeout = 2 * time.Second

// Holder names the holder of a lease: a node, and its incarnation, which
// tells this run of the node from its earlier ones.
type Holder struct {
	Node, Incarnation string
}

// Lease is one holding of a lease, as the database recorded it.
type Lease struct {
	Name   string
	Holder Holder
	// Term counts the holdings of the lease: it grows by one each time a
	// holder acquires it that did not hold it until then.
	Term int64
	// AcquiredAt and ExpiresAt are on the database's clock.
	AcquiredAt, ExpiresAt time.Time
}

// AcquireLease acquires the lease name for h, or renews it if h holds it,
// until ttl past now on the database's clock, in one statement: it returns
// the lease and true when h holds it, false when another holder's lease
// has not expired.
func (db *DB) AcquireLease(ctx context.Context, name string, h Holder, ttl time.Duration) (Lease, bool, error) {
	l := Lease{Name: name, Holder: h}
	err := db.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, node, incarnation, term, acquired_at, expires_at)
		VALUES ($1, $2, $3, 1, clock_timestamp(), clock_timestamp() + $4::bigint * interval '1 millisecond')
		ON CONFLICT (name) DO UPDATE SET
			term = CASE WHEN l.node = excluded.node AND l.incarnation = excluded.incarnation
				AND l.expires_at > clock_timestamp() THEN l.term ELSE l.term + 1 END,
			acquired_at = CASE WHEN l.node = excluded.node AND l.incarnation = excluded.incarnation
				AND l.expires_at > clock_timestamp() THEN l.acquired_at ELSE excluded.acquired_at END,
			node = excluded.node, incarnation = excluded.incarnation, expires_at = excluded.expires_at
		WHERE (l.node = excluded.node AND l.incarnation = excluded.incarnation) OR l.expires_at <= clock_timestamp()
		RETURNING term, acquired_at, expires_at`,
		name, h.Node, h.Incarnation, ttl.Milliseconds()).Scan(&l.Term, &l.AcquiredAt, &l.ExpiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Lease{}, false, nil
	case err != nil:
		return Lease{}, false, fmt.Errorf("acquire lease %q: %w", name, err)
	}
	return l, true, nil
}

// ReleaseLease ends h's lease name now, if h holds it, so that another
// holder may acquire it at once.
func (db *DB) ReleaseLease(ctx context.Context, name string, h Holder) error {
	if _, err := db.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp()
		WHERE name = $1 AND node = $2 AND incarnation = $3 AND expires_at > clock_timestamp()`,
		name, h.Node, h.Incarnation); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}

// LeaderConfig configures a Leader.
type LeaderConfig struct {
	// Node names this node among those sharing the database. Required.
	Node string
	// Incarnation tells this run of the node from its earlier ones. If
	// empty, a random string.
	Incarnation string
	// TTL is how long a lease lasts past each renewal. If zero,
	// DefaultLeaseTTL. It is renewed every TTL/3; the job stops TTL/6
	// before the lease can expire.
	TTL time.Duration
	// Logger receives the acquisitions and losses of leases. If nil, logs
	// are discarded.
	Logger *slog.Logger
}

// Leader runs jobs that one node of the cluster runs at a time, each while
// this node holds the job's lease.
type Leader struct {
	db     *DB
	holder Holder
	ttl    time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	running map[string]bool // a Run of the lease is running
	held    map[string]bool // its job is running
}

// NewLeader returns a Leader for the node of cfg on db.
func (db *DB) NewLeader(cfg LeaderConfig) (*Leader, error) {
	switch {
	case cfg.Node == "":
		return nil, errors.New("postgres: LeaderConfig.Node is required")
	case cfg.TTL < 0:
		return nil, errors.New("postgres: LeaderConfig.TTL is negative")
	}
	if cfg.Incarnation == "" {
		cfg.Incarnation = rand.Text()[:12]
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := Holder{Node: cfg.Node, Incarnation: cfg.Incarnation}
	return &Leader{db: db, holder: h, ttl: cfg.TTL, running: map[string]bool{}, held: map[string]bool{},
		log: cfg.Logger.With("node", h.Node, "incarnation", h.Incarnation)}, nil
}

// Holder returns the holder this Leader acquires leases as.
func (l *Leader) Holder() Holder { return l.holder }

// Holding reports whether the job of lease name is running here.
func (l *Leader) Holding(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[name]
}

func (l *Leader) setHolding(name string, v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[name] = v
}

// attempt is the outcome of one AcquireLease.
type attempt struct {
	start time.Time // when the request was made, by the monotonic clock
	lease Lease
	ok    bool
	err   error
}

// Run runs fn whenever this node holds the lease name, until ctx ends.
// fn's context is cancelled when the lease may be lost (TTL/6 before it
// could expire unrenewed) or ctx ends, and Run waits for fn to return
// before it runs fn again and before it returns. On its way out Run
// releases the lease. If fn returns of itself while the lease is held,
// Run releases it and returns. Run panics if another Run of the same name
// is running on l: both would think they hold the lease.
func (l *Leader) Run(ctx context.Context, name string, fn func(ctx context.Context)) {
	l.mu.Lock()
	if l.running[name] {
		l.mu.Unlock()
		panic(fmt.Sprintf("postgres: Leader.Run of lease %q while one runs", name))
	}
	l.running[name] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.running, name)
	}()
	log := l.log.With("lease", name)
	renewEvery, margin := l.ttl/3, l.ttl/6
	results := make(chan attempt, 1)
	pending := false          // an attempt is running
	renew := time.NewTimer(0) // the next attempt
	lose := time.NewTimer(0)  // the stop of fn, while it runs
	lose.Stop()
	var (
		stopFn context.CancelFunc // cancels fn's context, while it runs
		fnDone chan struct{}      // closed when fn returns
		term   int64              // of the holding fn runs under
	)
	// ended forgets fn, which returned.
	ended := func(reason string) {
		stopFn, fnDone = nil, nil
		lose.Stop()
		l.setHolding(name, false)
		log.Info("lease job stopped", "term", term, "reason", reason)
	}
	// stop cancels fn, if it runs, and waits for it.
	stop := func(reason string) {
		if stopFn != nil {
			stopFn()
			<-fnDone
			ended(reason)
		}
	}
	defer func() {
		renew.Stop()
		if pending {
			<-results // its context is ctx's, which ended
		}
		stop("shutdown")
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := l.db.ReleaseLease(rctx, name, l.holder); err != nil {
			log.Warn("lease not released: another node takes it when it expires", "error", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			start := time.Now()
			// While fn runs, an answer is of use until fn must stop;
			// otherwise until the next attempt.
			until := start.Add(renewEvery)
			if stopFn != nil {
				until = start.Add(l.ttl - margin)
			}
			pending = true
			go func() {
				actx, cancel := context.WithDeadline(ctx, until)
				defer cancel()
				lease, ok, err := l.db.AcquireLease(actx, name, l.holder, l.ttl)
				results <- attempt{start: start, lease: lease, ok: ok, err: err}
			}()
		case a := <-results:
			pending = false
			renew.Reset(max(time.Until(a.start.Add(renewEvery)), 0))
			switch {
			case ctx.Err() != nil:
				return
			case a.err != nil:
				if stopFn != nil {
					log.Warn("lease not renewed", "term", term, "error", a.err)
				} else {
					log.Debug("lease not acquired", "error", a.err)
				}
				continue
			case !a.ok:
				// Another holder has it; while fn runs, only if the row
				// was changed behind this node's back.
				stop("held by another node")
				continue
			}
			wait := time.Until(a.start.Add(l.ttl - margin))
			if wait <= 0 {
				stop("renewed too late")
				continue
			}
			if stopFn != nil && a.lease.Term != term {
				// Another holder had it in between, which a stop in time
				// rules out unless the row was changed behind our back.
				stop("held by another node meanwhile")
			}
			lose.Reset(wait)
			if stopFn == nil {
				term = a.lease.Term
				fctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				stopFn, fnDone = cancel, done
				l.setHolding(name, true)
				log.Info("lease acquired: job started", "term", term)
				go func() {
					defer close(done)
					fn(fctx)
				}()
			}
		case <-lose.C:
			stop("not renewed in time")
		case <-fnDone:
			stopFn()
			ended("job returned")
			return
		}
	}
}
