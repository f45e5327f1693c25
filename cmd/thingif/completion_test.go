package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestComplete(t *testing.T) {
	for _, tt := range []struct {
		name  string
		words []string
		want  []string
	}{
		{"top", []string{""}, []string{"app", "backup", "bench", "command", "completion", "nodes", "serve", "state", "thing", "trigger", "user", "version"}},
		{"top prefix", []string{"t"}, []string{"thing", "trigger"}},
		{"group", []string{"user", ""}, []string{"create", "delete", "list"}},
		{"leaf flags", []string{"user", "create", "--pass"}, []string{"--password", "--password-stdin"}},
		{"after a bool flag", []string{"user", "create", "--json", "--na"}, []string{"--name"}},
		{"value of a flag", []string{"thing", "run", "--ca", ""}, nil},
		{"serve's flags from its -h", []string{"serve", "--onboard-t"}, []string{"--onboard-tcp", "--onboard-tls"}},
		{"positional choices", []string{"completion", ""}, []string{"bash", "fish", "zsh"}},
		{"bench scenarios", []string{"bench", "re"}, []string{"reonboard"}},
		{"unknown group", []string{"nope", ""}, nil},
		{"hidden", []string{"__"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := complete(t.Context(), tt.words); !slices.Equal(got, tt.want) {
				t.Errorf("complete(%q) = %q, want %q", tt.words, got, tt.want)
			}
		})
	}
}

// TestCompleteEveryFlag: completion offers every flag of every command,
// as its flag set has it.
func TestCompleteEveryFlag(t *testing.T) {
	walk(root, "", func(path string, n *node) {
		if n.flags == nil {
			return
		}
		got := complete(t.Context(), append(strings.Fields(path), "-"))
		for _, f := range flagNames(n) {
			if !slices.Contains(got, "--"+f) {
				t.Errorf("%s: completion lacks --%s: %q", path, f, got)
			}
		}
	})
}

// TestCompletionScriptsInShells loads each script in its shell, where the
// shell is installed, and completes with the real binary on $PATH.
func TestCompletionScriptsInShells(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	path := filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, tt := range []struct {
		shell, script, want string
	}{
		{"bash", `source <(thingif completion bash); COMP_WORDS=(thingif user l); COMP_CWORD=2; _thingif; printf '%s\n' "${COMPREPLY[@]}"`, "list\n"},
		{"zsh", `thingif completion zsh > "$TMPDIR/_thingif" && zsh -n "$TMPDIR/_thingif" && echo ok`, "ok\n"},
		{"fish", `thingif completion fish | fish -n && echo ok`, "ok\n"},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			sh, err := exec.LookPath(tt.shell)
			if err != nil {
				if os.Getenv("THINGIF_INTEGRATION") == "1" && tt.shell == "bash" {
					t.Fatalf("%s not installed", tt.shell)
				}
				t.Skipf("%s not installed", tt.shell)
			}
			shell := sh
			if tt.shell != "bash" {
				shell = "bash" // the script runs the shell's syntax check
			}
			cmd := exec.Command(shell, "-c", tt.script)
			cmd.Env = append(os.Environ(), "PATH="+path, "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", tt.shell, err, out)
			}
			if got := string(out); got != tt.want {
				t.Errorf("%s completed %q, want %q", tt.shell, got, tt.want)
			}
		})
	}
}
