package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

func init() {
	add(&node{name: "completion", summary: "print a shell completion script: bash, zsh or fish",
		args: "SHELL", nargs: 1, choices: slices.Sorted(func(yield func(string) bool) {
			for k := range completionScripts {
				if !yield(k) {
					return
				}
			}
		}),
		long: `Load it in the running shell, or install it:
  bash: source <(thingif completion bash)     # or > /etc/bash_completion.d/thingif
  zsh:  source <(thingif completion zsh)      # or > "${fpath[1]}/_thingif"
  fish: thingif completion fish | source      # or > ~/.config/fish/completions/thingif.fish
The script asks the thingif on $PATH for the candidates (thingif __complete),
so it follows the commands and flags of that binary.
`,
		flags: func(*flagSet) action {
			return func(_ context.Context, s stdio, args []string) error {
				script, ok := completionScripts[args[0]]
				if !ok {
					return usagef("completion: unknown shell %q: want bash, zsh or fish", args[0])
				}
				_, err := io.WriteString(s.out, script)
				return err
			}
		}})
	add(&node{name: "__complete", hidden: true, raw: func(ctx context.Context, args []string, stdout, _ io.Writer) error {
		for _, c := range complete(ctx, args) {
			fmt.Fprintln(stdout, c)
		}
		return nil
	}})
}

// completionScripts are the scripts of `thingif completion`. Each hands
// the words typed so far to `thingif __complete`, which answers from the
// command tree and the flag sets; an empty answer falls back to file names
// where the shell allows it.
var completionScripts = map[string]string{
	"bash": `# bash completion for thingif, from "thingif completion bash".
_thingif() {
	local IFS=$'\n'
	COMPREPLY=($(thingif __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _thingif thingif
`,
	"zsh": `#compdef thingif
# zsh completion for thingif, from "thingif completion zsh".
_thingif() {
	local -a candidates
	candidates=("${(@f)$(thingif __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ -n "${candidates[1]}" ]]; then
		compadd -- "${candidates[@]}"
	else
		_files
	fi
}
compdef _thingif thingif
`,
	"fish": `# fish completion for thingif, from "thingif completion fish".
complete -c thingif -f -a '(thingif __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
}

// completionFlag is a flag as completion sees it.
type completionFlag struct {
	name      string
	takesWord bool // false for a bool flag
}

// rawFlagLine is a line of flag.PrintDefaults: "  -name" and, for a flag
// that takes a value, the value's name.
var rawFlagLine = regexp.MustCompile(`(?m)^  -([^\s=]+)( \S+)?$`)

// flagsOf returns the flags of a leaf from its flag set, or of a command
// that parses its own flags from its -h.
func flagsOf(ctx context.Context, n *node) []completionFlag {
	var out []completionFlag
	switch {
	case n.flags != nil:
		fs := newFlagSet(n.name, stdio{})
		n.flags(fs)
		fs.VisitAll(func(f *flag.Flag) {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			out = append(out, completionFlag{f.Name, !ok || !b.IsBoolFlag()})
		})
	case n.raw != nil && !n.hidden:
		var buf bytes.Buffer
		_ = n.raw(ctx, []string{"-h"}, &buf, &buf)
		for _, m := range rawFlagLine.FindAllStringSubmatch(buf.String(), -1) {
			out = append(out, completionFlag{m[1], m[2] != ""})
		}
	}
	return out
}

// complete returns the candidates for the last of words, the words after
// "thingif" up to the cursor.
func complete(ctx context.Context, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	n := root
	for n.subs != nil && len(before) > 0 {
		if n = n.sub(before[0]); n == nil {
			return nil
		}
		before = before[1:]
	}
	var cands []string
	if n.subs != nil {
		for _, s := range n.sortedSubs() {
			if !s.hidden {
				cands = append(cands, s.name)
			}
		}
		return withPrefix(cands, cur)
	}
	flags := flagsOf(ctx, n)
	if len(before) > 0 {
		// The word after a flag that takes one is its value: leave it to
		// the shell (file names).
		prev := strings.TrimLeft(before[len(before)-1], "-")
		for _, f := range flags {
			if f.name == prev && f.takesWord && strings.HasPrefix(before[len(before)-1], "-") {
				return nil
			}
		}
	}
	if strings.HasPrefix(cur, "-") {
		for _, f := range flags {
			cands = append(cands, "--"+f.name)
		}
		return withPrefix(cands, cur)
	}
	return withPrefix(n.choices, cur)
}

func withPrefix(cands []string, prefix string) []string {
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
