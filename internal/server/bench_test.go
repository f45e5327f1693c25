package server

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/secret"
)

// BenchmarkOnboardingRoundTrip measures one onboarding over MQTT on
// loopback, request PUBLISH to answer, for a new thing each time, with the
// default password hashing cost.
func BenchmarkOnboardingRoundTrip(b *testing.B) {
	t := b
	cfg := testConfig(t, b.TempDir())
	cfg.PasswordCost = secret.DefaultCost
	s := startServerB(b, cfg)
	c, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	i := 0
	for b.Loop() {
		i++
		payload := fmt.Sprintf("POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n%s", onboardingBody(fmt.Sprintf("bench-%d", i), "pw"))
		c.c.Publish(onboardTopic, 1, false, payload)
		m := <-c.Messages()
		if m.Payload[0] != '2' {
			b.Fatalf("answer %q", m.Payload)
		}
	}
}

// BenchmarkStateUploadRoundTrip measures one state upload over MQTT on
// loopback (PUT states, QoS 1, stored durably), request PUBLISH to answer.
func BenchmarkStateUploadRoundTrip(b *testing.B) {
	t := b
	s := startServerB(b, testConfig(t, b.TempDir()))
	ob, c := connectedThing(b, s, "bench-state")
	topic := apiTopic(ob, "targets/thing:"+ob.ThingID+"/states")
	h := http.Header{"Authorization": {"Bearer " + ob.AccessToken}, "Content-Type": {"application/json"}}
	i := 0
	for b.Loop() {
		i++
		c.c.Publish(topic, 1, false, codec.AppendRequest(nil, "PUT", h, fmt.Appendf(nil, `{"power":true,"presetTemperature":%d}`, i%30)))
		m := <-c.Messages()
		if string(m.Payload[:3]) != "204" {
			b.Fatalf("answer %q", m.Payload)
		}
	}
}

// connectedThing onboards a thing and connects it to the API broker
// (MQTT 3.1.1), closing the connection when the benchmark ends.
func connectedThing(b *testing.B, s *Server, vendorThingID string) (onboardResult, *v3Client) {
	b.Helper()
	anon, err := dialV3(b, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	ob := onboard(b, anon, vendorThingID, "pw")
	anon.Close()
	ep := ob.MQTTEndpoint
	c, err := dialV3(b, brokerURL(s, "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return ob, c
}

func startServerB(b *testing.B, cfg Config) *Server {
	b.Helper()
	s, err := New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(b.Context()) })
	return s
}

// BenchmarkCommandPushRoundTrip measures one command from the REST POST to
// the thing receiving its push (QoS 1 subscription, acknowledged), one at
// a time on loopback; it also reports the time to the 201.
func BenchmarkCommandPushRoundTrip(b *testing.B) {
	t := b
	s := startServerB(b, testConfig(t, b.TempDir()))
	ob, c := connectedThing(b, s, "bench-push")
	ep := ob.MQTTEndpoint
	c.Subscribe(t, ep.MQTTTopic, 1)
	admin := adminToken(t, s)
	url := fmt.Sprintf("http://127.0.0.1:%d/thing-if/apps/%s/targets/thing:%s/commands", s.Port("http"), testAppID, ob.ThingID)
	body := []byte(`{"schema":"S","schemaVersion":1,"issuer":"user:u1","actions":[{"turnPower":{"power":true}}]}`)
	var toCreated time.Duration
	for b.Loop() {
		start := time.Now()
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			b.Fatalf("status %d", res.StatusCode)
		}
		toCreated += time.Since(start)
		<-c.Messages()
	}
	b.ReportMetric(float64(toCreated.Microseconds())/float64(b.N), "µs-to-201/op")
}

// BenchmarkInstrument measures what the metrics add to one request: the
// status writer, the request counter and the duration histogram, around a
// mux whose handler only answers 204, for a route and label set that
// already exist (the steady state). "bare" is the mux alone; the cost is
// the difference.
func BenchmarkInstrument(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /thing-if/apps/{app}/targets/{target}/states", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", mux},
		{"instrumented", newServerMetrics(slog.New(slog.DiscardHandler)).instrument("mqtt", mux)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := http.NewRequest("PUT", "/thing-if/apps/a/targets/thing:t/states", nil)
			if err != nil {
				b.Fatal(err)
			}
			w := discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the instrumentation, not a recorder.
type discardWriter struct{ header http.Header }

func (w discardWriter) Header() http.Header         { return w.header }
func (w discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w discardWriter) WriteHeader(int)             {}
