package sqlite

// Online backup.
//
// Backup copies a live database with VACUUM INTO on a connection of its own,
// opened read-only. VACUUM INTO runs as one read transaction: under WAL it
// reads one snapshot, the database as of the last commit before it began,
// while the server's writer goes on committing beside it (a WAL reader never
// blocks the writer nor is blocked by it). So every write the server
// acknowledged before Backup was called is in the copy, and no half of a
// later transaction is. The online backup API (sqlite3_backup_step) would do
// as well only when run in one step: stepped, it restarts whenever another
// connection writes, which under load may be for ever. VACUUM INTO also
// leaves the free pages out, and needs no second connection on the copy.
//
// What VACUUM INTO does not do is make the copy durable: SQLite neither
// fsyncs it nor guards it against a crash half way. So the copy is written
// to DST.tmp, fsynced, and only then given its name, and the directory is
// fsynced after: a DST that exists is a whole copy.
//
// The read transaction holds back the checkpoints of the WAL frames written
// while it runs (their pages may not overwrite the snapshot), so the WAL
// grows by what the server writes during the backup and shrinks at the next
// checkpoint after it.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
)

// ErrBackupExists is wrapped by the error of a Backup whose destination (or
// its temporary file) exists and BackupOptions.Overwrite is false.
var ErrBackupExists = errors.New("exists")

// BackupOptions configures Backup. The zero value refuses to overwrite.
type BackupOptions struct {
	// Overwrite replaces an existing destination, and removes a temporary
	// file left by an interrupted backup. If false, either one existing is
	// an error wrapping ErrBackupExists.
	Overwrite bool
}

// Backup writes a consistent copy of the database at dbPath to the file dst
// and returns the copy's size in bytes. It works beside a running server:
// it opens dbPath read-only, takes no lock the server waits for, and never
// creates dbPath. The copy has mode 0600, as the database has. See the
// comment at the top of backup.go for what "consistent" means here.
func Backup(ctx context.Context, dbPath, dst string, opt BackupOptions) (int64, error) {
	src, err := filepath.Abs(dbPath)
	if err != nil {
		return 0, fmt.Errorf("backup: database %s: %w", dbPath, err)
	}
	if fi, err := os.Stat(src); err != nil {
		return 0, fmt.Errorf("backup: database: %w", err)
	} else if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("backup: database %s: not a regular file", src)
	}
	// VACUUM INTO reads a name that starts with "file:" as a URI; an
	// absolute path never does.
	dst, err = filepath.Abs(dst)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	if !opt.Overwrite {
		if _, err := os.Lstat(dst); err == nil {
			return 0, fmt.Errorf("backup: %s: %w", dst, ErrBackupExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("backup: %w", err)
		}
	}
	tmp := dst + ".tmp"
	if err := createEmpty(tmp, opt.Overwrite); err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()

	if err := vacuumInto(ctx, src, tmp); err != nil {
		return 0, err
	}
	if err := syncFile(tmp); err != nil {
		return 0, err
	}
	if err := publish(tmp, dst, opt.Overwrite); err != nil {
		return 0, err
	}
	ok = true
	// The directory entry too, so that the name survives a power loss.
	if err := syncFile(filepath.Dir(dst)); err != nil {
		return 0, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return fi.Size(), nil
}

// createEmpty creates tmp empty with the database's mode: VACUUM INTO
// accepts an empty file as its target and keeps the file's mode, so the copy
// (password hashes, token digests) is never readable by others, whatever the
// umask. An existing tmp is another backup's, running or interrupted.
func createEmpty(tmp string, overwrite bool) error {
	if overwrite {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("backup: %w", err)
		}
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s (another backup running, or one interrupted): %w", tmp, ErrBackupExists)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// vacuumInto copies the database at src into the empty file tmp.
func vacuumInto(ctx context.Context, src, tmp string) error {
	// mode=ro: the backup neither writes the database nor creates it. The
	// busy timeout covers the moments a WAL reader may wait (the server
	// restarting its WAL, or recovering it after a crash).
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	u := url.URL{Scheme: "file", Path: src, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("backup: open %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return fmt.Errorf("backup: copy %s: %w", src, err)
	}
	return nil
}

// publish gives the finished copy its name. Without overwrite it links
// rather than renames, so that a destination made since the check in Backup
// is still never replaced; a file system without hard links falls back to a
// rename.
func publish(tmp, dst string, overwrite bool) error {
	if !overwrite {
		err := os.Link(tmp, dst)
		switch {
		case err == nil:
			if err := os.Remove(tmp); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			return nil
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("backup: %s: %w", dst, ErrBackupExists)
		case !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOTSUP) && !errors.Is(err, syscall.EXDEV):
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// syncFile flushes the file at path to stable storage.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", path, err)
	}
	return nil
}
