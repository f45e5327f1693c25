package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/thingif/thingif/codec"
)

// getDoc fetches /openapi.json from base with Host host (the dial address's
// own if empty) and decodes it.
func getDoc(t *testing.T, c *http.Client, base, host string) map[string]any {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.StatusCode, 200; got != want {
		t.Fatalf("GET /openapi.json: %d, want %d: %s", got, want, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("GET /openapi.json: %v: %.200s", err, b)
	}
	return doc
}

// fileDoc is openapi.json as committed, with servers set to url.
func fileDoc(t *testing.T, url string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	doc["servers"] = []any{map[string]any{"url": url}}
	return doc
}

// TestOpenAPIServers: the document served names the address the request
// came in on, scheme from the connection and host from the Host header,
// and is otherwise the committed file.
func TestOpenAPIServers(t *testing.T) {
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.h)
	t.Cleanup(tlsSrv.Close)
	for _, tc := range []struct {
		name   string
		client *http.Client
		base   string
		host   string
		want   string
	}{
		{"plain, dialled address", e.srv.Client(), e.srv.URL, "", e.srv.URL},
		{"plain, name", e.srv.Client(), e.srv.URL, "iot.example.net:8080", "http://iot.example.net:8080"},
		{"plain, IPv6", e.srv.Client(), e.srv.URL, "[2001:db8::1]:8080", "http://[2001:db8::1]:8080"},
		{"TLS, name", tlsSrv.Client(), tlsSrv.URL, "iot.example.net", "https://iot.example.net"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := getDoc(t, tc.client, tc.base, tc.host)
			if diff := cmp.Diff(fileDoc(t, tc.want), got); diff != "" {
				t.Errorf("served document (-want +got):\n%s", diff)
			}
		})
	}
	// Over MQTT there is no address to name: the file as it is, with its
	// relative server.
	t.Run("MQTT", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/openapi.json", nil)
		r.Host = codec.Host
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%d %v: %.200s", w.Code, err, w.Body.Bytes())
		}
		var want map[string]any
		if err := json.Unmarshal(openAPI, &want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("served document (-want +got):\n%s", diff)
		}
	})
}

// camelCase is an operationId's form.
var camelCase = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// TestOpenAPIOperationIDs: every operation has an operationId, unique and
// camelCase; where its handler is a method used by that operation alone,
// the operationId is the method's name.
func TestOpenAPIOperationIDs(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // "METHOD pattern" → operationId
	seen := map[string]string{}
	for p, ops := range doc.Paths {
		for m, raw := range ops {
			if m == "parameters" {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, p, err)
			}
			k := strings.ToUpper(m) + " " + p
			switch id := op.OperationID; {
			case id == "":
				t.Errorf("%s has no operationId", k)
			case !camelCase.MatchString(id):
				t.Errorf("%s: operationId %q is not camelCase", k, id)
			case seen[id] != "":
				t.Errorf("%s: operationId %q is also %s's", k, id, seen[id])
			default:
				seen[id] = k
			}
			ids[k] = op.OperationID
		}
	}
	// Handler names: a method value's is "….(*Handler).name-fm"; closures
	// (getThingField(…), enableTrigger(…)) have none to compare with.
	names := map[string][]string{} // handler name → operations
	for _, rt := range newEnv(t).h.routeTable() {
		for m, f := range rt.methods {
			full := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
			if name, ok := strings.CutSuffix(full, "-fm"); ok {
				name = name[strings.LastIndexByte(name, '.')+1:]
				names[name] = append(names[name], m+" "+rt.pattern)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no handler names found")
	}
	for name, ops := range names {
		if len(ops) != 1 {
			continue // writeStates (PUT and PATCH), putVendorThingID (two paths)
		}
		if got := ids[ops[0]]; got != name {
			t.Errorf("%s: operationId %q, want its handler's name %q", ops[0], got, name)
		}
	}
}

// TestOpenAPILint lints the document as the server serves it with
// Redocly's CLI (@redocly/cli, npm), which .ci/run installs and names in
// THINGIF_REDOCLY; otherwise a redocly on PATH. Without one it skips, or
// fails under THINGIF_INTEGRATION=1. Its recommended rules apply, less the
// problems testdata/redocly/.redocly.lint-ignore.yaml lists with why: any
// error or warning fails the test.
func TestOpenAPILint(t *testing.T) {
	redocly := os.Getenv("THINGIF_REDOCLY")
	if redocly == "" {
		var err error
		if redocly, err = exec.LookPath("redocly"); err != nil {
			msg := "redocly not found (set THINGIF_REDOCLY or see .ci/run)"
			if os.Getenv("THINGIF_INTEGRATION") == "1" {
				t.Fatalf("%s; THINGIF_INTEGRATION=1 requires it", msg)
			}
			t.Skip(msg)
		}
	}
	e := newEnv(t)
	dir := t.TempDir()
	for _, f := range []string{"redocly.yaml", ".redocly.lint-ignore.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "redocly", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(e.srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), served, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(redocly, "lint", "--format=json", "openapi.json")
	cmd.Dir = dir
	// No usage telemetry and no update check: a test talks to no one.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var report struct {
		Totals struct {
			Errors, Warnings, Ignored int
		}
		Problems []struct {
			RuleID, Severity, Message string
			Location                  []struct{ Pointer string }
		}
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("redocly lint: %v (exit: %v): %s\n%s", err, runErr, out, stderr.String())
	}
	for _, p := range report.Problems {
		var at []string
		for _, l := range p.Location {
			at = append(at, l.Pointer)
		}
		t.Errorf("%s %s: %s at %v", p.Severity, p.RuleID, p.Message, at)
	}
	if report.Totals.Errors+report.Totals.Warnings != 0 || runErr != nil {
		t.Errorf("redocly lint: %d errors, %d warnings (exit: %v)\n%s", report.Totals.Errors, report.Totals.Warnings, runErr, stderr.String())
	}
}
