package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Write health.
//
// Every write notes its outcome (DB.write): an error that says the file
// cannot be written (disk full, read-only file system, I/O error) marks the
// store as failing. Any other error (a constraint, a missing row, a bound, a
// cancelled context) says nothing about the disk and changes nothing.
//
// Only ProbeWrite clears the mark, not the next write that commits: on a
// full disk small writes still commit into WAL space the file already has
// while larger ones fail, and a mark cleared by each small write would make
// readiness flap with the traffic. ProbeWrite first writes and syncs a
// scratch file of probeSize (the largest request body) next to the
// database, then commits a write through the writer; only if both succeed is
// the disk back.

// IOError is a write that failed because the database could not be written.
type IOError struct {
	// Kind is "disk full", "read-only" or "I/O error".
	Kind string
	// Since is when writes started failing.
	Since time.Time
	// Err is the first write's error.
	Err error
}

func (e *IOError) Error() string { return "store writes failing: " + e.Kind + ": " + e.Err.Error() }

func (e *IOError) Unwrap() error { return e.Err }

// writeHealth is the mark: failing is nil while writes commit.
type writeHealth struct {
	log     *slog.Logger
	failing atomic.Pointer[IOError]
}

// note records the outcome of one write: a failure for want of a writable
// disk marks the store failing, and is logged once.
func (h *writeHealth) note(err error) {
	if err == nil {
		return
	}
	kind := ioKind(err)
	if kind == "" {
		return
	}
	if h.failing.Load() == nil && h.failing.CompareAndSwap(nil, &IOError{Kind: kind, Since: time.Now(), Err: err}) {
		h.log.Error("store writes failing", "kind", kind, "error", err)
	}
}

// clear removes the mark after a successful probe.
func (h *writeHealth) clear() {
	if was := h.failing.Load(); was != nil && h.failing.CompareAndSwap(was, nil) {
		// Warn, not Info: it answers an Error, and is as rare.
		h.log.Warn("store writes succeed again", "failing_for", time.Since(was.Since).Round(time.Millisecond).String())
	}
}

// ioKind returns the kind of an error that means the database file cannot
// be written, or "".
func ioKind(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk full"
	case errors.Is(err, syscall.EROFS):
		return "read-only"
	case errors.Is(err, syscall.EIO):
		return "I/O error"
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return ""
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return "disk full"
	case sqlite3.SQLITE_READONLY:
		return "read-only"
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT,
		sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOLFS:
		return "I/O error"
	}
	return ""
}

// WriteErr returns an *IOError from the first write that failed because
// the database could not be written, until a ProbeWrite succeeds; nil
// otherwise.
func (db *DB) WriteErr() error {
	if e := db.health.failing.Load(); e != nil {
		return e
	}
	return nil
}

// probeSize is the scratch file ProbeWrite writes: as large as the largest
// request body (httpapi's 1 MiB), so that a disk the probe finds writable has
// room for any one write.
const probeSize = 1 << 20

// ProbeWrite finds out whether the database can be written again, and if it
// can, clears the mark WriteErr reports. It writes and syncs a scratch file
// of probeSize beside the database (removed again), then commits a write
// that changes no data: it rewrites the header's user_version with its own
// value, which puts the header page in the WAL (SQLite skips row updates
// that leave the bytes the same, but not header writes).
func (db *DB) ProbeWrite(ctx context.Context) error {
	if err := probeFile(db.path+"-probe", probeSize); err != nil {
		db.health.note(err)
		return err
	}
	err := db.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var v int64
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			return fmt.Errorf("read user_version: %w", err)
		}
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
		return err
	})
	if err == nil {
		db.health.clear()
	}
	return err
}

// probeFile writes and syncs size bytes to path, and removes it.
func probeFile(path string, size int) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer func() {
		f.Close()
		if rerr := os.Remove(path); err == nil && rerr != nil {
			err = fmt.Errorf("probe: %w", rerr)
		}
	}()
	if _, err := f.Write(make([]byte, size)); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}
