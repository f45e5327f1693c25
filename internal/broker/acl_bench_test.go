package broker

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// BenchmarkACLCheck measures the API broker's check of every PUBLISH and
// SUBSCRIBE topic: a session lookup, a prefix test and (for requests) a parse
// of the request topic.
func BenchmarkACLCheck(b *testing.B) {
	api := &API{}
	h := &apiHook{b: api}
	cl := &mqtt.Client{}
	const topic = "0123456789abcdef012345"
	api.sessions.put(cl, &apiSession{appID: "app1", thingID: "th.1", mqttTopic: topic,
		prefix: "p/" + topic + "/thing-if/apps/app1/"})
	for _, bc := range []struct {
		name, topic string
		write       bool
	}{
		{"subscribe own topic", topic, false},
		{"subscribe other topic", "ffffffffffffffffffffff", false},
		{"publish state request", "p/" + topic + "/thing-if/apps/app1/targets/thing:th.1/states", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			want := bc.topic == topic || bc.write
			for b.Loop() {
				if h.OnACLCheck(cl, bc.topic, bc.write) != want {
					b.Fatalf("OnACLCheck(%q) = %v", bc.topic, !want)
				}
			}
		})
	}
}
