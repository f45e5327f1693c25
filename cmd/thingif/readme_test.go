package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

// walkthroughMarker precedes each README shell block that the walk-through
// runs.
const walkthroughMarker = "<!-- walkthrough -->"

// readmeWalkthrough returns the README's marked shell blocks, in order,
// each without the indentation of the list item it sits in.
func readmeWalkthrough(readme []byte) ([]string, error) {
	var blocks []string
	sc := bufio.NewScanner(bytes.NewReader(readme))
	marked, in := false, false
	var cur []string
	indent := ""
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case in && trimmed == "```":
			blocks = append(blocks, strings.Join(cur, "\n"))
			in, cur = false, nil
		case in:
			cur = append(cur, strings.TrimPrefix(line, indent))
		case marked && trimmed == "```sh":
			in, marked = true, false
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
		case marked:
			return nil, errors.New("a walkthrough marker not followed by a ```sh block: " + line)
		case trimmed == walkthroughMarker:
			marked = true
		}
	}
	if in || marked {
		return nil, errors.New("the README ends inside a walkthrough block")
	}
	return blocks, sc.Err()
}

// TestReadmeWalkthrough runs the README's walk-through as written: its
// marked shell blocks, in order, in one bash, against this binary's
// `serve` on its default ports and data directory, with APP_ID and
// APP_KEY as serve printed them.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and binds the default ports")
	}
	integration := os.Getenv("THINGIF_INTEGRATION") == "1"
	for _, tool := range []string{"bash", "mosquitto_rr", "mosquitto_sub", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if integration {
				t.Fatalf("%s not installed (THINGIF_INTEGRATION=1)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	for _, addr := range []string{":1883", ":8883", ":12470", ":12473", ":1884", ":8884", ":12471", ":12474", ":8080", ":8443"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if integration {
				t.Fatalf("the README's server needs its default port %s: %v", addr, err)
			}
			t.Skipf("default port %s busy: %v", addr, err)
		}
		l.Close()
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeWalkthrough(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 4 {
		t.Fatalf("%d walkthrough blocks in the README, want the flow's 4 at least", len(blocks))
	}

	bin := buildBinary(t)
	dir := t.TempDir()
	srv := exec.Command(bin, "serve") // the README's first command, from a fresh directory
	srv.Dir = dir
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	})
	printed := scanLines(stdout)
	waitReady(t, scanLines(stderr))
	appID, appKey := "", ""
	deadline := time.After(10 * time.Second)
	for appID == "" || appKey == "" {
		select {
		case b, ok := <-printed:
			if !ok {
				t.Fatal("serve's output ended before APP_ID and APP_KEY")
			}
			line := strings.TrimSpace(string(b))
			if v, ok := strings.CutPrefix(line, "APP_ID="); ok {
				appID = v
			}
			if v, ok := strings.CutPrefix(line, "APP_KEY="); ok {
				appKey = v
			}
		case <-deadline:
			t.Fatal("serve printed no APP_ID and APP_KEY")
		}
	}
	go func() {
		for range printed {
		}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	script := "set -euo pipefail\n" + strings.Join(blocks, "\n")
	sh := exec.CommandContext(ctx, "bash", "-c", script)
	sh.Dir = dir
	sh.Env = append(os.Environ(), "APP_ID="+appID, "APP_KEY="+appKey,
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Its own process group, so that what it started in the background
	// (mosquitto_sub, the simulator) ends with the test whatever happens.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	sh.WaitDelay = 5 * time.Second // a background child holding the output ends the wait too
	var buf bytes.Buffer
	sh.Stdout, sh.Stderr = &buf, &buf
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) })
	err = sh.Wait()
	out := buf.Bytes()
	if err != nil {
		t.Fatalf("the walk-through failed: %v\nscript:\n%s\noutput:\n%s", err, script, out)
	}
	t.Logf("the walk-through's output:\n%s", out)

	// The onboarding answered 200; the command was accepted, and the
	// thing's mosquitto_sub printed its push.
	if !bytes.HasPrefix(out, []byte("200\r\n")) {
		t.Errorf("the onboarding answer does not start with 200:\n%s", out)
	}
	ids := regexp.MustCompile(`"commandID":"([^"]+)"`).FindAllSubmatch(out, -1)
	if len(ids) != 2 || !bytes.Equal(ids[0][1], ids[1][1]) {
		t.Fatalf("want the command's ID twice (REST answer, push), got %q in:\n%s", ids, out)
	}
	if !bytes.Contains(out, []byte(`"turnPower"`)) {
		t.Errorf("the push printed lacks the command's actions:\n%s", out)
	}
	// The app's part: the simulator's state reached the history, and
	// the trigger and the user went through their lifecycles.
	for _, want := range []string{"MEAN(currentTemperature) = 31", " enabled\n", " deleted\nuser u."} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the walk-through's output lacks %q", want)
		}
	}
}
