package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// integrityCheck runs PRAGMA integrity_check on the database file at path.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check %s: %v", path, err)
	}
	if got, want := res, "ok"; got != want {
		t.Fatalf("integrity_check %s = %q, want %q", path, got, want)
	}
}

// TestBackupUnderWrites: a backup taken while writers commit holds every
// write acknowledged before Backup was called, passes integrity_check, and
// leaves no temporary file behind.
func TestBackupUnderWrites(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, filepath.Join(dir, "thingif.db"))
	defer db.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("app-%d-%d", w, i)
				if err := db.PutApp(ctx, store.App{ID: id, KeyHash: "h"}); err != nil {
					return // ctx ended
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	// Let the writers get going, then back up in the middle of them.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	dst := filepath.Join(t.TempDir(), "copy.db")
	size, err := Backup(t.Context(), filepath.Join(dir, "thingif.db"), dst, BackupOptions{})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	cancel()
	wg.Wait()

	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := size, fi.Size(); got != want {
		t.Errorf("Backup returned size %d, file has %d", got, want)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(fileMode); got != want {
		t.Errorf("copy mode %v, want %v", got, want)
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	integrityCheck(t, dst)

	cp := openTest(t, dst)
	defer cp.Close()
	for _, id := range before {
		if _, err := cp.App(t.Context(), id); err != nil {
			t.Fatalf("app %s, acknowledged before the backup, not in the copy: %v", id, err)
		}
	}
	t.Logf("%d writes acknowledged before the backup, all in the copy", len(before))
}

// TestBackupRefuses: Backup never overwrites without Overwrite, never
// creates a missing database, and names what is wrong.
func TestBackupRefuses(t *testing.T) {
	live := filepath.Join(t.TempDir(), "thingif.db")
	db := openTest(t, live)
	defer db.Close()

	for _, tt := range []struct {
		name    string
		setup   func(t *testing.T, dst string) string // returns the database path
		wantErr error
	}{
		{"destination exists", func(t *testing.T, dst string) string {
			must(t, os.WriteFile(dst, []byte("precious"), 0o600))
			return live
		}, ErrBackupExists},
		{"temporary file exists", func(t *testing.T, dst string) string {
			must(t, os.WriteFile(dst+".tmp", []byte("precious"), 0o600))
			return live
		}, ErrBackupExists},
		{"missing data dir", func(t *testing.T, dst string) string {
			return filepath.Join(t.TempDir(), "nope", "thingif.db")
		}, fs.ErrNotExist},
		{"missing database", func(t *testing.T, dst string) string {
			return filepath.Join(t.TempDir(), "thingif.db")
		}, fs.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "copy.db")
			src := tt.setup(t, dst)
			before := snapshotFiles(t, filepath.Dir(dst))
			_, err := Backup(t.Context(), src, dst, BackupOptions{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Backup: %v, want an error wrapping %v", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if got, want := snapshotFiles(t, filepath.Dir(dst)), before; got != want {
				t.Errorf("destination dir changed: %s, was %s", got, want)
			}
			if src != live {
				if _, err := os.Stat(src); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("missing database created: %v", err)
				}
			}
		})
	}
	t.Run("not a regular file", func(t *testing.T) {
		if _, err := Backup(t.Context(), t.TempDir(), filepath.Join(t.TempDir(), "copy.db"), BackupOptions{}); err == nil {
			t.Fatal("Backup of a directory succeeded")
		}
	})
}

// snapshotFiles lists dir's files and their contents, to compare.
func snapshotFiles(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		s += fmt.Sprintf("%s(%x) ", e.Name(), sha256.Sum256(b))
	}
	return s
}

// TestBackupOverwrite: with Overwrite, an existing destination and a
// temporary file left by an interrupted backup are replaced by a good copy.
func TestBackupOverwrite(t *testing.T) {
	live := filepath.Join(t.TempDir(), "thingif.db")
	db := openTest(t, live)
	defer db.Close()
	must(t, db.PutApp(t.Context(), store.App{ID: "app1", KeyHash: "h"}))

	dst := filepath.Join(t.TempDir(), "copy.db")
	must(t, os.WriteFile(dst, []byte("old"), 0o644))
	must(t, os.WriteFile(dst+".tmp", []byte("interrupted"), 0o644))
	if _, err := Backup(t.Context(), live, dst, BackupOptions{Overwrite: true}); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(fileMode); got != want {
		t.Errorf("copy mode %v, want %v", got, want)
	}
	integrityCheck(t, dst)
	cp := openTest(t, dst)
	defer cp.Close()
	if _, err := cp.App(t.Context(), "app1"); err != nil {
		t.Fatalf("app1 not in the copy: %v", err)
	}
}

// TestBackupStoppedDatabase: a database whose server has stopped (no -wal
// or -shm file left) backs up too.
func TestBackupStoppedDatabase(t *testing.T) {
	live := filepath.Join(t.TempDir(), "thingif.db")
	db := openTest(t, live)
	must(t, db.PutApp(t.Context(), store.App{ID: "app1", KeyHash: "h"}))
	must(t, db.Close())
	before, err := os.ReadFile(live)
	must(t, err)

	dst := filepath.Join(t.TempDir(), "copy.db")
	if _, err := Backup(t.Context(), live, dst, BackupOptions{}); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	// The database is untouched. A read-only SQLite connection to a WAL
	// database with no -wal and -shm files creates them (empty, with the
	// database's mode) and cannot remove them; nothing else may appear.
	if after, err := os.ReadFile(live); err != nil || !bytes.Equal(after, before) {
		t.Errorf("database changed by the backup (%v)", err)
	}
	ents, err := os.ReadDir(filepath.Dir(live))
	must(t, err)
	for _, e := range ents {
		switch e.Name() {
		case "thingif.db", "thingif.db-wal", "thingif.db-shm":
		default:
			t.Errorf("backup left %s in the data dir", e.Name())
		}
		fi, err := e.Info()
		must(t, err)
		if got, want := fi.Mode().Perm(), fs.FileMode(fileMode); got != want {
			t.Errorf("%s: mode %v, want %v", e.Name(), got, want)
		}
	}
	integrityCheck(t, dst)
	cp := openTest(t, dst)
	defer cp.Close()
	if _, err := cp.App(t.Context(), "app1"); err != nil {
		t.Fatalf("app1 not in the copy: %v", err)
	}
}
