package codec

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// served is what a handler saw of a request.
type served struct {
	Method, App, Target, Alias string
	Host, RequestURI, Path     string
	Query                      string
	Header                     http.Header
	Body                       string
	ContentLength              int64
	NoBody                     bool
	Proto                      string
	CtxValue                   any
}

type ctxKey struct{}

// newMux returns a mux with thing-if style routes that record what they see
// into *got and answer like the real handlers would.
func newMux(got *served) *http.ServeMux {
	record := func(r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			panic(err)
		}
		*got = served{
			Method: r.Method, App: r.PathValue("app"), Target: r.PathValue("target"), Alias: r.PathValue("alias"),
			Host: r.Host, RequestURI: r.RequestURI, Path: r.URL.Path, Query: r.URL.RawQuery,
			Header: r.Header, Body: string(body), ContentLength: r.ContentLength, NoBody: r.Body == http.NoBody,
			Proto: r.Proto, CtxValue: r.Context().Value(ctxKey{}),
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /thing-if/apps/{app}/targets/{target}/states", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		if id := r.Header.Get("X-Kii-RequestID"); id != "" {
			w.Header().Set("X-Kii-RequestID", id)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /thing-if/apps/{app}/targets/{target}/states/aliases/{alias}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"power":true}`)
	})
	mux.HandleFunc("GET /thing-if/apps/{app}/targets/{target}/commands", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"commands":[]}`)
	})
	return mux
}

func TestNewHTTPRequest(t *testing.T) {
	ctx := context.WithValue(t.Context(), ctxKey{}, "v")
	tests := []struct {
		name    string
		topic   string
		payload string
		want    served
		answer  string
	}{
		{
			name:  "state upload",
			topic: "p/mq1/thing-if/apps/app1/targets/thing:th.1/states",
			payload: "put\nauthorization: Bearer tok\nContent-type:application/json\nx-kii-requestid: r-9\n" +
				"Host: evil.example\nContent-Length: 1\nTransfer-Encoding: chunked\n\n{\"power\":true}",
			want: served{
				Method: "PUT", App: "app1", Target: "thing:th.1",
				Host: "mqtt", RequestURI: "/thing-if/apps/app1/targets/thing:th.1/states",
				Path: "/thing-if/apps/app1/targets/thing:th.1/states",
				Header: http.Header{
					"Authorization":   {"Bearer tok"},
					"Content-Type":    {"application/json"},
					"X-Kii-Requestid": {"r-9"},
				},
				Body: `{"power":true}`, ContentLength: 14, Proto: "HTTP/1.1", CtxValue: "v",
			},
			answer: "204\r\nX-Kii-RequestID: r-9\r\n\r\n",
		},
		{
			name:    "GET without body, percent-encoded path",
			topic:   "p/mq1/thing-if/apps/app1/targets/THING:th%2E1/states/aliases/Air%20Con",
			payload: "GET\r\n\r\n",
			want: served{
				Method: "GET", App: "app1", Target: "THING:th.1", Alias: "Air Con",
				Host: "mqtt", RequestURI: "/thing-if/apps/app1/targets/THING:th%2E1/states/aliases/Air%20Con",
				Path:   "/thing-if/apps/app1/targets/THING:th.1/states/aliases/Air Con",
				Header: http.Header{}, NoBody: true, Proto: "HTTP/1.1", CtxValue: "v",
			},
			answer: "200\r\nContent-Type: application/json\r\n\r\n{\"power\":true}",
		},
		{
			name:    "query string",
			topic:   "p/mq1/thing-if/apps/app1/targets/thing:th.1/commands?bestEffortLimit=10",
			payload: "GET",
			want: served{
				Method: "GET", App: "app1", Target: "thing:th.1",
				Host: "mqtt", RequestURI: "/thing-if/apps/app1/targets/thing:th.1/commands?bestEffortLimit=10",
				Path:  "/thing-if/apps/app1/targets/thing:th.1/commands",
				Query: "bestEffortLimit=10", Header: http.Header{}, NoBody: true, Proto: "HTTP/1.1", CtxValue: "v",
			},
			answer: "200\r\nContent-Type: application/json\r\n\r\n{\"commands\":[]}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := ParseTopic(tt.topic)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewHTTPRequest(ctx, tp, []byte(tt.payload), Limits{})
			if err != nil {
				t.Fatalf("NewHTTPRequest(): %v", err)
			}
			var got served
			w := NewResponseWriter()
			newMux(&got).ServeHTTP(w, r)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("handler saw (-want +got):\n%s", diff)
			}
			if got, want := string(w.Bytes()), tt.answer; got != want {
				t.Errorf("answer=%q, want %q", got, want)
			}
		})
	}
}

