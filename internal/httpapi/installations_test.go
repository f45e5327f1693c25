package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/thingif/thingif/internal/secret"
)

// TestInstallationFlow follows Kii's C SDK (PROTOCOL.md §8.1): anonymous
// token, onboarding, installation, mqtt-endpoint.
func TestInstallationFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	anon := e.appToken(testApp, "dummy")
	r := e.onboardRaw(anon, "v-1", "pw", "")
	check(t, r, 200, "")
	var o onboarded
	r.decode(t, &o)
	// The onboarding answer's mqttEndpoint keeps PROTOCOL.md §2's fields.
	if bytes.Contains(r.body, []byte("X-MQTT-TTL")) {
		t.Fatalf("onboarding answer carries X-MQTT-TTL: %s", r.body)
	}

	r = e.do("POST", "/api/apps/"+testApp+"/installations", `{"deviceType":"MQTT","development":"false"}`,
		with(bearer(o.AccessToken), "Content-Type", "application/vnd.kii.InstallationCreationRequest+json", "X-Kii-Appid", testApp, "X-Kii-Appkey", "k")...)
	check(t, r, 201, "")
	var created struct{ InstallationID string }
	r.decode(t, &created)
	in, err := e.st.Installation(ctx, testApp, created.InstallationID)
	if err != nil {
		t.Fatal(err)
	}
	if in.ThingID != o.ThingID || in.DeviceType != "MQTT" || len(in.MQTTTopic) > 23 || in.PasswordHash != "" {
		t.Fatalf("stored installation %+v", in)
	}

	for i := range 2 {
		r = e.do("GET", "/api/apps/"+testApp+"/installations/"+created.InstallationID+"/mqtt-endpoint", "", bearer(o.AccessToken)...)
		check(t, r, 200, "")
		var ep endpointJSON
		r.decode(t, &ep)
		if ep.InstallationID != in.ID || ep.Username != in.Username || ep.MQTTTopic != in.MQTTTopic || ep.Password == "" ||
			ep.Host != testBroker.Host || ep.PortTCP != testBroker.PortTCP || ep.PortSSL != testBroker.PortSSL || ep.TTL != 2147483647 {
			t.Fatalf("endpoint %d: %s", i, r.body)
		}
		if !bytes.Contains(r.raw, []byte("\r\nX-MQTT-TTL: 2147483647\r\n")) {
			t.Fatalf("answer lacks X-MQTT-TTL spelled exactly:\n%s", r.raw)
		}
		// Kii's C SDK reads the TTL from the body field, an integer.
		if !bytes.Contains(r.body, []byte(`"X-MQTT-TTL":2147483647`)) {
			t.Fatalf("endpoint %d body lacks \"X-MQTT-TTL\":2147483647: %s", i, r.body)
		}
		stored, err := e.st.Installation(ctx, testApp, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.PasswordHash != secret.HashToken(ep.Password) || stored.ExpiresAt.IsZero() {
			t.Fatalf("endpoint %d: stored %+v does not match password", i, stored)
		}
	}
}

func TestInstallationErrors(t *testing.T) {
	e := newEnv(t)
	o := e.onboard("v-1", "pw")
	other := e.onboard("v-2", "pw")
	admin := e.appToken(testApp, testAppKey)
	anon := e.appToken(testApp, "dummy")
	post := "/api/apps/" + testApp + "/installations"
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"development bool", "POST", post, o.AccessToken, `{"deviceType":"MQTT","development":true}`, 201, ""},
		{"no development", "POST", post, o.AccessToken, `{"deviceType":"MQTT"}`, 201, ""},
		{"admin with thing", "POST", post, admin, fmt.Sprintf(`{"deviceType":"MQTT","thingID":%q}`, o.ThingID), 201, ""},
		{"admin without thing", "POST", post, admin, `{"deviceType":"MQTT"}`, 400, "INVALID_INPUT_DATA"},
		{"admin unknown thing", "POST", post, admin, `{"deviceType":"MQTT","thingID":"th.nope"}`, 404, "THING_NOT_FOUND"},
		{"thing for another", "POST", post, o.AccessToken, fmt.Sprintf(`{"deviceType":"MQTT","thingID":%q}`, other.ThingID), 403, "WRONG_TOKEN"},
		{"anonymous", "POST", post, anon, `{"deviceType":"MQTT"}`, 403, "WRONG_TOKEN"},
		{"android", "POST", post, o.AccessToken, `{"deviceType":"ANDROID"}`, 400, "INVALID_INPUT_DATA"},
		{"no device type", "POST", post, o.AccessToken, `{}`, 400, "INVALID_INPUT_DATA"},
		{"bad development", "POST", post, o.AccessToken, `{"deviceType":"MQTT","development":"maybe"}`, 400, "INVALID_INPUT_DATA"},
		{"no token", "POST", post, "", `{"deviceType":"MQTT"}`, 401, "UNAUTHORIZED"},
		{"unknown endpoint", "GET", post + "/nope/mqtt-endpoint", o.AccessToken, "", 404, "INSTALLATION_NOT_FOUND"},
		{"another's endpoint", "GET", post + "/" + other.MQTTEndpoint.InstallationID + "/mqtt-endpoint", o.AccessToken, "", 403, "WRONG_TOKEN"},
		{"admin endpoint", "GET", post + "/" + other.MQTTEndpoint.InstallationID + "/mqtt-endpoint", admin, "", 200, ""},
		{"anonymous endpoint", "GET", post + "/" + o.MQTTEndpoint.InstallationID + "/mqtt-endpoint", anon, "", 403, "WRONG_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"Content-Type", "application/json"}
			if tt.token != "" {
				h = with(h, bearer(tt.token)...)
			}
			r := e.do(tt.method, tt.path, tt.body, h...)
			check(t, r, tt.status, tt.code)
			if tt.method == "GET" && tt.status == 200 {
				if ttl := r.header.Get("X-MQTT-TTL"); ttl != strconv.Itoa(2147483647) {
					t.Fatalf("X-MQTT-TTL %q", ttl)
				}
			}
		})
	}
	// A refused endpoint request leaves the endpoint as it was.
	in, err := e.st.Installation(context.Background(), testApp, o.MQTTEndpoint.InstallationID)
	if err != nil {
		t.Fatal(err)
	}
	if in.PasswordHash != secret.HashToken(o.MQTTEndpoint.Password) {
		t.Fatal("a refused request rotated the endpoint password")
	}
}
