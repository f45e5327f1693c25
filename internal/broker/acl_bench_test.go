package broker

import (
	"log/slog"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/endpoint"
)

// BenchmarkACLCheck measures the API broker's check of every PUBLISH and
// SUBSCRIBE topic: a session lookup, a prefix test and (for requests) a parse
// of the request topic.
func BenchmarkACLCheck(b *testing.B) {
	api := &API{cfg: APIConfig{Config: Config{Logger: slog.New(slog.DiscardHandler)}}}
	h := apiHandler{b: api}
	cl := &endpoint.Conn{}
	const topic = "0123456789abcdef012345"
	cl.SetSession(&apiSession{appID: "app1", thingID: "th.1", mqttTopic: topic,
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
				var got bool
				if bc.write {
					got = allowPublish(api.cfg.Logger, cl, apiSessionOf(cl).prefix, bc.topic)
				} else {
					got = h.Subscribe(cl, packets.Subscription{Filter: bc.topic})
				}
				if got != want {
					b.Fatalf("check of %q = %v", bc.topic, got)
				}
			}
		})
	}
}
