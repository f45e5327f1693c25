package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

const exampleConfig = "../../deploy/thingif.example.toml"

// env is a fake environment for applyConfig.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// writeFile writes a config file into a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolve parses args and applies the environment and the file as serve
// does, and returns the options they set.
func resolve(t *testing.T, args []string, vars map[string]string) (*serveOptions, error) {
	t.Helper()
	fs, o := serveFlags(io.Discard)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o, applyConfig(fs, env(vars))
}

func TestEnvName(t *testing.T) {
	for flagName, want := range map[string]string{
		"public-host":            "THINGIF_PUBLIC_HOST",
		"data":                   "THINGIF_DATA",
		"max-triggers-per-thing": "THINGIF_MAX_TRIGGERS_PER_THING",
	} {
		if got := envName(flagName); got != want {
			t.Errorf("envName(%q)=%q, want %q", flagName, got, want)
		}
	}
}

// TestConfigPrecedence: a few flags of each kind (string, repeatable,
// integer, bool, duration) set at every level: flags > env > file >
// defaults.
func TestConfigPrecedence(t *testing.T) {
	file := `public-host = "file.example"
app = ["file:k1", "file2:k2"]
max-headers = 10
metrics-public = true
endpoint-ttl = "1h"
`
	type result struct {
		PublicHost    string
		Apps          []string
		MaxHeaders    int
		MetricsPublic bool
		EndpointTTL   time.Duration
	}
	defaults := result{PublicHost: "localhost", Apps: nil, MaxHeaders: 0, MetricsPublic: false, EndpointTTL: 0}
	fromFile := result{PublicHost: "file.example", Apps: []string{"file", "file2"}, MaxHeaders: 10, MetricsPublic: true, EndpointTTL: time.Hour}
	allEnv := map[string]string{
		"THINGIF_PUBLIC_HOST": "env.example", "THINGIF_APP": "env:k3 env2:k4", "THINGIF_MAX_HEADERS": "20",
		"THINGIF_METRICS_PUBLIC": "false", "THINGIF_ENDPOINT_TTL": "2h",
	}
	fromEnv := result{PublicHost: "env.example", Apps: []string{"env", "env2"}, MaxHeaders: 20, MetricsPublic: false, EndpointTTL: 2 * time.Hour}
	allFlags := []string{"--public-host", "flag.example", "--app", "flag:k5", "--max-headers", "30", "--metrics-public=false", "--endpoint-ttl", "3h"}
	fromFlags := result{PublicHost: "flag.example", Apps: []string{"flag"}, MaxHeaders: 30, MetricsPublic: false, EndpointTTL: 3 * time.Hour}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		file bool
		want result
	}{
		{"defaults", nil, nil, false, defaults},
		{"file", nil, nil, true, fromFile},
		{"env without file", nil, allEnv, false, fromEnv},
		{"env over file", nil, allEnv, true, fromEnv},
		{"flags over env and file", allFlags, allEnv, true, fromFlags},
		{"mixed levels", []string{"--public-host", "flag.example"}, map[string]string{"THINGIF_MAX_HEADERS": "20"}, true,
			result{PublicHost: "flag.example", Apps: []string{"file", "file2"}, MaxHeaders: 20, MetricsPublic: true, EndpointTTL: time.Hour}},
		{"empty env var sets empty", nil, map[string]string{"THINGIF_PUBLIC_HOST": "", "THINGIF_APP": ""}, true,
			result{PublicHost: "", Apps: nil, MaxHeaders: 10, MetricsPublic: true, EndpointTTL: time.Hour}},
		{"file named by THINGIF_CONFIG", nil, map[string]string{"THINGIF_CONFIG": "FILE"}, false, fromFile},
	}
	path := writeFile(t, "thingif.toml", file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file {
				args = append([]string{"--config", path}, args...)
			}
			vars := map[string]string{}
			for k, v := range tt.env {
				if v == "FILE" {
					v = path
				}
				vars[k] = v
			}
			o, err := resolve(t, args, vars)
			if err != nil {
				t.Fatal(err)
			}
			got := result{PublicHost: o.cfg.PublicHost, MaxHeaders: o.cfg.Limits.MaxHeaders, MetricsPublic: o.cfg.MetricsPublic, EndpointTTL: o.cfg.EndpointTTL}
			for _, a := range o.cfg.Apps {
				got.Apps = append(got.Apps, a.ID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("resolved config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExampleConfigIsDefaults: deploy/thingif.example.toml holds every
// flag's default, so loading it changes nothing.
func TestExampleConfigIsDefaults(t *testing.T) {
	want, err := resolve(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolve(t, []string{"--config", exampleConfig}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got.configFile = ""
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(serveOptions{})); diff != "" {
		t.Fatalf("example config differs from the defaults (-defaults +example):\n%s", diff)
	}
}

// TestExampleConfigHasEveryFlag: every flag that may be in the file has a
// key in the example.
func TestExampleConfigHasEveryFlag(t *testing.T) {
	var m map[string]any
	if _, err := toml.DecodeFile(exampleConfig, &m); err != nil {
		t.Fatal(err)
	}
	fs, _ := serveFlags(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := commandLineOnly[f.Name]; ok {
			return
		}
		if _, ok := m[f.Name]; !ok {
			t.Errorf("flag --%s has no key in %s", f.Name, exampleConfig)
		}
	})
}

func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // substrings of the error
	}{
		{"unknown key", "http = \":1\"\n\npubic-host = \"x\"\n", []string{"thingif.toml:3:", `unknown key "pubic-host"`}},
		{"unknown quoted key", "\"nope\" = 1\n", []string{"thingif.toml:1:", `unknown key "nope"`}},
		{"table", "[server]\nhttp = \":1\"\n", []string{"thingif.toml:1:", `unknown key "server"`}},
		{"string flag given integer", "http = 8080\n", []string{"thingif.toml:1:", `key "http"`, "want a string, got an integer"}},
		{"integer flag given string", "max-headers = \"64\"\n", []string{`key "max-headers"`, "want an integer, got a string"}},
		{"bool flag given string", "metrics-public = \"yes\"\n", []string{`key "metrics-public"`, "want a boolean, got a string"}},
		{"duration given integer", "endpoint-ttl = 60\n", []string{`key "endpoint-ttl"`, "want a duration"}},
		{"list flag given string", "app = \"a:b\"\n", []string{`key "app"`, "want a list of strings, got a string"}},
		{"list of integers", "app = [1]\n", []string{`key "app"`, "a list with an integer"}},
		{"value the flag refuses", "endpoint-ttl = \"soon\"\n", []string{`key "endpoint-ttl"`, `invalid value "soon"`}},
		{"negative uint", "max-inflight = -1\n", []string{`key "max-inflight"`, "invalid value"}},
		{"command line only", "check-config = true\n", []string{`key "check-config"`, "only on the command line"}},
		{"config in config", "config = \"other.toml\"\n", []string{`key "config"`, "only on the command line"}},
		{"syntax", "http = \":1\"\nhttps = \n", []string{"thingif.toml:2:"}},
		{"duplicate key", "http = \":1\"\nhttp = \":2\"\n", []string{"thingif.toml:2:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "thingif.toml", tt.file)
			_, err := resolve(t, []string{"--config", path}, nil)
			if err == nil {
				t.Fatalf("config %q: no error", tt.file)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q has more than one line", err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none.toml")
		_, err := resolve(t, nil, map[string]string{"THINGIF_CONFIG": path})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("err=%v, want one naming %s", err, path)
		}
	})
	t.Run("env error names the variable", func(t *testing.T) {
		_, err := resolve(t, nil, map[string]string{"THINGIF_MAX_HEADERS": "many"})
		if err == nil || !strings.Contains(err.Error(), `THINGIF_MAX_HEADERS: invalid value "many"`) {
			t.Fatalf("err=%v, want one naming THINGIF_MAX_HEADERS and the value", err)
		}
	})
	t.Run("THINGIF_CHECK_CONFIG is ignored", func(t *testing.T) {
		o, err := resolve(t, nil, map[string]string{"THINGIF_CHECK_CONFIG": "true"})
		if err != nil || o.checkConfig {
			t.Fatalf("checkConfig=%v err=%v, want false, nil", o.checkConfig, err)
		}
	})
}

// TestConfigSecretsNotEchoed: a bad --app from the environment or the file
// is refused without repeating its key, and -h never shows a THINGIF_*
// value as a default.
func TestConfigSecretsNotEchoed(t *testing.T) {
	const key = "s3cr3t-app-key"
	t.Run("env", func(t *testing.T) {
		_, err := resolve(t, nil, map[string]string{"THINGIF_APP": "good:k bad/id:" + key})
		if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "THINGIF_APP") {
			t.Fatalf("err=%v, want one naming THINGIF_APP without the key", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		path := writeFile(t, "thingif.toml", `app = ["bad/id:`+key+`"]`)
		_, err := resolve(t, []string{"--config", path}, nil)
		if err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), `key "app"`) {
			t.Fatalf("err=%v, want one naming the key app without the secret", err)
		}
	})
	t.Run("help", func(t *testing.T) {
		t.Setenv("THINGIF_APP", "envapp:"+key)
		t.Setenv("THINGIF_PUBLIC_HOST", "env-host.example")
		t.Setenv("THINGIF_DATA", "/env/data/dir")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"serve", "-h"}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("serve -h: %v, want nil (help exits 0)", err)
		}
		help := stdout.String() + stderr.String()
		for _, v := range []string{key, "envapp", "env-host.example", "/env/data/dir"} {
			if strings.Contains(help, v) {
				t.Errorf("serve -h shows %q from the environment:\n%s", v, help)
			}
		}
		for _, w := range []string{`(default "localhost")`, "-config file", "THINGIF_PUBLIC_HOST", "-log-format"} {
			if !strings.Contains(help, w) {
				t.Errorf("serve -h lacks %q:\n%s", w, help)
			}
		}
	})
}

