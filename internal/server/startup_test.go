package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// listenerFields are the Config fields of every listener, by listener name.
var listenerFields = []struct {
	name  string
	field func(*Config) *string
}{
	{"onboard-tcp", func(c *Config) *string { return &c.OnboardTCP }},
	{"onboard-tls", func(c *Config) *string { return &c.OnboardTLS }},
	{"onboard-ws", func(c *Config) *string { return &c.OnboardWS }},
	{"onboard-wss", func(c *Config) *string { return &c.OnboardWSS }},
	{"mqtt-tcp", func(c *Config) *string { return &c.MQTTTCP }},
	{"mqtt-tls", func(c *Config) *string { return &c.MQTTTLS }},
	{"mqtt-ws", func(c *Config) *string { return &c.MQTTWS }},
	{"mqtt-wss", func(c *Config) *string { return &c.MQTTWSS }},
	{"http", func(c *Config) *string { return &c.HTTP }},
	{"https", func(c *Config) *string { return &c.HTTPS }},
	{"pprof", func(c *Config) *string { return &c.Pprof }},
}

// fixedPortConfig puts every listener on a fixed free loopback port, so that
// a second New on the same config needs the same ports the first one bound.
func fixedPortConfig(t *testing.T, dir string) Config {
	t.Helper()
	cfg := testConfig(t, dir)
	var lns []net.Listener
	for _, l := range listenerFields {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		*l.field(&cfg) = ln.Addr().String()
	}
	for _, ln := range lns {
		ln.Close()
	}
	return cfg
}

// tryNew runs New and turns a panic into an error, so that a test reports
// it instead of dying.
func tryNew(cfg Config) (s *Server, err error) {
	defer func() {
		if v := recover(); v != nil {
			s, err = nil, fmt.Errorf("New panicked: %v", v)
		}
	}()
	return New(context.Background(), cfg)
}

// closeServer closes s within 10 seconds.
func closeServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// startFailure is one way for New to fail: setup makes the cause (and
// returns the config), want is a prefix of the error, check (if set) tests
// the error further, and fix removes the cause.
type startFailure struct {
	name  string
	setup func(t *testing.T, cfg *Config) (want string, fix func())
	is    error // errors.Is target, if any
}

// readOnlyDir returns a directory the server cannot write: a read-only
// tmpfs as root (whom file modes do not stop), a 0500 directory otherwise,
// and the function that makes it writable again.
func readOnlyDir(t *testing.T) (string, func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		return dir, func() { os.Chmod(dir, 0o700) }
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=16m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("running as root and cannot mount a read-only tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir, func() {
		if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
			t.Fatalf("remount rw: %v: %s", err, out)
		}
	}
}

func startFailures() []startFailure {
	var cases []startFailure
	for _, l := range listenerFields {
		cases = append(cases, startFailure{
			name: l.name + " port in use",
			is:   syscall.EADDRINUSE,
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				addr := *l.field(cfg)
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				return l.name + " " + addr + ": address already in use", func() { ln.Close() }
			},
		})
	}
	cases = append(cases,
		startFailure{name: "data dir is a file", is: syscall.ENOTDIR,
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				if err := os.WriteFile(cfg.DataDir, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				return "data dir " + cfg.DataDir + ": not a directory", func() { os.Remove(cfg.DataDir) }
			}},
		startFailure{name: "data dir under a file", is: syscall.ENOTDIR,
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				parent := cfg.DataDir
				if err := os.WriteFile(parent, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.DataDir = filepath.Join(parent, "data")
				return "data dir " + cfg.DataDir + ": not a directory", func() { os.Remove(parent) }
			}},
		startFailure{name: "data dir not writable",
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				dir, fix := readOnlyDir(t)
				cfg.DataDir = dir
				reason := "read-only file system"
				if os.Geteuid() != 0 {
					reason = "permission denied"
				}
				return "data dir " + dir + ": " + reason, fix
			}},
		startFailure{name: "tls cert missing", is: os.ErrNotExist,
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				cert, key := writeTestCert(t)
				cfg.TLSCert, cfg.TLSKey = cert+".missing", key
				return "tls certificate " + cfg.TLSCert + ": no such file or directory", func() { os.Rename(cert, cfg.TLSCert) }
			}},
		startFailure{name: "tls key missing", is: os.ErrNotExist,
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				cert, key := writeTestCert(t)
				cfg.TLSCert, cfg.TLSKey = cert, key+".missing"
				return "tls key " + cfg.TLSKey + ": no such file or directory", func() { os.Rename(key, cfg.TLSKey) }
			}},
		startFailure{name: "tls cert not PEM",
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				cert, key := writeTestCert(t)
				good, err := os.ReadFile(cert)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(cert, []byte("not a certificate\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				cfg.TLSCert, cfg.TLSKey = cert, key
				return "tls certificate " + cert + " and key " + key + ": tls: failed to find any PEM data in certificate input",
					func() { os.WriteFile(cert, good, 0o600) }
			}},
		startFailure{name: "database not SQLite",
			setup: func(t *testing.T, cfg *Config) (string, func()) {
				if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
					t.Fatal(err)
				}
				db := filepath.Join(cfg.DataDir, "thingif.db")
				if err := os.WriteFile(db, []byte(strings.Repeat("this is not a database\n", 512)), 0o600); err != nil {
					t.Fatal(err)
				}
				return "store " + db + ": sqlite: journal mode: file is not a database", func() { os.Remove(db) }
			}},
	)
	return cases
}

