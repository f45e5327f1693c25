package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	broker := func(context.Context, string, string) BrokerAddr { return testBroker }
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no store", Config{APIBroker: broker}, "Store"},
		{"no broker", Config{Store: e.st}, "APIBroker"},
		{"negative endpoint ttl", Config{Store: e.st, APIBroker: broker, EndpointTTL: -1}, "EndpointTTL"},
		{"sub-second endpoint ttl", Config{Store: e.st, APIBroker: broker, EndpointTTL: time.Millisecond}, "EndpointTTL"},
		{"negative thing token ttl", Config{Store: e.st, APIBroker: broker, ThingTokenTTL: -1}, "ThingTokenTTL"},
		{"negative app token ttl", Config{Store: e.st, APIBroker: broker, AppTokenTTL: -1}, "AppTokenTTL"},
		{"negative body limit", Config{Store: e.st, APIBroker: broker, MaxBodyBytes: -1}, "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New()=%v, want ErrInvalidConfig naming %s", err, tt.field)
			}
		})
	}
	if _, err := New(Config{Store: e.st, APIBroker: broker}); err != nil {
		t.Fatalf("New(minimal)=%v", err)
	}
}

func TestRouting(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 150 })
	o := e.onboard("v-1", "pw")
	th := bearer(o.AccessToken)
	states := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/states"
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
	}{
		{"unknown path", "GET", "/nope", "", nil, 404, "NOT_FOUND"},
		{"unknown thing-if path", "GET", "/thing-if/apps/" + testApp + "/whatever", "", th, 404, "NOT_FOUND"},
		{"trailing slash", "GET", states + "/", "", th, 404, "NOT_FOUND"},
		{"unclean path", "GET", "/thing-if/apps/" + testApp + "/x/../targets/thing:" + o.ThingID + "/states", "", th, 404, "NOT_FOUND"},
		{"wrong method", "DELETE", states, "", th, 405, "METHOD_NOT_ALLOWED"},
		{"wrong method on onboardings", "GET", "/thing-if/apps/" + testApp + "/onboardings", "", th, 405, "METHOD_NOT_ALLOWED"},
		{"body too large", "PUT", states, `{"a":"` + strings.Repeat("x", 200) + `"}`, with(th, "Content-Type", "application/json"), 413, "REQUEST_ENTITY_TOO_LARGE"},
		{"target kind", "GET", "/thing-if/apps/" + testApp + "/targets/user:" + o.ThingID + "/states", "", th, 404, "TARGET_NOT_FOUND"},
		{"target without kind", "GET", "/thing-if/apps/" + testApp + "/targets/" + o.ThingID + "/states", "", th, 404, "TARGET_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, e.do(tt.method, tt.path, tt.body, tt.headers...), tt.status, tt.code)
		})
	}
	t.Run("allow header", func(t *testing.T) {
		r := e.do("DELETE", states, "", th...)
		if got, want := r.header.Get("Allow"), "GET, PATCH, PUT"; got != want {
			t.Fatalf("Allow=%q, want %q", got, want)
		}
	})
}

func TestRequestIDEcho(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	states := "/thing-if/apps/" + testApp + "/targets/thing:" + o.ThingID + "/states"
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
	}{
		{"success with body", "POST", "/api/apps/" + testApp + "/oauth2/token", `{"grant_type":"client_credentials","client_id":"app1","client_secret":"key-1"}`, nil, 200},
		{"no content", "PUT", states, `{"power":true}`, with(bearer(o.AccessToken), "Content-Type", "application/json"), 204},
		{"error", "GET", states, "", bearer("bad"), 403},
		{"not found", "GET", "/nope", "", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"X-Kii-RequestID", "x-kii-requestid"} {
				r := e.do(tt.method, tt.path, tt.body, with(tt.headers, name, "req-42")...)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				if !bytes.Contains(r.raw, []byte("\r\nX-Kii-RequestID: req-42\r\n")) {
					t.Fatalf("answer lacks X-Kii-RequestID spelled exactly:\n%s", r.raw)
				}
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		r := e.do("GET", "/nope", "")
		if bytes.Contains(bytes.ToLower(r.raw), []byte("x-kii-requestid")) {
			t.Fatalf("request ID header without a request ID:\n%s", r.raw)
		}
	})
}

func TestErrorCatalogue(t *testing.T) {
	all := []*apiError{errInvalidInput, errWrongCommand, errUnsupportedGrant, errUnauthorized, errInvalidClient,
		errWrongToken, errWrongPassword, errNotFound, errAppNotFound, errThingNotFound, errTargetNotFound,
		errInstallationNotFound, errStateNotFound, errCommandNotFound, errFirmwareVersionNotFound,
		errThingTypeNotFound, errMethodNotAllowed, errTooLarge, errUnsupportedMediaType, errInternal}
	codes := map[string]bool{}
	for _, e := range all {
		if codes[e.code] {
			t.Errorf("errorCode %s used twice", e.code)
		}
		codes[e.code] = true
		if http.StatusText(e.status) == "" || e.status < 400 || e.exception == "" || e.message == "" {
			t.Errorf("incomplete catalogue entry %+v", *e)
		}
		if c := e.with("x"); !errors.Is(c, e) || c.message != "x" || e.message == "x" {
			t.Errorf("with() of %s is not a copy with a new message", e.code)
		}
	}
}

func TestWriteMalformedRequest(t *testing.T) {
	w := httptest.NewRecorder()
	WriteMalformedRequest(w, errors.New("no method line"))
	if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "application/vnd.kii.InvalidInputDataException+json" ||
		!strings.Contains(w.Body.String(), `"errorCode":"INVALID_INPUT_DATA"`) || !strings.Contains(w.Body.String(), "no method line") {
		t.Fatalf("answer %d %v %s", w.Code, w.Header(), w.Body)
	}
}