// tlsPair writes a self-signed certificate and its key as PEM files.
func tlsPair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestCheckConfig: --check-config answers "config ok" or one line naming
// the problem, and neither binds a port nor creates the data directory.
func TestCheckConfig(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cert, key := tlsPair(t)
	notPEM := writeFile(t, "junk.pem", "not a certificate")
	badFile := writeFile(t, "thingif.toml", "htttp = \":1\"\n")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for ok, else a substring of the error
	}{
		{"defaults", nil, nil, ""},
		{"address in use is not bound", []string{"--http", held.Addr().String()}, nil, ""},
		{"TLS files load", []string{"--tls-cert", cert, "--tls-key", key}, nil, ""},
		{"TLS files from env", nil, map[string]string{"THINGIF_TLS_CERT": cert, "THINGIF_TLS_KEY": key}, ""},
		{"cert without key", []string{"--tls-cert", cert}, nil, "TLSCert and TLSKey go together"},
		{"cert not PEM", []string{"--tls-cert", notPEM, "--tls-key", key}, nil, "--tls-cert, --tls-key"},
		{"cert missing", []string{"--tls-cert", filepath.Join(t.TempDir(), "none.pem"), "--tls-key", key}, nil, "none.pem"},
		{"key not matching", []string{"--tls-cert", cert, "--tls-key", notPEM}, nil, "--tls-cert, --tls-key"},
		{"bad webhook", []string{"--webhook-url", "ftp://x"}, nil, "WebhookURL"},
		{"empty public host from env", nil, map[string]string{"THINGIF_PUBLIC_HOST": ""}, "PublicHost is required"},
		{"negative token ttl", []string{"--thing-token-ttl", "-1s"}, nil, "ThingTokenTTL"},
		{"hash cost", []string{"--password-hash-time", "0"}, nil, "--password-hash-time"},
		{"log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"unknown key", []string{"--config", badFile}, nil, `unknown key "htttp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := append([]string{"--check-config", "--data", data}, tt.args...)
			var stdout bytes.Buffer
			err := runServe(context.Background(), args, env(tt.env), &stdout, io.Discard)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("check-config: %v", err)
				}
				if got, want := stdout.String(), "config ok\n"; got != want {
					t.Fatalf("stdout=%q, want %q", got, want)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err=%v, want one line containing %q", err, tt.want)
				}
				if stdout.Len() != 0 {
					t.Fatalf("stdout=%q, want nothing", stdout.String())
				}
			}
			if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("data directory: stat err=%v, want it not created", err)
			}
		})
	}
}

