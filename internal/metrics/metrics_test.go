package metrics

import (
	"strings"
	"testing"
)

func TestExposition(t *testing.T) {
	r := New()
	c := r.Counter("x_requests_total", "Requests.", "route", "status")
	c.With("/a/{b}", "200").Inc()
	c.With("/a/{b}", "200").Add(2)
	c.With(`q"uote\`, "500").Inc()
	h := r.Histogram("x_seconds", "Latency.", []float64{0.1, 1}, "op")
	h.With("put").Observe(0.05)
	h.With("put").Observe(0.5)
	h.With("put").Observe(5)
	r.GaugeFunc("x_conns", "Connections.", func() float64 { return 7 })
	r.CounterFunc("x_cache_total", "Cache lookups.", "result", func() map[string]uint64 {
		return map[string]uint64{"miss": 2, "hit": 40}
	})
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE x_requests_total counter\n",
		"# TYPE x_cache_total counter\nx_cache_total{result=\"hit\"} 40\nx_cache_total{result=\"miss\"} 2\n",
		`x_requests_total{route="/a/{b}",status="200"} 3` + "\n",
		`x_requests_total{route="q\"uote\\",status="500"} 1` + "\n",
		"# TYPE x_seconds histogram\n",
		`x_seconds_bucket{op="put",le="0.1"} 1` + "\n",
		`x_seconds_bucket{op="put",le="1"} 2` + "\n",
		`x_seconds_bucket{op="put",le="+Inf"} 3` + "\n",
		`x_seconds_sum{op="put"} 5.55` + "\n",
		`x_seconds_count{op="put"} 3` + "\n",
		"x_conns 7\n",
		"# TYPE go_goroutines gauge\n",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestDuplicateFamilyPanics(t *testing.T) {
	r := New()
	r.Counter("a_total", "A.")
	defer func() {
		if recover() == nil {
			t.Error("no panic on a duplicate family")
		}
	}()
	r.Counter("a_total", "A again.")
}

func BenchmarkCounter(b *testing.B) {
	c := New().Counter("a_total", "A.", "route", "status")
	for b.Loop() {
		c.With("/thing-if/apps/{app}/targets/{target}/states", "204").Inc()
	}
}

func BenchmarkHistogram(b *testing.B) {
	h := New().Histogram("a_seconds", "A.", nil, "op").With("write_states")
	for b.Loop() {
		h.Observe(0.0003)
	}
}
