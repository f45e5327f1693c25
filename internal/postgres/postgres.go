// Package postgres implements store.Store on PostgreSQL with pgx (pgxpool),
// for thingif nodes that share one database (docs/scale-out.md).
//
// Its semantics are SQLite's (internal/sqlite), checked by the same
// conformance suite (internal/store/storetest), with what several nodes
// writing at once adds:
//
//   - Every write is one transaction, committed before the call returns:
//     with PostgreSQL's defaults (fsync on, synchronous_commit on) an
//     acknowledged write survives a crash of the node and of the database
//     server.
//   - Writes that read before they write take a transaction-scoped advisory
//     lock on the thing they change (lockThing), so that two nodes cannot
//     interleave them: the pending-command bound and the trigger bound stay
//     exact, merged states lose no field, and a thing's commands get their
//     seq in the order they commit, which keeps PendingCommands' pages
//     consistent.
//   - The evaluation of a thing's state triggers reads and writes their
//     runs in one transaction under the thing's evaluation lock
//     (LockTriggerRuns), so that a false→true transition fires once in the
//     cluster.
//   - Jobs that run on one node at a time (the trigger scheduler,
//     housekeeping) run under a lease (lease.go, Leader).
//   - Schema migrations run under an advisory lock, so nodes starting at
//     once apply each migration once.
//
// Guard, in guard.go, is the nodes' shared brute-force limit (limit.Guard)
// on tables of the same database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thingif/thingif/internal/store"
)

var _ store.Store = (*DB)(nil)

// Config configures a DB.
type Config struct {
	// DSN is the PostgreSQL connection string, as a URL
	// (postgres://user:password@host:port/database?sslmode=…) or in
	// keyword=value form; pgxpool's pool_* parameters are honoured.
	// Required.
	DSN string
	// Logger receives the store's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// MaxConns bounds the pool's connections. If zero, the DSN's
	// pool_max_conns, or DefaultMaxConns.
	MaxConns int32
	// ConnectTimeout bounds each connection attempt. If zero, the DSN's
	// connect_timeout, or DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Node, if set, names the node: its connections say application_name
	// "thingif/NODE", which pg_stat_activity shows.
	Node string
}

// Defaults of Config.
const (
	// DefaultMaxConns: enough for a node's concurrent writes (each a round
	// trip of a few hundred microseconds) while three nodes and their
	// listeners stay far below PostgreSQL's default max_connections, 100.
	DefaultMaxConns = 16
	// DefaultConnectTimeout keeps an unreachable server from holding the
	// start-up for the kernel's TCP timeout.
	DefaultConnectTimeout = 5 * time.Second
)

// IsDSN reports whether s names a PostgreSQL database rather than a file:
// a postgres:// or postgresql:// URL.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// DB is a store.Store on a PostgreSQL database. It is safe for concurrent
// use, also by several processes on the same database.
type DB struct {
	log  *slog.Logger
	pool *pgxpool.Pool
}

// Open connects to the database of cfg.DSN, checks that it answers and
// applies any pending schema migrations. Its errors are one line that
// names what failed, without the password.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.DSN == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", oneLine(err))
	}
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.DSN, "pool_max_conns"):
		pc.MaxConns = DefaultMaxConns
	}
	switch {
	case cfg.ConnectTimeout > 0:
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	case pc.ConnConfig.ConnectTimeout == 0:
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Node != "" {
		pc.ConnConfig.RuntimeParams["application_name"] = ApplicationName(cfg.Node)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", oneLine(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", oneLine(err))
	}
	db := &DB{log: cfg.Logger.With("database", pc.ConnConfig.Database, "host", pc.ConnConfig.Host), pool: pool}
	if err := migrate(ctx, pool, db.log); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", oneLine(err))
	}
	db.log.Debug("postgres store open")
	return db, nil
}

// ApplicationName is the application_name of a node's connections.
func ApplicationName(node string) string { return "thingif/" + node }

// Pool returns the connection pool, for the cluster's own tables
// (internal/cluster) on the same database.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes the pool, waiting for the connections in use.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// oneLine makes an error's message one line: start-up errors are one line,
// and pgx joins the errors of its connection attempts (TLS first, then
// plain, with sslmode=prefer) with newlines.
func oneLine(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "\n") {
		return err
	}
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, strings.TrimSuffix(l, ":"))
		}
	}
	return lineError{strings.Join(parts, "; "), err}
}

// lineError is an error with its message made one line.
type lineError struct {
	msg string
	err error
}

func (e lineError) Error() string { return e.msg }
func (e lineError) Unwrap() error { return e.err }

// querier is a *pgxpool.Pool or a pgx.Tx.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tx runs fn in a transaction, committed if fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return translate(pgx.BeginFunc(ctx, db.pool, fn))
}

// Lock classes of lockThing: one per kind of read-then-write on a thing.
const (
	lockCommands   = 1
	lockStates     = 2
	lockTriggers   = 3
	lockEvaluation = 4 // of state triggers (LockTriggerRuns)
)

