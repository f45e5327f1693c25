package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// node is one command of the command tree: a group (subs), a leaf (flags),
// or a command that parses its own arguments (raw: serve, backup). Help,
// dispatch and shell completion are all generated from this tree and the
// leaves' flag sets, so there is no second list to keep in step.
type node struct {
	name, summary string
	// args names the positional arguments in the synopsis ("COMMAND_ID");
	// nargs is how many a leaf takes, exactly.
	args  string
	nargs int
	// long is printed after the summary in the command's help.
	long string
	// flags registers a leaf's flags on fs and returns what the leaf does
	// with them once parsed.
	flags func(fs *flagSet) action
	// choices are the values of the positional argument, for completion.
	choices []string
	// hidden keeps a command out of help and completion (__complete).
	hidden bool
	subs   []*node
	raw    func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// action runs a leaf with its positional arguments.
type action func(ctx context.Context, s stdio, args []string) error

// stdio are the streams a command reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is a subcommand that parses its own arguments. serve and backup
// are such commands; they add themselves with register.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// root is the command tree; each file adds its commands in an init
// function.
var root = &node{name: "thingif", summary: "a self-hosted thing-if (Kii Thing Interaction Framework) server"}

// register adds a command that parses its own arguments.
func register(c command) { add(&node{name: c.name, summary: c.summary, raw: c.run}) }

// add adds a node to the top of the tree.
func add(n *node) { root.subs = append(root.subs, n) }

func (n *node) sub(name string) *node {
	for _, s := range n.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (n *node) sortedSubs() []*node {
	subs := slices.Clone(n.subs)
	slices.SortFunc(subs, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	return subs
}

// usageError is a mistake in how a command was called: main prints it on
// one line with a pointer to the command's -h and exits 2. Other errors
// exit 1.
type usageError struct {
	err error
	cmd string // "thing run", filled in by the dispatcher
	// config marks a setting that cannot work (from a flag, the
	// environment or the config file): one line, no pointer to -h, which
	// would not help.
	config bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (nil stays nil). Commands that parse
// their own flags (serve, backup) wrap their flag and argument errors with
// it so that main exits 2 for them, 1 for failures at run time.
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	return &usageError{err: err}
}

// usagef is usageErr of a formatted error.
func usagef(format string, a ...any) error { return &usageError{err: fmt.Errorf(format, a...)} }

// configErrorf is a usage error for a setting that cannot work: it exits 2
// like a usage error, printed as its one line alone.
func configErrorf(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...), config: true}
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// exitCode prints err, if any, and returns the exit status for it.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue) && ue.config:
		fmt.Fprintln(stderr, "thingif:", err)
		return exitUsage
	case errors.As(err, &ue):
		cmd := "thingif"
		if ue.cmd != "" {
			cmd += " " + ue.cmd
		}
		fmt.Fprintf(stderr, "thingif: %v\nRun '%s -h' for usage.\n", err, cmd)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "thingif:", err)
		return exitFailure
	}
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// wantsHelp reports whether the flags in args ask for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// dispatch runs the command args name below n; path is n's name below the
// root ("" for the root).
func dispatch(ctx context.Context, n *node, path string, args []string, s stdio) error {
	err := dispatchNode(ctx, n, path, args, s)
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		ue.cmd = path
	}
	return err
}

func dispatchNode(ctx context.Context, n *node, path string, args []string, s stdio) error {
	switch {
	case n.raw != nil:
		if wantsHelp(args) {
			// Help is asked for: it goes to stdout and exits 0.
			if err := n.raw(ctx, args, s.out, s.out); err != nil && !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil
		}
		return n.raw(ctx, args, s.out, s.err)
	case n.flags != nil:
		return runLeaf(ctx, n, path, args, s)
	}
	prefix := ""
	if path != "" {
		prefix = path + ": "
	}
	if len(args) == 0 {
		return usagef("%smissing command: one of %s", prefix, subNames(n))
	}
	if isHelp(args[0]) {
		writeGroupHelp(s.out, n, path)
		return nil
	}
	sub := n.sub(args[0])
	if sub == nil {
		return usagef("%sunknown command %q: want one of %s", prefix, args[0], subNames(n))
	}
	return dispatch(ctx, sub, strings.TrimSpace(path+" "+sub.name), args[1:], s)
}

func (n *node) displayName(path string) string {
	if path == "" {
		return "thingif"
	}
	return path
}

