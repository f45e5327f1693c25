package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

// leaves walks the command tree and returns every command path ("thing
// run") with its node.
func walk(n *node, path string, visit func(path string, n *node)) {
	visit(path, n)
	for _, s := range n.subs {
		walk(s, strings.TrimSpace(path+" "+s.name), visit)
	}
}

// flagNames returns the flags of a leaf, from its flag set.
func flagNames(n *node) []string {
	fs := newFlagSet("x", stdio{})
	n.flags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// cliResult is what one command line did.
type cliResult struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runIO(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	code := exitCode(err, &errOut)
	return cliResult{out.String(), errOut.String(), code}
}

// TestHelpEverywhere: every command and group answers -h and --help on
// stdout with exit 0, lists each of its flags, and never shows the value
// of an environment variable it reads.
func TestHelpEverywhere(t *testing.T) {
	const secretValue = "s3cret-app-key-value"
	for _, env := range []string{"THINGIF_APP_KEY", "THINGIF_TOKEN", "THINGIF_APP_ID", "THINGIF_SERVER", "THINGIF_ONBOARD"} {
		t.Setenv(env, secretValue)
	}
	n := 0
	walk(root, "", func(path string, nd *node) {
		if nd.hidden {
			return
		}
		for _, h := range []string{"-h", "--help"} {
			args := append(strings.Fields(path), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				r := runCLI(t, "", args...)
				if got, want := r.code, exitOK; got != want {
					t.Fatalf("exit %d, want %d; stderr %q", got, want, r.stderr)
				}
				if r.stdout == "" || r.stderr != "" {
					t.Fatalf("stdout %q, stderr %q: want help on stdout only", r.stdout, r.stderr)
				}
				if strings.Contains(r.stdout, secretValue) {
					t.Fatalf("help shows an environment value:\n%s", r.stdout)
				}
				switch {
				case nd.flags != nil:
					for _, f := range flagNames(nd) {
						if !strings.Contains(r.stdout, "  -"+f+" ") && !strings.Contains(r.stdout, "  -"+f+"\n") {
							t.Errorf("help lacks -%s:\n%s", f, r.stdout)
						}
					}
				case nd.subs != nil:
					for _, s := range nd.subs {
						if !s.hidden && !strings.Contains(r.stdout, "  "+s.name+" ") {
							t.Errorf("help lacks command %s:\n%s", s.name, r.stdout)
						}
					}
				}
			})
			n++
		}
	})
	if n < 2*20 {
		t.Fatalf("only %d help pages: is the tree complete?", n)
	}
}