// writeTestCert writes a self-signed certificate and key, as an operator's
// --tls-cert and --tls-key files.
func writeTestCert(t *testing.T) (cert, key string) {
	t.Helper()
	cert, key, err := selfSigned(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestStartFailures: every start-up failure is an error naming what failed,
// never a panic; the failed New leaves nothing behind (no goroutine, and
// every port and the data directory free: the next New on the same config
// works once the cause is gone).
func TestStartFailures(t *testing.T) {
	for _, c := range startFailures() {
		t.Run(c.name, func(t *testing.T) {
			cfg := fixedPortConfig(t, filepath.Join(t.TempDir(), "data"))
			want, fix := c.setup(t, &cfg)
			ignore := goleak.IgnoreCurrent()

			s, err := tryNew(cfg)
			if err == nil {
				closeServer(t, s)
				t.Fatalf("New succeeded, want %q", want)
			}
			if s != nil {
				t.Errorf("New returned a server with its error")
			}
			t.Logf("New: %v", err)
			if got := err.Error(); !strings.HasPrefix(got, want) || strings.Contains(got, "\n") {
				t.Errorf("New: %q, want one line starting %q", got, want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("New: %v is not %v", err, c.is)
			}
			goleak.VerifyNone(t, ignore)

			fix()
			s, err = tryNew(cfg)
			if err != nil {
				t.Fatalf("New after the cause is gone: %v", err)
			}
			if code, body := get(t, "http://"+s.Addr("http").String()+"/readyz"); code != 200 {
				t.Errorf("readyz after the cause is gone: %d %s", code, body)
			}
			closeServer(t, s)
		})
	}
}

// TestDataDirLock: a second server on one data directory refuses to start,
// naming the directory and the holder's PID, while the first keeps
// working; after Close a new one starts; a lock file left behind by a
// process that is gone does not block.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, testConfig(t, dir))

	_, err := tryNew(testConfig(t, dir))
	if err == nil {
		t.Fatal("second New on one data dir succeeded")
	}
	if got, want := err.Error(), fmt.Sprintf("data dir %s: in use by another thingif (pid %d)", dir, os.Getpid()); got != want {
		t.Errorf("second New: %q, want %q", got, want)
	}
	if !errors.Is(err, errDataDirInUse) {
		t.Errorf("second New: %v is not errDataDirInUse", err)
	}
	adminToken(t, first) // a write: the first still works

	closeServer(t, first)
	second, err := tryNew(testConfig(t, dir))
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	closeServer(t, second)

	// A killed holder's file: its PID, and no flock (the kernel dropped it).
	if err := os.WriteFile(filepath.Join(dir, lockFile), []byte("999999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := tryNew(testConfig(t, dir))
	if err != nil {
		t.Fatalf("New with a stale lock file: %v", err)
	}
	defer closeServer(t, third)
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), strconv.Itoa(os.Getpid()); got != want {
		t.Errorf("lock file holds %q, want this PID %s", got, want)
	}
}

// TestFileModes: after a start and some writes (so that the WAL and its
// index exist), every file in the data directory is 0600 and every
// directory 0700; a restart tightens files an older version or an operator
// left open to others.
func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(t, dir)
	cfg.Apps = nil // the development app, and so dev-app.json
	s := startServer(t, cfg)
	if s.DevApp == nil {
		t.Fatal("no development app")
	}
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+s.DevApp.ID, "client_secret="+s.DevApp.Key, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := call(t, anon, "p/anonymous/thing-if/apps/"+s.DevApp.ID+"/onboardings", "POST",
		map[string]string{"Content-Type": ctVTID}, onboardingBody("modes-thing", "pw"))
	if res.StatusCode != 200 {
		t.Fatalf("onboarding: %d %s", res.StatusCode, res.Body)
	}
	anon.Close()

	want := []string{".", "dev-app.json", "thingif.db", "thingif.db-shm", "thingif.db-wal", lockFile, "tls", "tls/cert.pem", "tls/key.pem"}
	checkModes := func(t *testing.T) {
		t.Helper()
		var seen []string
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			seen = append(seen, rel)
			wantMode := os.FileMode(0o600)
			if d.IsDir() {
				wantMode = 0o700
			}
			if got := fi.Mode().Perm(); got != wantMode {
				t.Errorf("%s: mode %v, want %v", rel, got, wantMode)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(seen, " "); got != strings.Join(want, " ") {
			t.Errorf("data dir holds %s, want %s", got, strings.Join(want, " "))
		}
	}
	checkModes(t)

	// Open everything up, with the server stopped but the WAL kept (a
	// copy of the running server's files, as a crash would leave them).
	closeServer(t, s)
	for _, f := range want[1:] {
		mode := os.FileMode(0o644)
		if f == "tls" {
			mode = 0o755
		}
		if err := os.Chmod(filepath.Join(dir, f), mode); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	s = startServer(t, cfg)
	body := fmt.Sprintf(`{"grant_type":"client_credentials","client_id":"%s","client_secret":"%s"}`, s.DevApp.ID, s.DevApp.Key)
	if st := rest(t, s, "POST", "/api/apps/"+s.DevApp.ID+"/oauth2/token", "", "application/json", body, nil); st != 200 {
		t.Fatalf("token: %d", st) // a write, for the WAL
	}
	checkModes(t)
}
