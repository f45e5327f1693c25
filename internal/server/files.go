package server

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// Modes of what the server keeps in the data directory (docs/security.md,
// "Files"): the database, its -wal and -shm, the lock, the generated TLS
// key and certificate and dev-app.json are 0600; the directories it makes
// are 0700. The database files are the sqlite package's (sqlite.Config.Path).
const (
	privateFile = 0o600
	privateDir  = 0o700
)

// tightenFiles sets the files the server generated in dataDir (and the tls
// directory) to the private modes if an earlier version or an operator left
// them open to group or others, logging a warning for each. Files given by
// flags (--tls-cert, --tls-key) are the operator's and are left alone.
func tightenFiles(dataDir string, log *slog.Logger) error {
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{
		{filepath.Join(dataDir, "tls"), privateDir},
		{filepath.Join(dataDir, "tls", "key.pem"), privateFile},
		{filepath.Join(dataDir, "tls", "cert.pem"), privateFile},
		{filepath.Join(dataDir, devAppFile), privateFile},
	} {
		fi, err := os.Stat(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data dir %s: %w", dataDir, err)
		}
		if fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return fmt.Errorf("data dir %s: %w", dataDir, err)
		}
		log.Warn("file was open to others; mode tightened", "file", f.path,
			"old_mode", fi.Mode().Perm().String(), "mode", f.mode.String())
	}
	return nil
}