// lockThing takes the transaction-scoped advisory lock of class on a thing:
// the writes of one class on one thing run one at a time in the cluster.
// Two things whose IDs hash alike share a lock, which only serialises them.
func lockThing(ctx context.Context, tx pgx.Tx, class int32, thingID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, class, thingID); err != nil {
		return fmt.Errorf("lock thing: %w", err)
	}
	return nil
}

// PostgreSQL's SQLSTATE codes for the violations translate maps.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// translate maps constraint violations to the store sentinels: a unique or
// primary key violation is store.ErrConflict, a foreign key violation (a
// reference to a thing or app that does not exist) is store.ErrNotFound.
// Other errors are returned unchanged.
func translate(err error) error {
	if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
		return err // none, or translated already
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		// A connection that could not be made, or broke under a
		// statement (the server went, or the network).
		var ce *pgconn.ConnectError
		var ne net.Error
		if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	switch {
	case pe.Code == codeUniqueViolation:
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	case pe.Code == codeForeignKeyViolation:
		return fmt.Errorf("%w: referenced record: %w", store.ErrNotFound, err)
	case serverGone(pe.Code):
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// serverGone reports whether a SQLSTATE says the server ended or refuses
// the session: a connection exception (class 08) or a shutdown (57P01
// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now).
func serverGone(code string) bool {
	return strings.HasPrefix(code, "08") || code == "57P01" || code == "57P02" || code == "57P03"
}

// notFound turns pgx.ErrNoRows into store.ErrNotFound.
func notFound(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, translate(err))
}

// oneRow turns the result of an UPDATE or DELETE of one row into nil, or
// store.ErrNotFound when no row matched.
func oneRow(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, translate(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// millis converts a time to the stored form: unix milliseconds, 0 for the
// zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis converts a stored time back: 0 is the zero time.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// jsonArg converts a JSON document to its stored form: TEXT, or NULL when
// absent.
func jsonArg(doc []byte) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// jsonDest scans a TEXT-or-NULL column into a JSON document, nil for NULL.
type jsonDest struct{ doc *[]byte }

// ScanText implements pgtype.TextScanner.
func (d jsonDest) ScanText(v pgtype.Text) error {
	if !v.Valid {
		*d.doc = nil
		return nil
	}
	*d.doc = []byte(v.String)
	return nil
}

// sqlLimit is the LIMIT for a page of limit items: one more tells whether
// there is a next page; NULL is no limit.
func sqlLimit(limit int) any {
	if limit > 0 {
		return int64(limit) + 1
	}
	return nil
}

// pageLimit is the LIMIT for at most limit items; NULL is no limit.
func pageLimit(limit int) any {
	if limit > 0 {
		return int64(limit)
	}
	return nil
}

// parseKey parses a pagination key: the decimal position after which the
// next page starts.
func parseKey(key string, def int64) (int64, error) {
	if key == "" {
		return def, nil
	}
	var k int64
	if _, err := fmt.Sscan(key, &k); err != nil || k <= 0 || fmt.Sprint(k) != key {
		return 0, fmt.Errorf("%w: %q", store.ErrInvalidPaginationKey, key)
	}
	return k, nil
}

// collect reads every row of rows with scan, the pages' way: it returns the
// items and their seqs.
func collect[T any](rows pgx.Rows, err error, scan func(pgx.Rows) (T, int64, error)) ([]T, []int64, error) {
	if err != nil {
		return nil, nil, translate(err)
	}
	defer rows.Close()
	out := []T{}
	var seqs []int64
	for rows.Next() {
		v, seq, err := scan(rows)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, v)
		seqs = append(seqs, seq)
	}
	return out, seqs, translate(rows.Err())
}

// page cuts a listing read with sqlLimit(limit) to limit items and returns
// the key of the next page, "" on the last.
func page[T any](items []T, seqs []int64, limit int) ([]T, string) {
	if limit > 0 && len(items) > limit {
		return items[:limit], fmt.Sprint(seqs[limit-1])
	}
	return items, ""
}

// strings runs a query of one TEXT column.
func (db *DB) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if out == nil {
		out = []string{}
	}
	return out, translate(err)
}

// housekeepingChunk bounds the rows one housekeeping statement changes, so
// that a day of history pruned holds no lock for long.
const housekeepingChunk = 1000

// execChunks runs a housekeeping statement whose last parameter is a LIMIT
// on the rows it changes, as separate transactions until one changes fewer
// than housekeepingChunk rows, and returns the rows changed.
func (db *DB) execChunks(ctx context.Context, query string, args ...any) (int64, error) {
	args = append(args, housekeepingChunk)
	var total int64
	for {
		tag, err := db.pool.Exec(ctx, query, args...)
		if err != nil {
			return total, translate(err)
		}
		n := tag.RowsAffected()
		total += n
		if n < housekeepingChunk {
			return total, nil
		}
	}
}
