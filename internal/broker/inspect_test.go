package broker

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// nextEvent waits for the watcher's next event.
func nextEvent(t *testing.T, w *Watcher, what string) Event {
	t.Helper()
	select {
	case e, ok := <-w.Events():
		if !ok {
			t.Fatalf("%s: watcher closed", what)
		}
		return e
	case <-time.After(waitFor):
		t.Fatalf("%s: no event", what)
	}
	return Event{}
}

// TestTapAPIBroker: a watcher of a thing sees its CONNECT and CONNACK, its
// SUBSCRIBE, a request with its answer, a QoS 1 push and its PUBACK, and the
// disconnect; none of them carries the endpoint password or username, and
// secrets in bodies are redacted.
func TestTapAPIBroker(t *testing.T) {
	tap := NewTap()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"accessToken":"tok-secret","state":"ok"}`))
	})
	f := newFixture(t, Config{Tap: tap, Handler: handler})
	other := tap.Watch(Filter{Broker: TapAPI, AppID: "app", ThingID: "th.other"}, 16)
	defer other.Close()
	w := tap.Watch(Filter{Broker: TapAPI, AppID: "app", ThingID: f.thing.ID}, 64)
	defer w.Close()

	c, msgs := f.dial(t, "tcp://"+f.tcp.Addr().String())
	if tok := c.Subscribe(f.inst.MQTTTopic, 1, nil); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	tok := c.Publish("p/"+f.inst.MQTTTopic+"/thing-if/apps/app/targets/thing:th.1/states", 1, false,
		"PUT\r\nX-Kii-RequestID: r1\r\nContent-Type: application/json\r\n\r\n{\"power\":true,\"password\":\"pw-secret\"}")
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatal("publish")
	}
	cmd := f.newCommand(t, 1)
	f.api.Push(context.Background(), cmd)
	select {
	case <-msgs: // paho acknowledges it
	case <-time.After(waitFor):
		t.Fatal("no push")
	}

	var seen []Event
	for _, want := range []string{EventConnect, EventConnack, EventSubscribe} {
		e := nextEvent(t, w, want)
		if got := e.Kind; got != want {
			t.Fatalf("event %d kind=%s, want %s (%+v)", len(seen), got, want, e)
		}
		seen = append(seen, e)
	}
	// The request's answer, the push and the PUBACK follow; the answer
	// (one write with the request's PUBACK) may race nothing else.
	kinds := map[string]Event{}
	for len(kinds) < 3 {
		e := nextEvent(t, w, "request, push, puback")
		kinds[e.Kind] = e
		seen = append(seen, e)
	}
	c.Disconnect(0)
	d := nextEvent(t, w, "disconnect")
	seen = append(seen, d)

	req := kinds[EventRequest]
	if got, want := req.Method+" "+req.Path+" "+http.StatusText(req.Status), "PUT /thing-if/apps/app/targets/thing:th.1/states OK"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	if got, want := req.Body, `{"password":"[redacted]","power":true}`; got != want {
		t.Errorf("request body %s, want %s", got, want)
	}
	if got, want := req.Answer, `{"accessToken":"[redacted]","state":"ok"}`; got != want {
		t.Errorf("answer %s, want %s", got, want)
	}
	push := kinds[EventPush]
	if got, want := push.Detail, "command "+cmd.ID; got != want {
		t.Errorf("push detail %q, want %q", got, want)
	}
	if got, want := push.QoS, byte(1); got != want {
		t.Errorf("push qos %d, want %d", got, want)
	}
	if got, want := kinds[EventPuback].PacketID, push.PacketID; got != want || got == 0 {
		t.Errorf("puback id %d, want push id %d", got, want)
	}
	if got, want := d.Kind, EventDisconnect; got != want {
		t.Errorf("last kind %s, want %s", got, want)
	}
	for _, e := range seen {
		all := e.Detail + e.Body + e.Answer + e.Topic
		for _, secret := range []string{f.password, f.inst.Username, "pw-secret", "tok-secret"} {
			if strings.Contains(all, secret) {
				t.Errorf("%s event shows secret %q: %+v", e.Kind, secret, e)
			}
		}
	}
	select {
	case e := <-other.Events():
		t.Errorf("another thing's watcher got %+v", e)
	default:
	}
}

// TestTapDropsWhenFull: a watcher that does not read loses the events past
// its buffer and counts them; Close ends it and stops the tap's work.
func TestTapDropsWhenFull(t *testing.T) {
	tap := NewTap()
	if tap.on() {
		t.Fatal("tap on with no watcher")
	}
	w := tap.Watch(Filter{Broker: TapAPI, AppID: "a"}, 2)
	if got, want := tap.Watchers(), 1; got != want {
		t.Fatalf("watchers=%d, want %d", got, want)
	}
	for range 5 {
		tap.publish(Event{Broker: TapAPI, AppID: "a", Kind: EventPuback})
	}
	tap.publish(Event{Broker: TapAPI, AppID: "b", Kind: EventPuback}) // not this app's
	if got, want := w.Dropped(), uint64(3); got != want {
		t.Errorf("dropped=%d, want %d", got, want)
	}
	w.Close()
	w.Close()
	if tap.on() {
		t.Error("tap on after Close")
	}
	n := 0
	for range w.Events() {
		n++
	}
	if got, want := n, 2; got != want {
		t.Errorf("buffered events=%d, want %d", got, want)
	}
}

func TestRedactBody(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"onboarding request", `{"vendorThingID":"v","thingPassword":"p","thingType":"T"}`, `{"thingPassword":"[redacted]","thingType":"T","vendorThingID":"v"}`},
		{"onboarding answer", `{"accessToken":"t","mqttEndpoint":{"username":"u","password":"p","mqttTopic":"m"}}`,
			`{"accessToken":"[redacted]","mqttEndpoint":{"mqttTopic":"m","password":"[redacted]","username":"[redacted]"}}`},
		{"nested array", `[{"a":[{"client_secret":"s","n":1.50}]}]`, `[{"a":[{"client_secret":"[redacted]","n":1.50}]}]`},
		{"not json", `password=hunter2`, `[16 bytes, not JSON]`},
		{"too large", `"` + strings.Repeat("x", maxTapBody) + `"`, `[4098+ bytes, not shown]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactBody([]byte(tc.in)); got != tc.want {
				t.Errorf("redactBody(%.40q)=%s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

// BenchmarkTap: the hooks' cost with nobody watching (the one check), and
// the cost of describing a push to one watcher.
func BenchmarkTap(b *testing.B) {
	e := Event{Broker: TapAPI, AppID: "a", ThingID: "th.1", Kind: EventPuback}
	b.Run("off", func(b *testing.B) {
		tap := NewTap()
		n := 0
		for b.Loop() {
			if tap.on() {
				n++
			}
		}
		if n != 0 {
			b.Fatal("tap on")
		}
	})
	b.Run("one watcher", func(b *testing.B) {
		tap := NewTap()
		w := tap.Watch(Filter{Broker: TapAPI, AppID: "a", ThingID: "th.1"}, 1024)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range w.Events() {
			}
		}()
		for b.Loop() {
			if tap.on() {
				tap.publish(e)
			}
		}
		w.Close()
		<-done
	})
}
