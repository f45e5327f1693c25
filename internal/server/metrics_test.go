package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
// to the thing, and a state upload over MQTT, then reads /metrics.
func TestMetrics(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()))
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
	var code int
	var out string
	for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
		code, out = get(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics = %d", code)
		}
		if strings.Contains(out, `thingif_commands_total{event="delivered"} 1`+"\n") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		`thingif_onboardings_total{transport="mqtt"} 1`,
		`thingif_requests_total{transport="mqtt",route="/thing-if/apps/{app}/onboardings",method="POST",status="200"} 1`,
		`thingif_requests_total{transport="rest",route="/thing-if/apps/{app}/targets/{target}/commands",method="POST",status="201"} 1`,
		`thingif_requests_total{transport="mqtt",route="/thing-if/apps/{app}/targets/{target}/states",method="PUT",status="204"} 1`,
		`thingif_commands_total{event="created"} 1`,
		`thingif_commands_total{event="delivered"} 1`,
		`thingif_command_push_seconds_count 1`,
		`thingif_store_seconds_count{op="write_states"} 1`,
		// The installation was cached when the thing onboarded: the
		// CONNECT did not reach the store.
		`thingif_store_cache_lookups_total{lookup="installation_hit"} 1`,
		`thingif_store_cache_lookups_total{lookup="installation_miss"} 0`,
		"# TYPE thingif_store_writes_total counter",
		`thingif_api_broker_connections 1`,
		`thingif_request_duration_seconds_count{transport="mqtt",route="/thing-if/apps/{app}/targets/{target}/states"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
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
