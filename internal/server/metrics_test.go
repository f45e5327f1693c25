package server

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetrics drives one onboarding over MQTT, a command over REST pushed
// to the thing, and a state upload over MQTT, then reads /metrics and
// parses it as Prometheus does.
func TestMetrics(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Node = "node-a"
	s := startServer(t, cfg)
	base := "http://" + s.Addr("http").String()
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+p); code != 200 {
			t.Errorf("GET %s = %d %q, want 200", p, code, body)
		}
	}

	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	ob := onboard(t, anon, "metrics-thing", "pw")
	ep := ob.MQTTEndpoint
	c, err := dialV3(t, brokerURL(s, "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(t, ep.MQTTTopic, 1)
	admin := adminToken(t, s)
	if st := rest(t, s, "POST", "/thing-if/apps/"+testAppID+"/targets/thing:"+ob.ThingID+"/commands", admin, "application/json",
		`{"schema":"s","schemaVersion":1,"issuer":"user:me","actions":[{"turnPower":{"power":true}}]}`, nil); st != 201 {
		t.Fatalf("POST commands: %d", st)
	}
	select {
	case <-c.Messages():
	case <-time.After(waitFor):
		t.Fatal("no push")
	}
	c.Publish(t, apiTopic(ob, "targets/thing:"+ob.ThingID+"/states"), 1,
		[]byte("PUT\nContent-Type: application/json\n\n{\"power\":true}"))
	select {
	case m := <-c.Messages():
		if !strings.HasPrefix(string(m.Payload), "204") {
			t.Fatalf("state upload answer %q", m.Payload)
		}
	case <-time.After(waitFor):
		t.Fatal("no answer to the state upload")
	}

	// A QoS 1 push becomes DELIVERED when the thing's PUBACK has been
	// handled, after the push itself arrived: wait for it.
	var fams map[string]*dto.MetricFamily
	var text string
	for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
		fams, text = scrape(t, base+"/metrics")
		if v, _ := sample(fams, "thingif_commands_total", "event", "delivered"); v == 1 || time.Now().After(deadline) {
			break
		}
	}
	for _, tc := range []struct {
		name   string
		labels []string // name, value pairs; the sample must have these
		want   float64  // a histogram's sample count
	}{
		{"thingif_onboardings_total", []string{"transport", "mqtt"}, 1},
		{"thingif_requests_total", []string{"transport", "mqtt", "route", "/thing-if/apps/{app}/onboardings", "method", "POST", "status", "200"}, 1},
		{"thingif_requests_total", []string{"transport", "rest", "route", "/thing-if/apps/{app}/targets/{target}/commands", "method", "POST", "status", "201"}, 1},
		{"thingif_requests_total", []string{"transport", "mqtt", "route", "/thing-if/apps/{app}/targets/{target}/states", "method", "PUT", "status", "204"}, 1},
		{"thingif_commands_total", []string{"event", "created"}, 1},
		{"thingif_commands_total", []string{"event", "delivered"}, 1},
		{"thingif_command_push_seconds", nil, 1},
		{"thingif_store_seconds", []string{"op", "write_states"}, 1},
		// The installation was cached when the thing onboarded: the
		// CONNECT did not reach the store.
		{"thingif_store_cache_lookups_total", []string{"lookup", "installation_hit"}, 1},
		{"thingif_store_cache_lookups_total", []string{"lookup", "installation_miss"}, 0},
		{"thingif_api_broker_connections", nil, 1},
		{"thingif_onboarding_broker_connections", nil, 1},
		{"thingif_node_info", []string{"node", "node-a", "store", "sqlite"}, 1},
		{"thingif_request_duration_seconds", []string{"transport", "mqtt", "route", "/thing-if/apps/{app}/targets/{target}/states"}, 1},
	} {
		t.Run(tc.name+fmt.Sprint(tc.labels), func(t *testing.T) {
			got, ok := sample(fams, tc.name, tc.labels...)
			if !ok {
				t.Fatalf("no %s%v sample", tc.name, tc.labels)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}
	// At least one store write, in at most as many transactions.
	writes, _ := sample(fams, "thingif_store_writes_total", "kind", "write")
	txs, _ := sample(fams, "thingif_store_writes_total", "kind", "transaction")
	if writes < 1 || txs < 1 || txs > writes {
		t.Errorf("thingif_store_writes_total: %v writes in %v transactions", writes, txs)
	}
	// The latency histograms keep their buckets from 100 µs: a store
	// write takes well under the client's default first bucket (5 ms).
	h := fams["thingif_store_seconds"].GetMetric()[0].GetHistogram()
	var les []float64
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) { // the parser adds +Inf
			les = append(les, b.GetUpperBound())
		}
	}
	// The bounds dashboards were built on (the hand-written registry's).
	want := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}
	if diff := cmp.Diff(want, les); diff != "" {
		t.Errorf("thingif_store_seconds buckets (-want +got):\n%s", diff)
	}
	// Every family, by now each with a sample, with its type and help,
	// and the standard Go and process collectors' (internal/bench reads
	// go_goroutines and the go_memstats_* ones).
	for _, tc := range []struct {
		name string
		typ  dto.MetricType
	}{
		{"thingif_requests_total", dto.MetricType_COUNTER},
		{"thingif_request_duration_seconds", dto.MetricType_HISTOGRAM},
		{"thingif_onboardings_total", dto.MetricType_COUNTER},
		{"thingif_commands_total", dto.MetricType_COUNTER},
		{"thingif_command_push_seconds", dto.MetricType_HISTOGRAM},
		{"thingif_store_seconds", dto.MetricType_HISTOGRAM},
		{"thingif_store_writes_total", dto.MetricType_COUNTER},
		{"thingif_store_cache_lookups_total", dto.MetricType_COUNTER},
		{"thingif_api_broker_connections", dto.MetricType_GAUGE},
		{"thingif_onboarding_broker_connections", dto.MetricType_GAUGE},
		{"go_goroutines", dto.MetricType_GAUGE},
		{"go_memstats_heap_inuse_bytes", dto.MetricType_GAUGE},
		{"go_memstats_stack_inuse_bytes", dto.MetricType_GAUGE},
		{"go_memstats_sys_bytes", dto.MetricType_GAUGE},
		{"go_gc_duration_seconds", dto.MetricType_SUMMARY},
		{"process_resident_memory_bytes", dto.MetricType_GAUGE},
		{"process_open_fds", dto.MetricType_GAUGE},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fams[tc.name]
			if f == nil {
				t.Fatalf("no %s", tc.name)
			}
			if got, want := f.GetType(), tc.typ; got != want {
				t.Errorf("type %v, want %v", got, want)
			}
			if f.GetHelp() == "" {
				t.Error("no help")
			}
		})
	}
	// internal/bench's scrape reads unlabelled samples as "name value".
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"} {
		if !strings.Contains(text, "\n"+name+" ") {
			t.Errorf("no unlabelled %q line", name)
		}
	}
}