// TestCheckConfigExitCodes: the real binary exits 0 with "config ok", and
// 2 with one line on stderr.
func TestCheckConfigExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"ok", []string{"--config", exampleConfig}, 0, "config ok\n", ""},
		{"bad", []string{"--log-format", "xml"}, 2, "", "thingif: serve: --log-format: want text or json, got \"xml\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"serve", "--check-config", "--data", filepath.Join(t.TempDir(), "d")}, tt.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || stdout.String() != tt.stdout || stderr.String() != tt.stderr {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestLogFormat(t *testing.T) {
	tests := []struct {
		format string
		json   bool
	}{
		{"text", false},
		{"json", true},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			o, err := resolve(t, []string{"--log-format", tt.format}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			cfg, err := o.serverConfig(&buf)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Logger.Info("started", "addr", ":8080")
			var rec map[string]any
			err = json.Unmarshal(buf.Bytes(), &rec)
			if got := err == nil && rec["msg"] == "started" && rec["addr"] == ":8080"; got != tt.json {
				t.Fatalf("log line %q parsed as JSON with msg and addr: %v, want %v", buf.String(), got, tt.json)
			}
			if !tt.json && !strings.Contains(buf.String(), "msg=started addr=:8080") {
				t.Fatalf("text log line %q", buf.String())
			}
		})
	}
}

