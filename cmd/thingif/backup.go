package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/thingif/thingif/internal/server"
	"github.com/thingif/thingif/internal/sqlite"
)

func init() {
	register(command{"backup", "copy the database of a running or stopped server to FILE", backup})
}

// backup is "thingif backup [--data DIR] [--force] FILE": an online copy of
// DIR/thingif.db (docs/operations.md, "Backup and restore"). It takes no
// lock of the data directory, so that it runs beside the server that holds
// it.
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("backup", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("data", server.DefaultDataDir, "data `directory` of the server")
	force := fl.Bool("force", false, "overwrite FILE if it exists")
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `Usage: thingif backup [--data DIR] [--force] FILE

Writes a consistent copy of DIR/thingif.db to FILE while the server runs (or
when it is stopped): every write the server acknowledged before the backup
started is in the copy. FILE is written as FILE.tmp, synced, then renamed.
Restore: stop the server, replace DIR/thingif.db with the copy, remove
DIR/thingif.db-wal and DIR/thingif.db-shm, start it (docs/operations.md).
For PostgreSQL, use pg_dump instead.

Flags:
`)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return usageErr(err)
	}
	if fl.NArg() != 1 {
		return usageErr(fmt.Errorf("backup: want one FILE, got %d argument(s)", fl.NArg()))
	}
	dst := fl.Arg(0)

	// Say which of the two is missing, the directory or its database,
	// before SQLite says "no such file".
	if fi, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("backup: data dir %s: %w", *dir, pathError(err))
	} else if !fi.IsDir() {
		return fmt.Errorf("backup: data dir %s: not a directory", *dir)
	}
	db := filepath.Join(*dir, "thingif.db")
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: data dir %s has no thingif.db: %w", *dir, err)
	}

	start := time.Now()
	size, err := sqlite.Backup(ctx, db, dst, sqlite.BackupOptions{Overwrite: *force})
	if errors.Is(err, sqlite.ErrBackupExists) {
		return fmt.Errorf("%w (--force overwrites)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup: %s: %d bytes in %v\n", dst, size, time.Since(start).Round(time.Millisecond))
	return nil
}

// pathError is the reason of a path error without its repeated path.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