// scrape gets url and parses it as the Prometheus text format, returning
// the families by name and the text.
func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, body := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s = %d %q", url, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", url, err, body)
	}
	return fams, body
}

// sample returns the value of the sample of family name that has the
// given label name, value pairs (a histogram's: its count), and whether
// there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestPprofOptIn: no profiles unless Config.Pprof is set.
func TestPprofOptIn(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
	if code, _ := get(t, "http://"+s.Addr("http").String()+"/debug/pprof/"); code != 404 {
		t.Errorf("pprof on the REST port: %d, want 404", code)
	}
	if s.Addr("pprof") != nil {
		t.Error("pprof listener without Config.Pprof")
	}
	cfg := testConfig(t, t.TempDir())
	cfg.Pprof = "127.0.0.1:0"
	s = startServer(t, cfg)
	if code, _ := get(t, "http://"+s.Addr("pprof").String()+"/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Errorf("pprof: %d, want 200", code)
	}
}

// TestMetricsLoopbackOnly: /metrics is for loopback clients unless made
// public; others get the API's JSON 404, as for any unknown path.
func TestMetricsLoopbackOnly(t *testing.T) {
	for _, public := range []bool{false, true} {
		cfg := testConfig(t, t.TempDir())
		cfg.MetricsPublic = public
		s := startServer(t, cfg)
		h := s.opsHandler(s.handler)
		for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000", "192.0.2.7:5000"} {
			r := httptest.NewRequest("GET", "/metrics", nil)
			r.RemoteAddr = remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			want := 200
			if !public && remote == "192.0.2.7:5000" {
				want = 404
			}
			if w.Code != want {
				t.Errorf("public=%v remote %s: %d, want %d (%s)", public, remote, w.Code, want, w.Body.String())
			}
			if want == 404 && strings.Contains(w.Body.String(), "go_goroutines") {
				t.Errorf("metrics leaked to %s", remote)
			}
		}
	}
}

// TestInstrumentEvents: each request counts once under its labels, every
// time (the second of each pair comes from the series cache), and the
// onboarding and command events count only on their route, method and
// status.
func TestInstrumentEvents(t *testing.T) {
	m := newServerMetrics(slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	for _, p := range []string{
		"/thing-if/apps/{app}/onboardings",
		"/thing-if/apps/{app}/targets/{target}/commands",
		"/thing-if/apps/{app}/targets/{target}/commands/{cid}/action-results",
	} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			code, _ := strconv.Atoi(r.URL.Query().Get("status"))
			w.WriteHeader(code)
		})
	}
	h := m.instrument("rest", mux)
	for _, req := range []struct{ method, path string }{
		{"POST", "/thing-if/apps/a/onboardings?status=200"},
		{"POST", "/thing-if/apps/a/onboardings?status=400"},
		{"POST", "/thing-if/apps/a/targets/thing:t/commands?status=201"},
		{"GET", "/thing-if/apps/a/targets/thing:t/commands?status=201"},
		{"PUT", "/thing-if/apps/a/targets/thing:t/commands/c/action-results?status=204"},
		{"PUT", "/thing-if/apps/a/targets/thing:t/commands/c/action-results?status=409"},
		{"BREW", "/nowhere?status=404"},
	} {
		for range 2 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
		}
	}
	gathered, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		fams[f.GetName()] = f
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"thingif_onboardings_total", []string{"transport", "rest"}, 2},
		{"thingif_commands_total", []string{"event", "created"}, 2},
		{"thingif_commands_total", []string{"event", "results"}, 2},
		{"thingif_requests_total", []string{"route", "/thing-if/apps/{app}/onboardings", "status", "400"}, 2},
		{"thingif_requests_total", []string{"route", "/thing-if/apps/{app}/targets/{target}/commands", "method", "GET", "status", "201"}, 2},
		{"thingif_requests_total", []string{"route", "unmatched", "method", "other", "status", "404"}, 2},
		{"thingif_request_duration_seconds", []string{"transport", "rest", "route", "/thing-if/apps/{app}/onboardings"}, 4},
	} {
		t.Run(tc.name+fmt.Sprint(tc.labels), func(t *testing.T) {
			got, ok := sample(fams, tc.name, tc.labels...)
			if !ok {
				t.Fatalf("no %s%v sample", tc.name, tc.labels)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}
}
