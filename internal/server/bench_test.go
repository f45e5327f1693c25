package server

import (
	"fmt"
	"net/http"
	"testing"

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
	anon, err := dialV3(t, brokerURL(s, "onboard-tcp"), "anonymous", "type=oauth2&client_id="+testAppID, "client_secret="+testAppKey, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	ob := onboard(t, anon, "bench-state", "pw")
	anon.Close()
	ep := ob.MQTTEndpoint
	c, err := dialV3(t, brokerURL(s, "mqtt-tcp"), ep.MQTTTopic, ep.Username, ep.Password, 4, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
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

func startServerB(b *testing.B, cfg Config) *Server {
	b.Helper()
	s, err := New(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(b.Context()) })
	return s
}
