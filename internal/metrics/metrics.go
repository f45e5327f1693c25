// Package metrics keeps thingif's counters, gauges and histograms and serves
// them in the Prometheus text exposition format (version 0.0.4), with the
// Go runtime's and the process's own figures. It is a small registry, not a
// client library: families are declared once at start and updated with
// atomics, so recording costs no allocation and no lock on the hot path
// once a label combination exists.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds metric families in declaration order. The zero value is
// not usable; call New.
type Registry struct {
	mu       sync.Mutex
	families []family
	names    map[string]bool
}

type family interface {
	write(w *bufio.Writer)
}

// New returns a registry holding the Go runtime and process metrics
// (go_goroutines, go_memstats_heap_inuse_bytes,
// go_memstats_stack_inuse_bytes, process_resident_memory_bytes,
// process_open_fds, process_cpu_seconds_total).
func New() *Registry {
	r := &Registry{names: map[string]bool{}}
	r.register("go", runtimeFamily{})
	return r
}

func (r *Registry) register(name string, f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[name] {
		panic("metrics: duplicate family " + name)
	}
	r.names[name] = true
	r.families = append(r.families, f)
}

// WriteTo writes every family in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	r.mu.Lock()
	fs := slices.Clone(r.families)
	r.mu.Unlock()
	for _, f := range fs {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

// ServeHTTP serves the metrics (GET /metrics).
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = r.WriteTo(w)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// vec is the label handling shared by counters and histograms: one child
// per combination of label values, created on first use.
type vec[T any] struct {
	name, help, typ string
	labels          []string
	newChild        func() *T
	mu              sync.RWMutex
	children        map[string]*T
	keys            []string // insertion order, for stable output
	values          map[string][]string
}

func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.RLock()
	c := v.children[key]
	v.mu.RUnlock()
	if c != nil {
		return c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c = v.children[key]; c == nil {
		c = v.newChild()
		v.children[key] = c
		v.keys = append(v.keys, key)
		v.values[key] = slices.Clone(values)
	}
	return c
}

func (v *vec[T]) each(f func(labels string, c *T)) {
	v.mu.RLock()
	keys := slices.Clone(v.keys)
	v.mu.RUnlock()
	for _, k := range keys {
		v.mu.RLock()
		c, vals := v.children[k], v.values[k]
		v.mu.RUnlock()
		f(labelString(v.labels, vals, "", ""), c)
	}
}

func labelString(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escape(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName)
		b.WriteString(`="`)
		b.WriteString(extraValue)
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }

func (v *vec[T]) header(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", v.name, v.help, v.name, v.typ)
}

// CounterVec is a family of counters told apart by label values.
type CounterVec struct{ v *vec[Counter] }

// Counter is a monotonically increasing count.
type Counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the count.
func (c *Counter) Value() uint64 { return c.n.Load() }

// Counter declares a counter family; its name should end in _total.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{v: &vec[Counter]{name: name, help: help, typ: "counter", labels: labels,
		newChild: func() *Counter { return new(Counter) }, children: map[string]*Counter{}, values: map[string][]string{}}}
	r.register(name, cv)
	return cv
}

// With returns the counter of these label values, in declaration order.
func (cv *CounterVec) With(values ...string) *Counter { return cv.v.with(values) }

func (cv *CounterVec) write(w *bufio.Writer) {
	cv.v.header(w)
	cv.v.each(func(l string, c *Counter) {
		fmt.Fprintf(w, "%s%s %d\n", cv.v.name, l, c.Value())
	})
}

// HistogramVec is a family of histograms told apart by label values.
type HistogramVec struct {
	v       *vec[Histogram]
	buckets []float64
}

// Histogram counts observations into cumulative buckets.
type Histogram struct {
	upper  []float64
	counts []atomic.Uint64 // per bucket, not cumulative; last is +Inf
	sum    atomic.Uint64   // float64 bits
	n      atomic.Uint64
}

// DefaultBuckets are latency buckets in seconds, from 100 µs to 10 s.
var DefaultBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// Histogram declares a histogram family. If buckets is nil,
// DefaultBuckets.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	hv := &HistogramVec{buckets: buckets}
	hv.v = &vec[Histogram]{name: name, help: help, typ: "histogram", labels: labels, children: map[string]*Histogram{}, values: map[string][]string{},
		newChild: func() *Histogram {
			return &Histogram{upper: buckets, counts: make([]atomic.Uint64, len(buckets)+1)}
		}}
	r.register(name, hv)
	return hv
}

// With returns the histogram of these label values.
func (hv *HistogramVec) With(values ...string) *Histogram { return hv.v.with(values) }

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i, _ := slices.BinarySearch(h.upper, v)
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n.Load() }

