// Package bench is thingif's load generator: it drives a running thingif
// server (onboarding, connections, command pushes, state uploads) or any MQTT
// broker (the pubsub and echo baselines) over loopback, and reports rates,
// latency percentiles, memory per connection and the CPU used by both sides.
//
// Runs are bounded in count and time. The generator is lean on purpose, since
// it shares the cores with the server: a raw MQTT 3.1.1 client, no goroutine
// per idle connection, open-loop pacing with latencies counted from the time
// each event was due.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Scenarios lists the scenarios Run knows, in the order of the report.
var Scenarios = []string{"onboard", "reonboard", "connect", "push", "state", "pubsub", "echo"}

// Config configures one run. Zero values take the defaults documented on
// each field (filled in by setDefaults).
type Config struct {
	// Scenario is one of Scenarios.
	Scenario string

	// Onboard is the thingif onboarding broker, host:port (MQTT over TCP).
	Onboard string
	// MQTT is the thingif API broker, host:port (MQTT over TCP). If empty,
	// the host of Onboard with the port advertised in the onboarding
	// answer.
	MQTT string
	// REST is the base URL of the thingif REST API, e.g.
	// http://127.0.0.1:8080. Needed by push; when set, connect also reads
	// the server's /metrics before and after.
	REST string
	// RESTNodes are the REST API base URLs of several nodes sharing one
	// PostgreSQL store (a cluster). If set, push sends each thing's
	// commands to one of them, chosen by CommandNode from the node the
	// thing's onboarding answer placed it on, rather than to REST.
	RESTNodes []string
	// CommandNode is which of RESTNodes gets a thing's commands:
	// CommandNodeOther (a node other than the thing's own) or
	// CommandNodeSame (its own). If empty, CommandNodeOther.
	CommandNode string
	// AppID and AppKey are the app's credentials.
	AppID, AppKey string
	// Broker is the MQTT broker (host:port) of the pubsub and echo
	// baselines, and of connect when it measures a plain broker.
	Broker string

	// N is the number of things to onboard (onboard) or to connect
	// (connect). If zero, 1,000.
	N int
	// K is the number of connected things or client pairs of push, state,
	// pubsub and echo. If zero, 1,000 for push and pubsub, 100 for state and
	// echo.
	K int
	// Concurrency is how many onboardings, dials or REST requests run at a
	// time. If zero, 16 for onboarding, 64 for dials and REST requests.
	Concurrency int
	// Rate is events per second: commands (push), messages (pubsub), new
	// connections (connect; zero there means as fast as Concurrency
	// allows). If zero, 2,000 for push and pubsub.
	Rate float64
	// Duration is how long the paced or closed-loop phase runs. If zero,
	// 10 s.
	Duration time.Duration
	// Hold is how long connect holds its connections before measuring
	// memory. If zero, 5 s.
	Hold time.Duration
	// Sources is the number of loopback source addresses (127.0.0.2, …)
	// connections are spread over. If zero, one per 900 connections.
	Sources int
	// PID is the server's process ID, for its resident memory and CPU
	// time. If zero, neither is reported.
	PID int
	// ThingsFile keeps onboarded things' credentials between runs: things
	// in it are reused, missing ones onboarded and added. If empty, things
	// are onboarded afresh.
	ThingsFile string
	// Transport is how connect's connections reach the API broker (or
	// Broker): "tcp" (the default), "tls", "ws" or "wss". The API broker's
	// port is the onboarding answer's for that transport (portSSL, portWS,
	// portWSS) unless MQTT is set; TLS certificates are not verified.
	Transport string
	// NoAnswer makes push things not send action results (no full loop).
	NoAnswer bool
	// PayloadSize is the size of pubsub and echo payloads. If zero, 160
	// bytes (the size of a small command push).
	PayloadSize int
	// Timeout bounds each dial, CONNECT and synchronous answer. If zero,
	// 30 s.
	Timeout time.Duration
	// Progress receives the progress bar. If nil, none is printed.
	Progress io.Writer
}

