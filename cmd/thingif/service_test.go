package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceUnit: deploy/thingif.service passes `systemd-analyze verify`
// (unknown or misspelt settings, bad values, a missing binary), with
// ExecStart pointed at a freshly built binary.
func TestServiceUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("THINGIF_INTEGRATION") == "1" {
			t.Fatal("systemd-analyze not found (Debian package systemd; .ci/run installs it)")
		}
		t.Skip("systemd-analyze not found; install systemd to run this test")
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "thingif.service"))
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/bin/thingif"
	if !strings.Contains(string(unit), "ExecStart="+installed+" serve ") {
		t.Fatalf("ExecStart does not run %s serve", installed)
	}
	bin := buildBinary(t)
	path := filepath.Join(t.TempDir(), "thingif.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), installed, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