// TestServeFromConfigFile: a server configured by a file alone starts on
// the file's listeners, makes the file's app (no development app), logs
// JSON as the file says, and never logs or prints the app key.
func TestServeFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "data = %q\npublic-host = \"127.0.0.1\"\napp = [\"cfgapp:cfg-secret-key\"]\nlog-format = \"json\"\n", dir)
	for _, f := range []string{"onboard-tcp", "onboard-tls", "onboard-ws", "onboard-wss", "mqtt-tcp", "mqtt-tls", "mqtt-ws", "mqtt-wss", "http", "https"} {
		fmt.Fprintf(&b, "%s = \"127.0.0.1:0\"\n", f)
	}
	path := writeFile(t, "thingif.toml", b.String())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{ch: make(chan []byte, 1024)}
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, nil, env(map[string]string{"THINGIF_CONFIG": path}), &out, logs)
	}()
	ready := waitReady(t, logs.ch)
	var rec map[string]any
	if err := json.Unmarshal([]byte(ready), &rec); err != nil {
		t.Fatalf("ready line is not JSON: %v: %s", err, ready)
	}
	if addr, _ := rec["http"].(string); !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Errorf("ready line http=%v, want a bound 127.0.0.1 port: %s", rec["http"], ready)
	}
	stopServe(t, cancel, done)
	if strings.Contains(out.String(), "APP_ID=") {
		t.Errorf("development app printed although the file names an app:\n%s", out.String())
	}
	for len(logs.ch) > 0 {
		if l := <-logs.ch; bytes.Contains(l, []byte("cfg-secret-key")) {
			t.Errorf("log shows the app key: %s", l)
		}
	}
	if strings.Contains(ready+out.String(), "cfg-secret-key") {
		t.Errorf("output shows the app key")
	}
}
