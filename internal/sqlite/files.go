package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// fileMode is the mode of the database file and so of its -wal and -shm
// files: SQLite creates those with the main file's permissions. The
// database holds password hashes and token digests; nobody but the server's
// user needs to read it.
const fileMode = 0o600

// prepareFiles creates the database file with fileMode if it is missing,
// so that SQLite (which would create it 0644, less the umask) never makes it
// readable by others, and tightens an existing database, -wal or -shm file
// whose mode lets group or others in, logging a warning for each.
func prepareFiles(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	switch {
	case err == nil:
		// An empty file is an empty database to SQLite.
		if err := f.Close(); err != nil {
			return fmt.Errorf("sqlite: create %s: %w", path, err)
		}
		return nil
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, fileMode); err != nil {
			return fmt.Errorf("sqlite: tighten mode: %w", err)
		}
		log.Warn("database file was readable by others; mode tightened",
			"file", p, "old_mode", fi.Mode().Perm().String(), "mode", fs.FileMode(fileMode).String())
	}
	return nil
}