func (hv *HistogramVec) write(w *bufio.Writer) {
	hv.v.header(w)
	hv.v.mu.RLock()
	keys := slices.Clone(hv.v.keys)
	hv.v.mu.RUnlock()
	for _, k := range keys {
		hv.v.mu.RLock()
		h, vals := hv.v.children[k], hv.v.values[k]
		hv.v.mu.RUnlock()
		var cum uint64
		for i, up := range h.upper {
			cum += h.counts[i].Load()
			fmt.Fprintf(w, "%s_bucket%s %d\n", hv.v.name, labelString(hv.v.labels, vals, "le", strconv.FormatFloat(up, 'g', -1, 64)), cum)
		}
		cum += h.counts[len(h.upper)].Load()
		fmt.Fprintf(w, "%s_bucket%s %d\n", hv.v.name, labelString(hv.v.labels, vals, "le", "+Inf"), cum)
		l := labelString(hv.v.labels, vals, "", "")
		fmt.Fprintf(w, "%s_sum%s %s\n", hv.v.name, l, strconv.FormatFloat(math.Float64frombits(h.sum.Load()), 'g', -1, 64))
		fmt.Fprintf(w, "%s_count%s %d\n", hv.v.name, l, cum)
	}
}

// gaugeFunc is a gauge read when the metrics are written.
type gaugeFunc struct {
	name, help string
	f          func() float64
}

// GaugeFunc declares a gauge whose value f returns at each scrape; f must
// be cheap and safe for concurrent use.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.register(name, gaugeFunc{name, help, f})
}

func (g gaugeFunc) write(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", g.name, g.help, g.name, g.name, strconv.FormatFloat(g.f(), 'g', -1, 64))
}

// counterFunc is a counter family with one label, read when the metrics
// are written.
type counterFunc struct {
	name, help, label string
	f                 func() map[string]uint64
}

// CounterFunc declares a counter family with one label whose samples f
// returns at each scrape, by label value; f must be cheap and safe for
// concurrent use, and its counts must only grow.
func (r *Registry) CounterFunc(name, help, label string, f func() map[string]uint64) {
	r.register(name, counterFunc{name, help, label, f})
}

func (c counterFunc) write(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	samples := c.f()
	for _, v := range slices.Sorted(maps.Keys(samples)) {
		fmt.Fprintf(w, "%s%s %d\n", c.name, labelString([]string{c.label}, []string{v}, "", ""), samples[v])
	}
}

// runtimeFamily writes the Go runtime's and the process's figures.
type runtimeFamily struct{}

var runtimeSamples = []struct {
	key, name, help, typ string
}{
	{"/sched/goroutines:goroutines", "go_goroutines", "Goroutines that currently exist.", "gauge"},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans: live and not yet swept objects plus their spans' free space.", "gauge"},
	{"/memory/classes/heap/unused:bytes", "", "", ""}, // added to the line above
	{"/memory/classes/heap/stacks:bytes", "go_memstats_stack_inuse_bytes", "Bytes of memory used for goroutine stacks.", "gauge"},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", "Bytes of memory mapped by the Go runtime.", "gauge"},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", "Completed GC cycles.", "counter"},
}

func (runtimeFamily) write(w *bufio.Writer) {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, rs := range runtimeSamples {
		s[i].Name = rs.key
	}
	metrics.Read(s)
	for i, rs := range runtimeSamples {
		if rs.name == "" {
			continue
		}
		var v float64
		switch s[i].Value.Kind() {
		case metrics.KindUint64:
			v = float64(s[i].Value.Uint64())
		case metrics.KindFloat64:
			v = s[i].Value.Float64()
		default:
			continue
		}
		if i+1 < len(runtimeSamples) && runtimeSamples[i+1].name == "" {
			v += float64(s[i+1].Value.Uint64())
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", rs.name, rs.help, rs.name, rs.typ, rs.name, strconv.FormatFloat(v, 'g', -1, 64))
	}
	if rss, err := residentBytes(); err == nil {
		fmt.Fprintf(w, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %d\n", rss)
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fmt.Fprintf(w, "# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds %d\n", len(ents))
	}
	if cpu, err := cpuSeconds(); err == nil {
		fmt.Fprintf(w, "# HELP process_cpu_seconds_total User and system CPU time in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %s\n", strconv.FormatFloat(cpu, 'g', -1, 64))
	}
}

// residentBytes reads the resident set size from /proc/self/statm.
func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("parse /proc/self/statm")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}

// cpuSeconds reads user plus system time from /proc/self/stat (clock ticks
// of 1/100 s).
func cpuSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/self/stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/self/stat")
	}
	return (ut + st) / 100, nil
}
