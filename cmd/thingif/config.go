package main

// Configuration sources of serve beyond its command line: THINGIF_*
// environment variables and a TOML file (--config). Both are driven by the
// FlagSet itself, so a flag added to serve is a variable and a file key at
// once; precedence is flags > env > file > defaults (docs/operations.md).

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// envPrefix starts the environment variable of every serve flag.
const envPrefix = "THINGIF_"

// configFlag names the flag that names the config file.
const configFlag = "config"

// commandLineOnly are the flags that say where the configuration comes from
// or what to do with it: they have no key in the file, and --check-config
// no variable either, so that a variable left in a service's environment
// cannot turn the server into a validator that exits at once.
var commandLineOnly = map[string]struct{ env bool }{
	configFlag:     {env: true},
	"check-config": {env: false},
}

// listValue is a flag.Value that each use of a repeatable flag appends to.
// In the file it takes a list; in the environment, whitespace-separated
// values.
type listValue interface {
	flag.Value
	isList()
}

// secretValue is a flag.Value whose value may hold a secret: errors about
// it never repeat the value.
type secretValue interface {
	flag.Value
	isSecret()
}

// envName is the environment variable of a flag: THINGIF_ and the flag's
// name upper-cased, '-' replaced by '_'.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyConfig sets every flag that the command line did not set, first from
// the environment (lookup, os.LookupEnv outside tests), then from the
// config file named by --config or THINGIF_CONFIG. Call it after fs.Parse:
// the flags' defaults, which -h prints, are never taken from either.
func applyConfig(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		if o, ok := commandLineOnly[f.Name]; ok && !o.env {
			return
		}
		name := envName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		set[f.Name] = true
		values := []string{v}
		if _, ok := f.Value.(listValue); ok {
			values = strings.Fields(v)
		}
		for _, v := range values {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, invalidValue(f, v, e))
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if f := fs.Lookup(configFlag); f != nil && f.Value.String() != "" {
		return applyFile(fs, f.Value.String(), set)
	}
	return nil
}

// invalidValue is the error of a value that f refused, naming the value
// unless it may be a secret.
func invalidValue(f *flag.Flag, v string, err error) error {
	if _, ok := f.Value.(secretValue); ok {
		return fmt.Errorf("invalid value: %w", err)
	}
	return fmt.Errorf("invalid value %q: %w", v, err)
}

// applyFile sets the flags of fs not in set from the TOML file at path. Its
// keys are the flag names; an unknown key, a value of the wrong type or one
// the flag refuses is an error naming the file, the line and the key.
func applyFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var m map[string]any
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("%s:%d: %s", path, perr.Position.Line, perr.Message)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	// md.Keys is in file order, so the first bad key is the one reported.
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table, which is itself an unknown key
		}
		name := k[0]
		where := path
		if n := keyLine(data, name); n > 0 {
			where = fmt.Sprintf("%s:%d", path, n)
		}
		f := fs.Lookup(name)
		if _, cmdline := commandLineOnly[name]; f == nil || cmdline {
			if cmdline {
				return fmt.Errorf("%s: key %q: only on the command line", where, name)
			}
			return fmt.Errorf("%s: unknown key %q", where, name)
		}
		values, err := fileValues(f, m[name])
		if err != nil {
			return fmt.Errorf("%s: key %q: %w", where, name, err)
		}
		if set[name] {
			continue
		}
		for _, v := range values {
			if err := fs.Set(name, v); err != nil {
				return fmt.Errorf("%s: key %q: %w", where, name, invalidValue(f, v, err))
			}
		}
	}
	return nil
}

// fileValues turns a TOML value into the strings that f.Value.Set takes,
// refusing a TOML type that does not fit the flag: a list for a repeatable
// flag, a boolean for a bool flag, an integer for a number, a string for
// the rest (durations like "30s", addresses, RATE:BURST).
func fileValues(f *flag.Flag, v any) ([]string, error) {
	if _, ok := f.Value.(listValue); ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("want a list of strings, got %s", tomlType(v))
		}
		out := make([]string, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got a list with %s", tomlType(e))
			}
			out[i] = s
		}
		return out, nil
	}
	var want string
	var got any
	if g, ok := f.Value.(flag.Getter); ok {
		got = g.Get()
	}
	switch got.(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		want = "a boolean"
	case int, int64, uint, uint64:
		if n, ok := v.(int64); ok {
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		want = "an integer"
	case float64:
		switch n := v.(type) {
		case float64:
			return []string{strconv.FormatFloat(n, 'g', -1, 64)}, nil
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		want = "a number"
	case time.Duration:
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		want = `a duration string like "30s"`
	default: // strings and flag.Func values
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		want = "a string"
	}
	return nil, fmt.Errorf("want %s, got %s", want, tomlType(v))
}

// tomlType names the TOML type of a decoded value, for errors.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}

// keyLine is the line of the file where the top-level key is defined, or 0.
// The TOML library keeps key positions to itself, so this looks for a line
// that starts with the key (bare or quoted) followed by '=', '.' or, for a
// table header, ']'.
func keyLine(data []byte, key string) int {
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(line)
		s = strings.TrimSpace(strings.TrimLeft(s, "["))
		for _, k := range []string{key, `"` + key + `"`, "'" + key + "'"} {
			rest, ok := strings.CutPrefix(s, k)
			if !ok {
				continue
			}
			if r := strings.TrimSpace(rest); r != "" && strings.ContainsRune("=.]", rune(r[0])) {
				return i + 1
			}
		}
	}
	return 0
}
