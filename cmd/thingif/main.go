// Command thingif is a self-hosted thing-if server: `thingif serve` runs the
// onboarding broker, the API broker and the REST API in one process. Its
// other commands are clients: a simulated thing, the app-side REST API
// (things, users, commands, states, triggers), the apps of a data
// directory, a load generator and shell completion.
//
// Every command takes -h (help on stdout, exit 0); a usage mistake exits 2
// with one line and a pointer to -h, a failure at run time exits 1.
//
// The command line is built on the standard flag package, not a framework
// such as spf13/cobra: serve already uses flag, and what cobra would add
// (help on every command, completion, flags after arguments) is a tree of
// commands and a walk over its flag sets, about 300 lines here (cli.go), without
// two more modules (cobra, pflag) and a second flag syntax beside serve's.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func init() {
	register(command{"serve", "run the server", serve})
	add(&node{name: "version", summary: "print the version and VCS revision", flags: func(*flagSet) action {
		return func(_ context.Context, s stdio, _ []string) error {
			fmt.Fprintln(s.out, versionString(version, readBuildInfo()))
			return nil
		}
	}})
}

// readBuildInfo is debug.ReadBuildInfo, nil when there is none.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionString is "thingif VERSION (REVISION[, modified], TIME, GO)":
// VERSION is the -ldflags one when set, else the module version (a tag or
// pseudo-version with go install m@v; "(devel)" in a checkout).
func versionString(ldflags string, bi *debug.BuildInfo) string {
	v := ldflags
	if bi == nil {
		return "thingif " + v
	}
	if v == "dev" && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	var details []string
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		if modified {
			rev += ", modified"
		}
		details = append(details, "revision "+rev)
	}
	if at != "" {
		details = append(details, at)
	}
	details = append(details, bi.GoVersion)
	return fmt.Sprintf("thingif %s (%s)", v, strings.Join(details, ", "))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(runIO(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args with an empty stdin.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr)
}

// runIO runs the command line args (without the program name).
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		args = append([]string{"version"}, args[1:]...)
	}
	return dispatch(ctx, root, "", args, stdio{in: stdin, out: stdout, err: stderr})
}