func TestNewHTTPRequestMuxErrors(t *testing.T) {
	tests := []struct {
		topic, payload string
		status         int
	}{
		{"p/c/thing-if/apps/a/targets/thing:th.1/states", "DELETE\n", http.StatusMethodNotAllowed},
		{"p/c/thing-if/apps/a/nowhere", "GET\n", http.StatusNotFound},
	}
	for _, tt := range tests {
		tp, err := ParseTopic(tt.topic)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewHTTPRequest(t.Context(), tp, []byte(tt.payload), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		w := NewResponseWriter()
		newMux(new(served)).ServeHTTP(w, r)
		resp, err := ParseResponse(w.Bytes())
		if err != nil {
			t.Fatalf("ParseResponse(%q): %v", w.Bytes(), err)
		}
		if got, want := resp.StatusCode, tt.status; got != want {
			t.Errorf("%s %s: status %d, want %d", tt.payload, tt.topic, got, want)
		}
	}
}

func TestNewHTTPRequestErrors(t *testing.T) {
	good := Topic{ClientID: "c", AppID: "a", Rest: "onboardings"}
	tests := []struct {
		name    string
		ctx     context.Context
		topic   Topic
		payload string
		limits  Limits
		err     error
	}{
		{name: "bad method", topic: good, payload: "GET /x HTTP/1.1\n", err: ErrMethod},
		{name: "empty payload", topic: good, payload: "", err: ErrEmpty},
		{name: "limits passed on", topic: good, payload: "GET\nA: 1\nB: 2\n", limits: Limits{MaxHeaders: 1}, err: ErrTooManyHeaders},
		{name: "empty app", topic: Topic{ClientID: "c", Rest: "x"}, payload: "GET", err: ErrTopic},
		{name: "empty client", topic: Topic{AppID: "a", Rest: "x"}, payload: "GET", err: ErrTopic},
		{name: "dot segment", topic: Topic{ClientID: "c", AppID: "a", Rest: "x/../../b"}, payload: "GET", err: ErrTopic},
		{name: "encoded dot segment", topic: Topic{ClientID: "c", AppID: "a", Rest: "x/%2e%2E/y"}, payload: "GET", err: ErrTopic},
		{name: "bad escape", topic: Topic{ClientID: "c", AppID: "a", Rest: "x/%zz"}, payload: "GET", err: ErrTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			r, err := NewHTTPRequest(ctx, tt.topic, []byte(tt.payload), tt.limits)
			if !errors.Is(err, tt.err) || r != nil {
				t.Fatalf("NewHTTPRequest()=%v, %v; want error %v", r, err, tt.err)
			}
		})
	}
	var nilCtx context.Context // a nil context is what is tested (SA1012 otherwise)
	if _, err := NewHTTPRequest(nilCtx, good, []byte("GET"), Limits{}); err == nil {
		t.Error("NewHTTPRequest(nil ctx) succeeded")
	}
}

