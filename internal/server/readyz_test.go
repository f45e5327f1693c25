package server

import (
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
)

// smallDisk mounts a tmpfs of the given size on a fresh directory, or skips
// the test when this process may not mount (not root, or no CAP_SYS_ADMIN).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for a real full disk")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for a real full disk: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// readyz returns /readyz's status and decoded answer.
func readyz(t *testing.T, s *Server) (int, readyAnswer) {
	t.Helper()
	code, body := get(t, "http://"+s.Addr("http").String()+"/readyz")
	var a readyAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("readyz answer %q: %v", body, err)
	}
	return code, a
}

// TestReadyzWhileStoreWritesFail fills the real file system under the data
// directory: state uploads then fail (500, no crash), /readyz answers 503
// with the reason, and once space is freed /readyz's own probe write finds
// it and answers 200 again, with no other write needed; uploads work again.
func TestReadyzWhileStoreWritesFail(t *testing.T) {
	disk := smallDisk(t, "8m")
	s := startServer(t, testConfig(t, filepath.Join(disk, "data")))
	if code, a := readyz(t, s); code != 200 || a.Status != "ready" {
		t.Fatalf("readyz at start: %d %+v", code, a)
	}
	admin := adminToken(t, s)
	var th onboardResult
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/onboardings", admin, ctVTID, onboardingBody("disk-thing", "pw"), &th); st != 200 {
		t.Fatalf("onboarding: %d", st)
	}
	upload := func(i int) int {
		body := fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat("x", 32<<10))
		return rest(t, s, "PUT", "/thing-if/apps/"+testAppID+"/targets/thing:"+th.ThingID+"/states", th.AccessToken, "application/json", body, nil)
	}

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	// The WAL may have room left from earlier writes: upload until the
	// file system refuses one (the state history grows with each).
	failed := false
	for i := 0; i < 2000 && !failed; i++ {
		switch st := upload(i); st {
		case 204:
		case 500:
			failed = true
		default:
			t.Fatalf("upload on a full disk: status %d, want 204 or 500", st)
		}
	}
	if !failed {
		t.Fatal("no upload failed on a full disk")
	}
	code, a := readyz(t, s)
	if code != 503 || a.Status != "not ready" || a.Reason != "store writes failing: disk full" {
		t.Fatalf("readyz with writes failing: %d %+v, want 503 not ready, store writes failing: disk full", code, a)
	}
	// Still failing while the disk is full, probe or not.
	time.Sleep(probeEvery + 100*time.Millisecond)
	if code, a := readyz(t, s); code != 503 {
		t.Fatalf("readyz after a probe on a full disk: %d %+v", code, a)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * probeEvery)
	for {
		code, a = readyz(t, s)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with space again: %d %+v", code, a)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := upload(-1); st != 204 {
		t.Fatalf("upload with space again: %d", st)
	}
}