func (c *Config) setDefaults() {
	if c.N == 0 {
		c.N = 1000
	}
	if c.K == 0 {
		c.K = 1000
		if c.Scenario == "state" || c.Scenario == "echo" {
			c.K = 100
		}
	}
	if c.Rate == 0 && c.Scenario != "connect" {
		c.Rate = 2000
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Hold == 0 {
		c.Hold = 5 * time.Second
	}
	if c.Sources == 0 {
		c.Sources = max(1, (max(c.N, 2*c.K)+899)/900)
	}
	if c.CommandNode == "" {
		c.CommandNode = CommandNodeOther
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = 160
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
}

// Errors of Config.Validate.
var (
	ErrScenario    = errors.New("unknown scenario")
	ErrNotLoopback = errors.New("address is not on loopback")
)

// Validate names the first field that cannot work. Every target must be on
// loopback (127.0.0.0/8 or ::1): the bench is not a tool to load other
// machines.
func (c Config) Validate() error {
	needThingif := false
	switch c.Scenario {
	case "onboard", "reonboard", "push", "state":
		needThingif = true
	case "connect":
		needThingif = c.Broker == ""
	case "pubsub", "echo":
		if c.Broker == "" {
			return fmt.Errorf("%s: Broker is required", c.Scenario)
		}
	default:
		return fmt.Errorf("%w %q (want one of %s)", ErrScenario, c.Scenario, strings.Join(Scenarios, ", "))
	}
	if needThingif && (c.Onboard == "" || c.AppID == "" || c.AppKey == "") {
		return fmt.Errorf("%s: Onboard, AppID and AppKey are required", c.Scenario)
	}
	switch c.Transport {
	case "", "tcp":
	case "tls", "ws", "wss":
		if c.Scenario != "connect" {
			return fmt.Errorf("%s: Transport %s is for connect only", c.Scenario, c.Transport)
		}
	default:
		return fmt.Errorf("unknown Transport %q (want tcp, tls, ws or wss)", c.Transport)
	}
	if c.Scenario == "push" && c.REST == "" && len(c.RESTNodes) == 0 {
		return errors.New("push: REST is required")
	}
	switch c.CommandNode {
	case "", CommandNodeOther, CommandNodeSame:
	default:
		return fmt.Errorf("unknown CommandNode %q (want %s or %s)", c.CommandNode, CommandNodeOther, CommandNodeSame)
	}

	for _, a := range []string{c.Onboard, c.MQTT, c.Broker} {
		if a != "" && !loopback(a) {
			return fmt.Errorf("%w: %s", ErrNotLoopback, a)
		}
	}
	for _, rest := range append([]string{c.REST}, c.RESTNodes...) {
		if rest == "" {
			continue
		}
		u, err := url.Parse(rest)
		if err != nil || !loopback(u.Host) {
			return fmt.Errorf("%w: %s", ErrNotLoopback, rest)
		}
	}
	if c.N < 0 || c.K < 0 || c.Rate < 0 || c.Concurrency < 0 || c.Duration < 0 || c.Sources < 0 {
		return errors.New("counts, rates and durations must not be negative")
	}
	if c.Duration > time.Hour || c.N > 1_000_000 || c.K > 100_000 || c.Rate > 1_000_000 {
		return errors.New("runs are bounded: Duration ≤ 1h, N ≤ 1,000,000, K ≤ 100,000, Rate ≤ 1,000,000/s")
	}
	return nil
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Result is the outcome of one run.
type Result struct {
	Scenario string `json:"scenario"`
	// Target says what was measured: "thingif" or the broker address.
	Target string `json:"target"`
	// Params are the run's effective parameters.
	Params map[string]any `json:"params"`
	// Metrics are the figures, in report order.
	Metrics []Metric `json:"metrics"`
	// Notes are remarks about how a figure was obtained.
	Notes []string `json:"notes,omitempty"`
}

// Metric is one reported figure.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func (r *Result) add(name string, v float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: v, Unit: unit})
}

func (r *Result) addLatencies(name string, l *latencies) {
	p := l.percentiles(0.5, 0.99, 0.999)
	r.add(name+" p50", p[0], "ms")
	r.add(name+" p99", p[1], "ms")
	r.add(name+" p99.9", p[2], "ms")
}

// Metric returns the value of the named metric, or false.
func (r *Result) Metric(name string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}

// WriteTable writes the result as a Markdown table.
func (r *Result) WriteTable(w io.Writer) error {
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ps := make([]string, len(keys))
	for i, k := range keys {
		ps[i] = fmt.Sprintf("%s=%v", k, r.Params[k])
	}
	fmt.Fprintf(w, "%s against %s (%s)\n\n", r.Scenario, r.Target, strings.Join(ps, " "))
	rows := [][3]string{{"measure", "value", "unit"}}
	for _, m := range r.Metrics {
		rows = append(rows, [3]string{m.Name, formatValue(m.Value), m.Unit})
	}
	var wd [3]int
	for _, row := range rows {
		for i, c := range row {
			wd[i] = max(wd[i], len([]rune(c)))
		}
	}
	for i, row := range rows {
		fmt.Fprintf(w, "| %-*s | %*s | %-*s |\n", wd[0], row[0], wd[1], row[1], wd[2], row[2])
		if i == 0 {
			fmt.Fprintf(w, "|%s|%s:|%s|\n", strings.Repeat("-", wd[0]+2), strings.Repeat("-", wd[1]+1), strings.Repeat("-", wd[2]+2))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\n- %s", n)
	}
	_, err := fmt.Fprintln(w)
	return err
}

func formatValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15 && v > -1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1 || v <= -1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// Run runs one scenario to its end (or ctx's) and returns its result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &run{cfg: cfg, dial: newDialer(cfg.Sources, cfg.Timeout, cfg.Transport), id: time.Now().UnixNano() % 1e9}
	res := &Result{Scenario: cfg.Scenario, Target: "thingif", Params: map[string]any{}}
	if cfg.Broker != "" {
		res.Target = cfg.Broker
	}
	var err error
	switch cfg.Scenario {
	case "onboard":
		err = r.onboard(ctx, res)
	case "reonboard":
		err = r.reonboard(ctx, res)
	case "connect":
		err = r.connect(ctx, res)
	case "push":
		err = r.push(ctx, res)
	case "state":
		err = r.state(ctx, res)
	case "pubsub":
		err = r.pubsub(ctx, res)
	case "echo":
		err = r.echo(ctx, res)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// run is one run's shared state.
type run struct {
	cfg  Config
	dial *dialer
	id   int64 // distinguishes this run's topics and things
}

// measure is a phase whose CPU use, of this process and of the server, is
// reported.
type measure struct {
	start    time.Time
	cpu, srv time.Duration
	pid      int
}

func (r *run) startMeasure() *measure {
	m := &measure{start: time.Now(), cpu: cpuTime(), pid: r.cfg.PID}
	if m.pid > 0 && m.pid != currentPID {
		m.srv, _ = procCPU(m.pid)
	}
	return m
}

// end adds the CPU used during the phase, as percent of one core.
func (m *measure) end(res *Result) time.Duration {
	el := time.Since(m.start)
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / el.Seconds() }
	if m.pid > 0 && m.pid == currentPID {
		res.add("bench+server CPU (one process)", pct(cpuTime()-m.cpu), "% of a core")
		return el
	}
	res.add("bench CPU", pct(cpuTime()-m.cpu), "% of a core")
	if m.pid > 0 {
		if s, err := procCPU(m.pid); err == nil {
			res.add("server CPU", pct(s-m.srv), "% of a core")
		}
	}
	return el
}