func TestResponseWriter(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w *ResponseWriter)
		status int
		want   string
	}{
		{
			name:   "nothing written",
			handle: func(w *ResponseWriter) {},
			status: 200,
			want:   "200\r\n\r\n",
		},
		{
			name: "header set but no status",
			handle: func(w *ResponseWriter) {
				w.Header().Set("x-kii-requestid", "r")
			},
			status: 200,
			want:   "200\r\nX-Kii-RequestID: r\r\n\r\n",
		},
		{
			name: "write without status",
			handle: func(w *ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"a":`))
				w.Write([]byte(`1}`))
			},
			status: 200,
			want:   "200\r\nContent-Type: application/json\r\n\r\n{\"a\":1}",
		},
		{
			name: "request ID echo keeps its spelling",
			handle: func(w *ResponseWriter) {
				w.Header().Set("X-Kii-RequestID", "abc") // stored as X-Kii-Requestid
				w.Header().Set("Content-Type", "application/vnd.kii.ThingNotFoundException+json")
				w.Header().Set("X-MQTT-TTL", "2147483647")
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"errorCode":"THING_NOT_FOUND"}`))
			},
			status: 404,
			want: "404\r\nContent-Type: application/vnd.kii.ThingNotFoundException+json\r\n" +
				"X-Kii-RequestID: abc\r\nX-MQTT-TTL: 2147483647\r\n\r\n{\"errorCode\":\"THING_NOT_FOUND\"}",
		},
		{
			name: "header fixed at WriteHeader",
			handle: func(w *ResponseWriter) {
				w.Header().Set("A", "1")
				w.WriteHeader(201)
				w.Header().Set("A", "2")
				w.Header().Set("B", "late")
			},
			status: 201,
			want:   "201\r\nA: 1\r\n\r\n",
		},
		{
			name: "first status wins",
			handle: func(w *ResponseWriter) {
				w.WriteHeader(403)
				w.WriteHeader(200)
				w.Write([]byte("x"))
			},
			status: 403,
			want:   "403\r\n\r\nx",
		},
		{
			name: "1xx ignored",
			handle: func(w *ResponseWriter) {
				w.WriteHeader(100)
				w.WriteHeader(103)
				w.WriteHeader(201)
			},
			status: 201,
			want:   "201\r\n\r\n",
		},
		{
			name:   "invalid status becomes 500",
			handle: func(w *ResponseWriter) { w.WriteHeader(42) },
			status: 500,
			want:   "500\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewResponseWriter()
			tt.handle(w)
			if got, want := w.Status(), tt.status; got != want {
				t.Errorf("Status()=%d, want %d", got, want)
			}
			if got, want := string(w.Bytes()), tt.want; got != want {
				t.Errorf("Bytes()=%q, want %q", got, want)
			}
		})
	}
}

func TestResponseWriterBodyNotAllowed(t *testing.T) {
	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		w := NewResponseWriter()
		w.WriteHeader(status)
		n, err := w.Write([]byte("x"))
		if n != 0 || !errors.Is(err, http.ErrBodyNotAllowed) {
			t.Errorf("status %d: Write()=%d, %v; want 0, %v", status, n, err, http.ErrBodyNotAllowed)
		}
		if got, want := string(w.Bytes()), AppendResponse(nil, status, nil, nil); got != string(want) {
			t.Errorf("status %d: Bytes()=%q, want %q", status, got, want)
		}
	}
}

func BenchmarkNewHTTPRequest(b *testing.B) {
	tp, err := ParseTopic("p/mq1/thing-if/apps/app1/targets/thing:th.1/states")
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewHTTPRequest(ctx, tp, stateUpload, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestResponseWriterDropsContentLength(t *testing.T) {
	w := NewResponseWriter()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(200)
	w.Write([]byte("{}"))
	if got, want := string(w.Bytes()), "200\r\nContent-Type: application/json\r\n\r\n{}"; got != want {
		t.Fatalf("Bytes()=%q, want %q", got, want)
	}
	if w.Header().Get("Content-Length") != "2" {
		t.Fatal("Bytes changed the handler's header map")
	}
}
