// Package sqlite implements store.Store on an embedded SQLite database, using
// the pure-Go driver modernc.org/sqlite (no cgo).
//
// The database runs in WAL mode. All writes go through one connection, which
// serialises them inside the process and avoids SQLITE_BUSY storms; reads use
// a separate pool of read-only connections that proceed concurrently with the
// writer.
//
// # Durability
//
// By default the database runs with synchronous=NORMAL: a committed
// transaction survives a crash of the process (even SIGKILL), because it is
// in the WAL file before the call returns. On power loss or an OS crash the
// last transactions before the failure may be lost (the database stays
// consistent). Set Config.Synchronous to "FULL" to fsync the WAL on every
// commit and survive power loss too, at the cost of write latency.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/thingif/thingif/internal/store"
)

var _ store.Store = (*DB)(nil)

// Log attribute keys.
const (
	logKeyPath    = "path"
	logKeyVersion = "version"
	logKeyName    = "name"
)

// Config configures a DB. The zero value of every field except Path selects
// a default.
type Config struct {
	// Path is the database file. Its parent directory is created (mode
	// 0700) if missing; the file is created with mode 0600 (and so are its
	// -wal and -shm files), and an existing one readable by group or others
	// is tightened to 0600 with a warning. Required; ":memory:" is not supported because the
	// reader and writer connections must share one database.
	Path string
	// Logger receives the store's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process. If zero, 5 seconds.
	BusyTimeout time.Duration
	// ReadConns is the number of read-only connections. If zero,
	// max(4, GOMAXPROCS).
	ReadConns int
	// Synchronous is SQLite's synchronous setting: "NORMAL" or "FULL". If
	// empty, "NORMAL". See the package documentation.
	Synchronous string
}

// setDefaults fills in the zero fields of c.
func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
	if c.ReadConns == 0 {
		c.ReadConns = max(4, runtime.GOMAXPROCS(0))
	}
	if c.Synchronous == "" {
		c.Synchronous = "NORMAL"
	}
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("sqlite config: Path is empty")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:"):
		return fmt.Errorf("sqlite config: Path %q: must be a file path", c.Path)
	case strings.ContainsRune(c.Path, '?'):
		return fmt.Errorf("sqlite config: Path %q: must not contain '?'", c.Path)
	case c.BusyTimeout < 0:
		return fmt.Errorf("sqlite config: BusyTimeout %v is negative", c.BusyTimeout)
	case c.ReadConns < 0:
		return fmt.Errorf("sqlite config: ReadConns %d is negative", c.ReadConns)
	}
	switch strings.ToUpper(c.Synchronous) {
	case "", "NORMAL", "FULL":
	default:
		return fmt.Errorf("sqlite config: Synchronous %q: want NORMAL or FULL", c.Synchronous)
	}
	return nil
}

// DB is a store.Store backed by one SQLite database file. It is safe for
// concurrent use.
type DB struct {
	log  *slog.Logger
	path string
	// w is the single writer connection; r the pool of read-only ones.
	w, r *sql.DB
	ws   writeStmts
	rs   readStmts
	// wr runs every write on w, in batches (group commit: writer.go).
	wr *writer
	// cp checkpoints the WAL off the writer (checkpoint.go).
	cp *checkpointer
	// health marks writes failing for want of a writable disk (health.go).
	health writeHealth
}

// write runs fn in the writer's next transaction and returns its error, or
// the transaction's if the commit failed. See writer.go.
func (db *DB) write(ctx context.Context, fn writeFunc) error {
	err := db.wr.write(ctx, fn)
	db.health.note(err)
	return err
}

// exec runs one statement as a write.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// housekeepingChunk bounds the rows one housekeeping write changes.
const housekeepingChunk = 1000

// execChunks runs a housekeeping statement whose last parameter is a LIMIT
// on the rows it changes, as separate writes until one changes fewer than
// housekeepingChunk rows, and returns the rows changed. A day of state
// history is millions of rows: deleted in one write, it would hold the
// writer, and every upload and command queued behind it, for seconds;
// chunk by chunk, the writes queued meanwhile run between the chunks.
func (db *DB) execChunks(ctx context.Context, query string, args ...any) (int64, error) {
	args = append(args, housekeepingChunk)
	var total int64
	for {
		res, err := db.exec(ctx, query, args...)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < housekeepingChunk {
			return total, nil
		}
	}
}

// Open opens (creating if needed) the database at path with the default
// configuration and applies any pending schema migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenConfig(ctx, Config{Path: path})
}

// OpenConfig opens (creating if needed) the database described by cfg and
// applies any pending schema migrations.
func OpenConfig(ctx context.Context, cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger.With(logKeyPath, cfg.Path)

	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory: %w", err)
	}
	if err := prepareFiles(cfg.Path, log); err != nil {
		return nil, err
	}

	common := url.Values{}
	common.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous("+strings.ToUpper(cfg.Synchronous)+")")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "wal_autocheckpoint("+strconv.Itoa(backstopPages)+")") // see checkpoint.go
	// IMMEDIATE takes the write lock at BEGIN, so a read-modify-write
	// transaction cannot fail half way with SQLITE_BUSY when another process
	// writes the same file.
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", cfg.Path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	db := &DB{log: log, w: w, path: cfg.Path}
	db.health.log = log
	if err := db.checkWAL(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := migrate(ctx, w, migrationFS, log); err != nil {
		w.Close()
		return nil, err
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", cfg.Path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	db.r = r

	cp, err := sql.Open("sqlite", cfg.Path+"?"+common.Encode())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open checkpointer: %w", err)
	}
	cp.SetMaxOpenConns(1)
	cp.SetMaxIdleConns(1)
	cp.SetConnMaxLifetime(0)
	cp.SetConnMaxIdleTime(0)
	db.cp = newCheckpointer(cp, log)

	if err := db.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.wr, err = newWriter(ctx, w, db.cp.committed); err != nil {
		db.Close()
		return nil, err
	}
	log.Debug("sqlite store open")
	return db, nil
}

// checkWAL makes sure the writer connection really runs in WAL mode: the
// pragma silently keeps the old mode on file systems that cannot do WAL.
func (db *DB) checkWAL(ctx context.Context) error {
	var mode string
	if err := db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: journal mode is %q, want wal", mode)
	}
	return nil
}

// Close closes the database. The reader pool is closed even if closing the
// writer fails; the first error is returned.
func (db *DB) Close() error {
	var errs []error
	if db.wr != nil {
		db.wr.stop()
	}
	if db.cp != nil {
		db.cp.stop()
		if err := db.cp.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlite: close checkpointer: %w", err))
		}
	}
	if err := db.ws.close(); err != nil {
		errs = append(errs, err)
	}
	if err := db.rs.close(); err != nil {
		errs = append(errs, err)
	}
	if db.r != nil {
		if err := db.r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlite: close readers: %w", err))
		}
	}
	if err := db.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sqlite: close writer: %w", err))
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// translate maps SQLite constraint violations to the store sentinels: a
// unique or primary key violation is store.ErrConflict, a foreign key
// violation (a reference to a thing or app that does not exist) is
// store.ErrNotFound. Other errors are returned unchanged.
func translate(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w: referenced record: %w", store.ErrNotFound, err)
	}
	return err
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
// absent. A string (not []byte) makes SQLite store TEXT rather than BLOB.
func jsonArg(doc json.RawMessage) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// jsonDest scans a TEXT-or-NULL column into a JSON document, nil for NULL.
func jsonDest(doc *json.RawMessage) any {
	return (*[]byte)(doc)
}