func subNames(n *node) string {
	var names []string
	for _, s := range n.sortedSubs() {
		if !s.hidden {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ", ")
}

// runLeaf parses a leaf's flags and positional arguments, in any order,
// and runs it.
func runLeaf(ctx context.Context, n *node, path string, args []string, s stdio) error {
	fs := newFlagSet(path, s)
	act := n.flags(fs)
	pos, err := fs.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		writeLeafHelp(s.out, n, path, fs)
		return nil
	}
	if err != nil {
		return usageErr(err)
	}
	if len(pos) != n.nargs {
		if n.nargs == 0 {
			return usagef("%s: unexpected argument %q", path, pos[0])
		}
		return usagef("%s: want %s, got %d argument(s)", path, n.args, len(pos))
	}
	if err := fs.finish(); err != nil {
		return err
	}
	return act(ctx, s, pos)
}

// flagSet is a flag.FlagSet that also knows which flags fall back to an
// environment variable and which read a secret from a file or stdin.
type flagSet struct {
	*flag.FlagSet
	s     stdio
	env   []envFlag
	after []func() error
}

// envFlag is a string flag whose value, when the flag is not given, comes
// from an environment variable, else from def.
type envFlag struct {
	name, env, def string
	p              *string
}

func newFlagSet(name string, s stdio) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors come back to the dispatcher, which prints them on one line;
	// help is printed by writeLeafHelp on stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, s: s}
}

// envString defines a string flag that falls back to $env, then def. The
// help shows the variable's name, never its value: it may be a secret.
func (fs *flagSet) envString(p *string, name, env, def, usage string) {
	if def != "" {
		usage += fmt.Sprintf(" (default $%s, else %s)", env, def)
	} else {
		usage += fmt.Sprintf(" (default $%s)", env)
	}
	fs.StringVar(p, name, "", usage)
	fs.env = append(fs.env, envFlag{name: name, env: env, def: def, p: p})
}

// secretFile defines --NAME-file: a file whose content (without its
// trailing newline) replaces the secret p, given in --NAME otherwise.
func (fs *flagSet) secretFile(p *string, name, what string) {
	file := fs.String(name+"-file", "", "read the "+what+" from this `file` (instead of --"+name+")")
	fs.after = append(fs.after, func() error {
		if *file == "" {
			return nil
		}
		if fs.isSet(name) {
			return usagef("%s: --%s and --%s-file are exclusive", fs.Name(), name, name)
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("--%s-file: %w", name, err)
		}
		*p = strings.TrimRight(string(b), "\r\n")
		if *p == "" {
			return fmt.Errorf("--%s-file: %s is empty", name, *file)
		}
		return nil
	})
}

// secretStdin defines --NAME-stdin: the secret p is the first line of
// stdin, so that it appears neither in the process list nor in the shell's
// history.
func (fs *flagSet) secretStdin(p *string, name, what string) {
	stdin := fs.Bool(name+"-stdin", false, "read the "+what+" from the first line of stdin (instead of --"+name+")")
	fs.after = append(fs.after, func() error {
		if !*stdin {
			return nil
		}
		if fs.isSet(name) {
			return usagef("%s: --%s and --%s-stdin are exclusive", fs.Name(), name, name)
		}
		line, err := bufio.NewReader(fs.s.in).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return fmt.Errorf("--%s-stdin: read stdin: %w", name, err)
		}
		*p = strings.TrimRight(line, "\r\n")
		if *p == "" {
			return fmt.Errorf("--%s-stdin: the first line of stdin is empty", name)
		}
		return nil
	})
}

func (fs *flagSet) isSet(name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parse parses flags and positional arguments in any order (after "--",
// everything is positional) and returns the positional ones.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// finish applies the environment fallbacks and reads the secret files and
// stdin.
func (fs *flagSet) finish() error {
	for _, e := range fs.env {
		if fs.isSet(e.name) {
			continue
		}
		if v := os.Getenv(e.env); v != "" {
			*e.p = v
		} else {
			*e.p = e.def
		}
	}
	for _, f := range fs.after {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

func writeGroupHelp(w io.Writer, n *node, path string) {
	name := n.displayName(path)
	if path != "" {
		name = "thingif " + path
	}
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s COMMAND [flags]\n\nCommands:\n", name, n.summary, name)
	for _, s := range n.sortedSubs() {
		if !s.hidden {
			fmt.Fprintf(w, "  %-12s %s\n", s.name, s.summary)
		}
	}
	if n.long != "" {
		fmt.Fprintf(w, "\n%s", n.long)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for the flags of a command.\n", name)
}

func writeLeafHelp(w io.Writer, n *node, path string, fs *flagSet) {
	synopsis := "thingif " + path + " [flags]"
	if n.args != "" {
		synopsis += " " + n.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", synopsis, upperFirst(n.summary))
	if n.long != "" {
		fmt.Fprintf(w, "\n%s", n.long)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
