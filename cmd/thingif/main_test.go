package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loopbackArgs puts every listener on a free loopback port.
func loopbackArgs(dir string) []string {
	args := []string{"serve", "--data", dir, "--public-host", "127.0.0.1"}
	for _, f := range []string{"onboard-tcp", "onboard-tls", "onboard-ws", "onboard-wss", "mqtt-tcp", "mqtt-tls", "mqtt-ws", "mqtt-wss", "http", "https"} {
		args = append(args, "--"+f, "127.0.0.1:0")
	}
	return args
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "thingif ") {
		t.Fatalf("version printed %q", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"serve", "--app", "no-colon"}, {"serve", "--nope"}, {"serve", "extra"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// syncBuffer hands each write to a reader over a channel.
type syncBuffer struct {
	ch chan []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.ch <- append([]byte(nil), p...)
	return len(p), nil
}

// TestServeZeroConfigInProcess: serve starts every listener, logs one ready
// line with every bound address, creates and prints a development app,
// and returns nil when its context ends.
func TestServeZeroConfigInProcess(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{ch: make(chan []byte, 1024)}
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, loopbackArgs(dir)[1:], &out, logs) }()

	ready := waitReady(t, logs.ch)
	for _, name := range []string{"onboard-tcp", "onboard-tls", "onboard-ws", "onboard-wss", "mqtt-tcp", "mqtt-tls", "mqtt-ws", "mqtt-wss", "http", "https"} {
		if !regexp.MustCompile(name + `=127\.0\.0\.1:[1-9][0-9]*`).MatchString(ready) {
			t.Errorf("ready line lacks %s: %s", name, ready)
		}
	}
	stopServe(t, cancel, done)
	if !strings.Contains(out.String(), "APP_ID=") || !strings.Contains(out.String(), "mosquitto_rr") {
		t.Fatalf("no development app printed:\n%s", out.String())
	}
	for _, f := range []string{"thingif.db", "tls/cert.pem", "tls/key.pem", "dev-app.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls/key.pem")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v, want 0600", fi.Mode().Perm())
	}
}

// scanLines sends each line read from r, with its newline, until r ends.
func scanLines(r io.Reader) <-chan []byte {
	ch := make(chan []byte, 1024)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- append(sc.Bytes(), '\n')
		}
		close(ch)
	}()
	return ch
}

// stopServe cancels a serve running in a goroutine and waits for it to
// return nil on done.
func stopServe(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func waitReady(t *testing.T, ch <-chan []byte) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var seen strings.Builder
	for {
		select {
		case b := <-ch:
			seen.Write(b)
			for _, line := range strings.Split(seen.String(), "\n") {
				if strings.Contains(line, "ready") {
					return line
				}
			}
		case <-timeout:
			t.Fatalf("no ready line; logs:\n%s", seen.String())
		}
	}
}

// TestServeSignals: the real binary stops cleanly (exit 0) on SIGTERM and
// on SIGINT.
func TestServeSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, loopbackArgs(t.TempDir())...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			ch := scanLines(stderr)
			waitReady(t, ch)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			go func() {
				for range ch {
				}
			}()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after %v: %v", sig, err)
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("no exit after %v", sig)
			}
		})
	}
}

// buildBinary builds thingif into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "thingif")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// withFlag returns args with the value of --name replaced.
func withFlag(args []string, name, value string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == "--"+name && i+1 < len(out) {
			out[i+1] = value
			return out
		}
	}
	return append(out, "--"+name, value)
}

// TestServeStartFailure: the real binary, failing to start, prints one line
// on stderr naming what failed (no panic, no goroutine dump) and exits
// non-zero.
func TestServeStartFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")

	// A server that holds its data directory, for the second to find.
	lockedDir := t.TempDir()
	first := exec.Command(bin, loopbackArgs(lockedDir)...)
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		first.Process.Signal(syscall.SIGTERM)
		first.Wait()
	}()
	ch := scanLines(stderr)
	waitReady(t, ch)
	go func() {
		for range ch {
		}
	}()

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"port in use", withFlag(loopbackArgs(t.TempDir()), "onboard-tcp", held.Addr().String()),
			"thingif: onboard-tcp " + held.Addr().String() + ": address already in use"},
		{"https port in use", withFlag(loopbackArgs(t.TempDir()), "https", held.Addr().String()),
			"thingif: https " + held.Addr().String() + ": address already in use"},
		{"data dir in use", loopbackArgs(lockedDir),
			fmt.Sprintf("thingif: data dir %s: in use by another thingif (pid %d)", lockedDir, first.Process.Pid)},
		{"missing certificate", withFlag(withFlag(loopbackArgs(t.TempDir()), "tls-cert", missing), "tls-key", missing),
			"thingif: tls certificate " + missing + ": no such file or directory"},
		// The password never shows, whatever fails.
		{"postgres unreachable", withFlag(loopbackArgs(t.TempDir()), "store", "postgres://u:s3cret@"+held.Addr().String()+"/db?sslmode=disable&connect_timeout=3"),
			"thingif: store: postgres: failed to connect to `user=u database=db`: " + held.Addr().String() + " (127.0.0.1): "},
		{"postgres bad URL", withFlag(loopbackArgs(t.TempDir()), "store", "postgres://u:s3cret@[::1/db"),
			"thingif: store: postgres: cannot parse `postgres://u:xxxxx@[::1/db`: failed to parse as URL "},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			cmd := exec.Command(bin, c.args...)
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("exit: %v, want a non-zero exit status", err)
			}
			got := errOut.String()
			if strings.HasSuffix(c.want, " ") { // a prefix: the rest is the OS's
				if !strings.HasPrefix(got, c.want) || strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
					t.Errorf("stderr %q, want one line starting %q", got, c.want)
				}
			} else if want := c.want + "\n"; got != want {
				t.Errorf("stderr %q, want %q", got, want)
			}
			if strings.Contains(got, "s3cret") {
				t.Errorf("stderr %q shows the password", got)
			}
			if s := errOut.String() + out.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
				t.Errorf("a panic:\n%s", s)
			}
		})
	}
}
