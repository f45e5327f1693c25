package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

// startThingif runs an in-process server on loopback with cheap password
// hashing and returns a Config pointed at it.
func startThingif(t *testing.T) Config {
	t.Helper()
	srv, err := server.New(t.Context(), server.Config{
		DataDir:    t.TempDir(),
		Apps:       []server.AppCredential{{ID: "bench", Key: "bench-key"}},
		PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", MQTTTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		MQTTTLS: "127.0.0.1:0", MQTTWS: "127.0.0.1:0", MQTTWSS: "127.0.0.1:0",
		PasswordCost: secret.Cost{Time: 1, Memory: 64, Threads: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(context.Background()) })
	return Config{
		Onboard: srv.Addr("onboard-tcp").String(), REST: "http://" + srv.Addr("http").String(),
		AppID: "bench", AppKey: "bench-key", PID: os.Getpid(), Timeout: 10 * time.Second,
	}
}

// metric returns a metric of r or fails.
func metric(t *testing.T, r *Result, name string) float64 {
	t.Helper()
	v, ok := r.Metric(name)
	if !ok {
		t.Fatalf("%s: no metric %q in %+v", r.Scenario, name, r.Metrics)
	}
	return v
}

// TestScenariosAgainstThingif runs each thingif scenario small and checks
// the counts, never the timings.
func TestScenariosAgainstThingif(t *testing.T) {
	base := startThingif(t)
	base.ThingsFile = t.TempDir() + "/things.json"
	tests := []struct {
		name   string
		cfg    func(c *Config)
		checks map[string]float64 // metric → exact value; -1: present and > 0
	}{
		{"onboard", func(c *Config) { c.N, c.Concurrency = 20, 4 }, map[string]float64{"onboardings/s": -1}},
		{"reonboard", func(c *Config) { c.N, c.Concurrency = 20, 4 }, map[string]float64{"re-onboardings/s": -1, "first onboardings/s": -1}},
		{"connect", func(c *Config) { c.N, c.Hold, c.Sources = 20, time.Millisecond, 3 }, map[string]float64{"connects/s (CONNECT+SUBSCRIBE)": -1, "server RSS after": -1}},
		{"connect", func(c *Config) { c.N, c.Hold, c.Transport = 5, time.Millisecond, "tls" }, map[string]float64{"connects/s (CONNECT+SUBSCRIBE)": -1}},
		{"connect", func(c *Config) { c.N, c.Hold, c.Transport = 5, time.Millisecond, "ws" }, map[string]float64{"connects/s (CONNECT+SUBSCRIBE)": -1}},
		{"connect", func(c *Config) { c.N, c.Hold, c.Transport = 5, time.Millisecond, "wss" }, map[string]float64{"connects/s (CONNECT+SUBSCRIBE)": -1}},
		{"push", func(c *Config) { c.K, c.Rate, c.Duration = 20, 200, 250*time.Millisecond },
			map[string]float64{"commands sent": 50, "REST accepted (201)": 50, "pushes received": 50, "action results answered (DONE)": 50}},
		{"state", func(c *Config) { c.K, c.Duration = 5, 200*time.Millisecond }, map[string]float64{"uploads answered 204": -1, "uploads answered otherwise": 0}},
	}
	for _, tt := range tests {
		cfg := base
		tt.cfg(&cfg)
		t.Run(tt.name+"/"+cmp.Or(cfg.Transport, "tcp"), func(t *testing.T) {
			cfg.Scenario = tt.name
			res, err := Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.checks {
				got := metric(t, res, name)
				if want < 0 && got <= 0 || want >= 0 && got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
		})
	}
}

// TestBaselinesAgainstMochi runs pubsub, echo and connect against a plain
// mochi broker.
func TestBaselinesAgainstMochi(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveMochi(ctx, addr, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, tt := range []struct {
		cfg    Config
		metric string
		want   float64
	}{
		{Config{Scenario: "pubsub", K: 10, Rate: 200, Duration: 250 * time.Millisecond}, "messages received", 50},
		{Config{Scenario: "echo", K: 5, Duration: 200 * time.Millisecond}, "round trips/s", -1},
		{Config{Scenario: "connect", N: 20, Hold: time.Millisecond}, "connects/s (CONNECT+SUBSCRIBE)", -1},
	} {
		t.Run(tt.cfg.Scenario, func(t *testing.T) {
			tt.cfg.Broker, tt.cfg.Timeout = addr, 10*time.Second
			res, err := Run(t.Context(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := metric(t, res, tt.metric); tt.want < 0 && got <= 0 || tt.want >= 0 && got != tt.want {
				t.Errorf("%s = %v, want %v", tt.metric, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"pubsub on loopback", Config{Scenario: "pubsub", Broker: "127.0.0.5:1883"}, true},
		{"pubsub elsewhere", Config{Scenario: "pubsub", Broker: "10.0.0.1:1883"}, false},
		{"push REST elsewhere", Config{Scenario: "push", Onboard: "127.0.0.1:1", AppID: "a", AppKey: "k", REST: "http://example.com"}, false},
		{"unknown scenario", Config{Scenario: "flood"}, false},
		{"unbounded", Config{Scenario: "echo", Broker: "localhost:1", Duration: 2 * time.Hour}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestPace: events come in order, each at or after the time it was due
// (never early: a latency counted from due would be short), spaced by the
// rate; closing stop ends the run.
func TestPace(t *testing.T) {
	const rate, n = 2000.0, 200
	var got []time.Time
	pace(nil, rate, n, func(i int, due time.Time) {
		if now := time.Now(); now.Before(due) {
			t.Errorf("event %d fired %v before it was due", i, due.Sub(now))
		}
		if i != len(got) {
			t.Fatalf("event %d after %d events", i, len(got))
		}
		got = append(got, due)
	})
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i := 1; i < n; i++ {
		if d := got[i].Sub(got[i-1]); d != time.Duration(float64(time.Second)/rate) {
			t.Fatalf("events %d and %d due %v apart", i-1, i, d)
		}
	}
	stop := make(chan struct{})
	fired := 0
	pace(stop, 1000, 1000000, func(int, time.Time) {
		if fired++; fired == 5 {
			close(stop)
		}
	})
	if fired != 5 {
		t.Fatalf("%d events after stop closed at the 5th", fired)
	}
}

// serveMochi runs a plain mochi-mqtt broker, allowing everyone, on addr
// until ctx ends: a routing broker for the scenarios that need one (pubsub,
// echo), in the test only, so the binary does not link mochi's broker.
func serveMochi(ctx context.Context, addr string, log *slog.Logger) error {
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: log})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return fmt.Errorf("mochi: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return fmt.Errorf("mochi: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("mochi: %w", err)
	}
	<-ctx.Done()
	if err := srv.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("mochi: %w", err)
	}
	return nil
}

// allowAll lets every client connect, publish and subscribe, as mochi's
// hooks/auth AllowHook does (which would pull in a YAML module).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