// TestUsageErrorsExit2: a mistake in the command line exits 2 with one
// line naming it and a pointer to the command's -h, on stderr only.
func TestUsageErrorsExit2(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("THINGIF_APP_ID", "")
	t.Setenv("THINGIF_APP_KEY", "")
	t.Setenv("THINGIF_TOKEN", "")
	for _, tt := range []struct {
		name string
		args []string
		want string // the first line, after "thingif: "
		hint string
	}{
		{"no command", nil, "missing command: one of app, backup, bench,", "thingif"},
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`, "thingif"},
		{"group without command", []string{"thing"}, "thing: missing command: one of get, list, onboard, run", "thingif thing"},
		{"unknown subcommand", []string{"trigger", "frobnicate"}, `trigger: unknown command "frobnicate"`, "thingif trigger"},
		{"unknown flag", []string{"command", "list", "--nope"}, "flag provided but not defined: -nope", "thingif command list"},
		{"bad flag value", []string{"command", "list", "--limit", "x"}, `invalid value "x" for flag -limit`, "thingif command list"},
		{"missing argument", []string{"trigger", "delete", "--thing", "th.1"}, "trigger delete: want TRIGGER_ID, got 0 argument(s)", "thingif trigger delete"},
		{"extra argument", []string{"thing", "list", "extra"}, `thing list: unexpected argument "extra"`, "thingif thing list"},
		{"missing flag", []string{"command", "send", "--app", "a", "--key", "k"}, "--thing and --actions are required", "thingif command send"},
		{"no app", []string{"thing", "list"}, "--app (or THINGIF_APP_ID) is required", "thingif thing list"},
		{"key and key file", []string{"user", "list", "--app", "a", "--key", "k", "--key-file", keyFile}, "user list: --key and --key-file are exclusive", "thingif user list"},
		{"password and stdin", []string{"user", "create", "--name", "n", "--password", "p", "--password-stdin"}, "user create: --password and --password-stdin are exclusive", "thingif user create"},
		{"unknown scenario", []string{"bench", "nope"}, `unknown scenario "nope"`, "thingif bench"},
		{"unknown command node", []string{"bench", "push", "--command-node", "any"}, `unknown --command-node "any": want other or same`, "thingif bench"},
		{"thing without app", []string{"thing", "onboard", "--vendor-thing-id", "v", "--password", "p"}, "--app ID:KEY, or --app ID with --key", "thingif thing onboard"},
		{"completion shell", []string{"completion", "tcsh"}, `completion: unknown shell "tcsh"`, "thingif completion"},
		{"serve unknown flag", []string{"serve", "--nope"}, "flag provided but not defined: -nope", "thingif serve"},
		{"serve extra argument", []string{"serve", "extra"}, `serve: unexpected argument "extra"`, "thingif serve"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if got, want := r.code, exitUsage; got != want {
				t.Fatalf("exit %d, want %d; stderr %q", got, want, r.stderr)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "thingif: ") || strings.HasPrefix(lines[0], "thingif: thingif") || !strings.Contains(lines[0], strings.TrimPrefix(tt.want, "thingif: ")) {
				t.Fatalf("stderr %q, want one line with %q and a hint", r.stderr, tt.want)
			}
			if got, want := lines[1], "Run '"+tt.hint+" -h' for usage."; got != want {
				t.Errorf("hint %q, want %q", got, want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestRuntimeErrorExit1: a failure that is not a usage mistake exits 1
// with one line.
func TestRuntimeErrorExit1(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"server down", []string{"thing", "list", "--server", "http://127.0.0.1:1", "--app", "a", "--key", "k"}, "connection refused"},
		{"missing key file", []string{"thing", "list", "--app", "a", "--key-file", "/nonexistent/key"}, "--key-file: open /nonexistent/key"},
		{"empty stdin", []string{"user", "create", "--app", "a", "--key", "k", "--name", "n", "--password-stdin"}, "--password-stdin: read stdin: EOF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			if got, want := r.code, exitFailure; got != want {
				t.Fatalf("exit %d, want %d; stderr %q", got, want, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("stderr %q, want one line with %q", r.stderr, tt.want)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	if got := versionString("dev", readBuildInfo()); !regexp.MustCompile(`^thingif \S+ \(.*go1\.`).MatchString(got) {
		t.Errorf("versionString = %q", got)
	}
	r := runCLI(t, "", "--version")
	if got, want := r.code, exitOK; got != want || !strings.HasPrefix(r.stdout, "thingif ") {
		t.Errorf("--version: exit %d, stdout %q", r.code, r.stdout)
	}
}

// cliServer starts a server with app cliapp on loopback and points the
// THINGIF_* variables at it.
func cliServer(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.Config{
		DataDir: t.TempDir(), Apps: []server.AppCredential{{ID: "cliapp", Key: "cli-key"}}, PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", MQTTTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Close(ctx)
	})
	t.Setenv("THINGIF_SERVER", fmt.Sprintf("http://127.0.0.1:%d", srv.Port("http")))
	t.Setenv("THINGIF_ONBOARD", fmt.Sprintf("tcp://127.0.0.1:%d", srv.Port("onboard-tcp")))
	t.Setenv("THINGIF_APP_ID", "cliapp")
	t.Setenv("THINGIF_APP_KEY", "")
	t.Setenv("THINGIF_TOKEN", "")
	return srv
}

// TestEverydayCommands: thing list|get, user list|delete against a real
// server, with the app key from a file and passwords from stdin.
func TestEverydayCommands(t *testing.T) {
	cliServer(t)
	keyFile := filepath.Join(t.TempDir(), "app.key")
	if err := os.WriteFile(keyFile, []byte("cli-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(stdin, want string, args ...string) string {
		t.Helper()
		r := runCLI(t, stdin, args...)
		if r.code != exitOK {
			t.Fatalf("thingif %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Fatalf("thingif %s printed %q, want match for %q", strings.Join(args, " "), r.stdout, want)
		}
		return r.stdout
	}
	k := []string{"--key-file", keyFile}

	// Without the key the server is not asked.
	if r := runCLI(t, "", "thing", "list"); r.code != exitUsage {
		t.Fatalf("thing list without a key: exit %d %s", r.code, r.stderr)
	}

	// Two things onboard with passwords from stdin (onboard is over MQTT).
	for _, v := range []string{"lamp-1", "lamp-2"} {
		must("pw-"+v+"\n", `"mqttTopic"`, append([]string{"thing", "onboard", "--vendor-thing-id", v, "--password-stdin", "--thing-type", "lamp"}, k...)...)
	}
	out := must("", `(?m)^THING ID +VENDOR THING ID +TYPE +FIRMWARE +CREATED\nth\.\S+ +lamp-1 +lamp +- +20\d\d-.*\nth\.\S+ +lamp-2 +lamp`, append([]string{"thing", "list"}, k...)...)
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	r := runCLI(t, "", append([]string{"thing", "list", "--limit", "1"}, k...)...)
	if r.code != exitOK || strings.Count(r.stdout, "\n") != 2 || !strings.HasPrefix(r.stderr, "more: --page ") {
		t.Fatalf("thing list --limit 1: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	page := strings.TrimSpace(strings.TrimPrefix(r.stderr, "more: --page "))
	must("", `lamp-2`, append([]string{"thing", "list", "--limit", "1", "--page", page}, k...)...)
	out = must("", `lamp-2`, append([]string{"thing", "list", "--search", "LAMP-2"}, k...)...)
	if strings.Contains(out, "lamp-1") {
		t.Fatalf("thing list --search LAMP-2 lists lamp-1:\n%s", out)
	}
	must("", `(?m)^thing +`+regexp.QuoteMeta(id)+`\nvendor ID +lamp-1\ntype +lamp\n`, append([]string{"thing", "get", id}, k...)...)
	// Flags after the argument, and a vendorThingID.
	must("", `"vendorThingID": "lamp-2"`, append([]string{"thing", "get", "VENDOR_THING_ID:lamp-2", "--json"}, k...)...)
	r = runCLI(t, "", append([]string{"thing", "get", "th.nope"}, k...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "THING_NOT_FOUND") {
		t.Fatalf("thing get th.nope: exit %d %q", r.code, r.stderr)
	}

	// Users: created with the password on stdin, listed, deleted.
	must("pw-alice\n", `^user alice created: u\.\w+\n$`, append([]string{"user", "create", "--name", "alice", "--password-stdin"}, k...)...)
	must("", `created`, append([]string{"user", "create", "--name", "bob", "--password", "pw-bob"}, k...)...)
	out = must("", `(?m)^USER ID +LOGIN NAME +CREATED\nu\.\S+ +alice +.*\nu\.\S+ +bob `, append([]string{"user", "list"}, k...)...)
	alice := strings.Fields(strings.Split(out, "\n")[1])[0]
	var listed struct{ Users []struct{ UserID string } }
	if err := json.Unmarshal([]byte(must("", `"users"`, append([]string{"user", "list", "--json"}, k...)...)), &listed); err != nil || len(listed.Users) != 2 {
		t.Fatalf("user list --json: %v %+v", err, listed)
	}
	// alice logs in with the password she got from stdin.
	c := &appClient{server: os.Getenv("THINGIF_SERVER")}
	if _, err := c.do(t.Context(), "POST", "/api/apps/cliapp/oauth2/token", "application/json", []byte(`{"username":"alice","password":"pw-alice"}`), nil, false); err != nil {
		t.Fatalf("alice's login: %v", err)
	}
	must("", `^user `+regexp.QuoteMeta(alice)+` deleted\n$`, append([]string{"user", "delete", alice}, k...)...)
	must("", `^USER ID +LOGIN NAME +CREATED\nu\.\S+ +bob +\S+ *\n$`, append([]string{"user", "list"}, k...)...)
	r = runCLI(t, "", append([]string{"user", "delete", alice}, k...)...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "USER_NOT_FOUND") {
		t.Fatalf("second delete: exit %d %q", r.code, r.stderr)
	}
}

// TestAppCommands: apps are created and listed on a data directory while
// no server runs; a server started there takes the app's key; while it
// runs, the app commands are refused by the directory's lock.
func TestAppCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("my-app-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("THINGIF_DATA", dir)

	r := runCLI(t, "", "app", "create", "--id", "shop", "--key-file", keyFile)
	if got, want := r.stdout, "APP_ID=shop\n"; r.code != exitOK || got != want {
		t.Fatalf("app create: exit %d stdout %q (want %q) stderr %q", r.code, got, want, r.stderr)
	}
	r = runCLI(t, "", "app", "create", "--json")
	var gen struct{ AppID, AppKey string }
	if err := json.Unmarshal([]byte(r.stdout), &gen); r.code != exitOK || err != nil || gen.AppID == "" || len(gen.AppKey) < 16 {
		t.Fatalf("app create --json: exit %d %q %v", r.code, r.stdout, err)
	}
	if r := runCLI(t, "", "app", "create", "--id", "shop"); r.code != exitFailure || !strings.Contains(r.stderr, "app shop exists") {
		t.Fatalf("app create again: exit %d %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "app", "create", "--id", "a/b"); r.code != exitUsage {
		t.Fatalf("app create a/b: exit %d %q", r.code, r.stderr)
	}
	r = runCLI(t, "", "app", "list")
	if r.code != exitOK || !regexp.MustCompile(`^APP ID +CREATED\nshop +20\d\d-\S+\n`+gen.AppID+` +`).MatchString(r.stdout) {
		t.Fatalf("app list: exit %d %q %q", r.code, r.stdout, r.stderr)
	}

	srv, err := server.New(t.Context(), server.Config{DataDir: dir, PublicHost: "127.0.0.1", HTTP: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	if srv.DevApp != nil {
		t.Errorf("a development app was made beside the created ones: %+v", *srv.DevApp)
	}
	c := &appClient{server: fmt.Sprintf("http://127.0.0.1:%d", srv.Port("http")), app: "shop", key: "my-app-key"}
	if err := c.ensureToken(t.Context()); err != nil {
		t.Fatalf("token with the created app's key: %v", err)
	}
	r = runCLI(t, "", "app", "list")
	if r.code != exitFailure || !strings.Contains(r.stderr, "in use by another thingif") {
		t.Fatalf("app list while a server runs: exit %d %q", r.code, r.stderr)
	}
}

// TestIsTerminal: the bench progress bar is kept off pipes, files and
// buffers.
func TestIsTerminal(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		name string
		w    io.Writer
	}{{"pipe", pw}, {"file", f}, {"buffer", &bytes.Buffer{}}} {
		t.Run(tt.name, func(t *testing.T) {
			if isTerminal(tt.w) {
				t.Errorf("isTerminal(%s) = true", tt.name)
			}
		})
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("isTerminal(/dev/tty) = false")
		}
	}
}

// TestSplitList: --rest-nodes is a comma-separated list, blanks dropped.
func TestSplitList(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"http://a", []string{"http://a"}},
		{" http://a, http://b ,,http://c,", []string{"http://a", "http://b", "http://c"}},
	} {
		if got := splitList(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
