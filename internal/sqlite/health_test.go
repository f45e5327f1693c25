package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/store"
)

// TestWriteErrIgnoresRefusals: writes the store refuses (a conflict, a
// missing row, a cancelled caller) say nothing about the disk.
func TestWriteErrIgnoresRefusals(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "thingif.db"))
	defer db.Close()
	seedThing(t, db)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, c := range []struct {
		name  string
		write func() error
	}{
		{"conflict", func() error {
			return db.PutInstallation(t.Context(), store.Installation{ID: "in2", AppID: "app1", ThingID: "th.1", MQTTTopic: "t", Username: "u2"})
		}},
		{"not found", func() error {
			return db.UpdateThing(t.Context(), store.Thing{ID: "th.none", AppID: "app1"})
		}},
		{"cancelled", func() error { return db.PutApp(cancelled, store.App{ID: "app2", KeyHash: "h"}) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.write(); err == nil {
				t.Fatal("write succeeded")
			}
			if err := db.WriteErr(); err != nil {
				t.Errorf("WriteErr() = %v, want nil", err)
			}
		})
	}
}

// TestWriteErrOnFullDisk fills a real (tmpfs) file system under the
// database: the failing write marks the store, a small write that still
// commits does not clear the mark, a probe on the full disk fails and keeps
// it, and a probe after space is freed clears it.
func TestWriteErrOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a real full disk")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for a real full disk: %v: %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	db := openTest(t, filepath.Join(dir, "thingif.db"))
	defer db.Close()
	seedThing(t, db)

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 64<<10); err == nil; {
		_, err = f.Write(chunk)
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fill: %v", err)
	}
	pad := strings.Repeat("x", 32<<10)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = db.WriteStates(t.Context(), store.StateWrite{ThingID: "th.1", Mode: store.StateReplace, At: time.Now(),
			Aliases: map[string]json.RawMessage{store.V1Alias: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))}})
	}
	if werr == nil {
		t.Fatal("no write failed on a full disk")
	}
	var ioErr *IOError
	if err := db.WriteErr(); !errors.As(err, &ioErr) || ioErr.Kind != "disk full" {
		t.Fatalf("WriteErr() = %v after %v, want an IOError of kind disk full", err, werr)
	}
	if err := db.ProbeWrite(t.Context()); err == nil {
		t.Fatal("ProbeWrite succeeded on a full disk")
	}
	if db.WriteErr() == nil {
		t.Fatal("a failed probe cleared the mark")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	must(t, db.PutApp(t.Context(), store.App{ID: "app-small", KeyHash: "h"}))
	if db.WriteErr() == nil {
		t.Fatal("an ordinary write cleared the mark; only a probe may")
	}
	if err := db.ProbeWrite(t.Context()); err != nil {
		t.Fatalf("ProbeWrite with space again: %v", err)
	}
	if err := db.WriteErr(); err != nil {
		t.Fatalf("WriteErr() = %v after a successful probe", err)
	}
	if _, err := os.Stat(db.path + "-probe"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe file left behind: %v", err)
	}
}
