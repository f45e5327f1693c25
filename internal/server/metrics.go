package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/thingif/thingif/internal/console"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/storecache"
)

// serverMetrics are the families the server records, on a registry of its
// own (never prometheus.DefaultRegisterer: a process may run several
// servers, as the tests do). Names follow Prometheus conventions; every
// latency is in seconds. The names, labels and help are those of the
// hand-written registry this replaced: dashboards depend on them.
type serverMetrics struct {
	reg         *prometheus.Registry
	handler     http.Handler             // serves reg
	requests    *prometheus.CounterVec   // transport, route, method, status
	reqDuration *prometheus.HistogramVec // transport, route
	onboardings *prometheus.CounterVec   // transport
	commands    *prometheus.CounterVec   // event
	pushLatency prometheus.Histogram
	storeOps    *prometheus.HistogramVec // op
}

// latencyBuckets are the histograms' buckets in seconds, from 100 µs to
// 10 s: finer at the low end than prometheus.DefBuckets (5 ms first),
// since a state upload's store write takes well under a millisecond.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

func newServerMetrics(log *slog.Logger) *serverMetrics {
	r := prometheus.NewRegistry()
	m := &serverMetrics{
		reg: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "thingif_requests_total",
			Help: "Requests served by the thing-if API, by transport (rest or mqtt), route pattern, method and status."},
			[]string{"transport", "route", "method", "status"}),
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "thingif_request_duration_seconds",
			Help: "Time in the thing-if API handler, by transport and route pattern.", Buckets: latencyBuckets},
			[]string{"transport", "route"}),
		onboardings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "thingif_onboardings_total",
			Help: "Successful onboardings (200 answers to an onboardings route), by transport."},
			[]string{"transport"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "thingif_commands_total",
			Help: "Command events: created (201 to POST commands), delivered (written to the thing and marked DELIVERED), results (action results accepted: DONE or INCOMPLETE)."},
			[]string{"event"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "thingif_command_push_seconds",
			Help: "Time from a command's creation to its being written to its thing.", Buckets: latencyBuckets}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "thingif_store_seconds",
			Help: "Time of the store's hot operations, by operation.", Buckets: latencyBuckets},
			[]string{"op"}),
	}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.reqDuration, m.onboardings, m.commands, m.pushLatency, m.storeOps)
	// ContinueOnError: a collector that fails (say /proc unreadable) costs
	// its own samples, logged, not the whole page; a scrape never gets a 5xx.
	m.handler = promhttp.HandlerFor(r, promhttp.HandlerOpts{ErrorLog: promLog{log}, ErrorHandling: promhttp.ContinueOnError})
	return m
}

// promLog passes promhttp's errors to slog.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) {
	l.log.Error("serve /metrics", "error", strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// addBrokerGauges publishes the brokers' connection counts.
func (m *serverMetrics) addBrokerGauges(s *Server) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_api_broker_connections", Help: "Clients connected to the API broker."},
			func() float64 { return float64(s.api.Connections()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_onboarding_broker_connections", Help: "Clients connected to the onboarding broker."},
			func() float64 { return float64(s.onboard.Connections()) }))
}

// addSQLiteCounters publishes the SQLite store's group commit counters.
func (m *serverMetrics) addSQLiteCounters(db *sqlite.DB) {
	m.reg.MustRegister(
		newCounterFunc("thingif_store_writes_total",
			"Store writes, and the transactions that committed them (group commit: writes per transaction is the mean batch).", "kind",
			func() map[string]uint64 {
				ws := db.WriteStats()
				return map[string]uint64{"write": ws.Writes, "transaction": ws.Transactions}
			}))
}

// addPostgresGauges publishes the PostgreSQL store's pool.
func (m *serverMetrics) addPostgresGauges(db *postgres.DB) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_postgres_connections",
			Help: "Connections of the PostgreSQL pool."},
			func() float64 { return float64(db.Pool().Stat().TotalConns()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "thingif_postgres_connections_in_use",
			Help: "Connections of the PostgreSQL pool running a statement."},
			func() float64 { return float64(db.Pool().Stat().AcquiredConns()) }),
		newCounterFunc("thingif_postgres_acquires_total",
			"Connections taken from the PostgreSQL pool, and how many of them had to wait for one.", "kind",
			func() map[string]uint64 {
				st := db.Pool().Stat()
				return map[string]uint64{"acquire": uint64(st.AcquireCount()), "wait": uint64(st.EmptyAcquireCount())}
			}))
}

// addCacheCounters publishes the store cache's counters.
func (m *serverMetrics) addCacheCounters(c *storecache.Store) {
	m.reg.MustRegister(
		newCounterFunc("thingif_store_cache_lookups_total",
			"Lookups of the in-memory store cache, by table and result.", "lookup",
			func() map[string]uint64 {
				in, tok, th, trs := c.Stats()
				return map[string]uint64{
					"installation_hit": in.Hits, "installation_miss": in.Misses,
					"token_hit": tok.Hits, "token_miss": tok.Misses,
					"thing_hit": th.Hits, "thing_miss": th.Misses,
					"state_triggers_hit": trs.Hits, "state_triggers_miss": trs.Misses,
				}
			}))
}

// counterFunc is a counter family with one label whose samples are read
// from counts kept elsewhere (the store's own atomics) at each scrape, so
// that the store needs no Prometheus types and its hot path no second
// count.
type counterFunc struct {
	desc *prometheus.Desc
	f    func() map[string]uint64
}

// newCounterFunc declares the family; f must be cheap, safe for
// concurrent use, and its counts must only grow.
func newCounterFunc(name, help, label string, f func() map[string]uint64) counterFunc {
	return counterFunc{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f}
}

// Describe implements prometheus.Collector.
func (c counterFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c counterFunc) Collect(ch chan<- prometheus.Metric) {
	for v, n := range c.f() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), v)
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times the requests h serves. The route label is
// the ServeMux pattern that matched (set on the request by the mux), so its
// values are bounded by the route table, never by client input.
func (m *serverMetrics) instrument(transport string, h http.Handler) http.Handler {
	c := &seriesCache{m: m, transport: transport, series: map[seriesKey]*requestSeries{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		method := r.Method
		switch method {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		default:
			method = "other"
		}
		s := c.get(seriesKey{route, method, status})
		s.requests.Inc()
		s.duration.Observe(time.Since(start).Seconds())
		if s.event != nil {
			s.event.Inc()
		}
	})
}

// seriesKey is one label combination of a transport's requests.
type seriesKey struct {
	route, method string
	status        int
}

// requestSeries are the series one request updates.
type requestSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
	event    prometheus.Counter // an onboarding or command event, or nil
}

// seriesCache keeps a transport's requestSeries by label combination, so
// that a request costs one map lookup instead of the client's label
// hashing and checking for each family (a third of the instrumentation's
// time in BenchmarkInstrument). Its size is bounded like the labels: by
// the route table, the methods and the statuses.
type seriesCache struct {
	m         *serverMetrics
	transport string
	mu        sync.RWMutex
	series    map[seriesKey]*requestSeries
}

func (c *seriesCache) get(k seriesKey) *requestSeries {
	c.mu.RLock()
	s := c.series[k]
	c.mu.RUnlock()
	if s != nil {
		return s
	}
	m := c.m
	s = &requestSeries{
		requests: m.requests.WithLabelValues(c.transport, k.route, k.method, strconv.Itoa(k.status)),
		duration: m.reqDuration.WithLabelValues(c.transport, k.route),
	}
	switch {
	case k.status == http.StatusOK && strings.HasSuffix(k.route, "/onboardings"):
		s.event = m.onboardings.WithLabelValues(c.transport)
	case k.status == http.StatusCreated && k.method == "POST" && strings.HasSuffix(k.route, "/commands"):
		s.event = m.commands.WithLabelValues("created")
	case k.status < 300 && k.method == "PUT" && strings.HasSuffix(k.route, "/action-results"):
		s.event = m.commands.WithLabelValues("results")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.series[k]; old != nil {
		return old
	}
	c.series[k] = s
	return s
}

// delivered is the API broker's OnDelivered.
func (m *serverMetrics) delivered(c store.Command, at time.Time) {
	m.commands.WithLabelValues("delivered").Inc()
	if !c.CreatedAt.IsZero() {
		m.pushLatency.Observe(at.Sub(c.CreatedAt).Seconds())
	}
}

// timedStore times the store operations on the paths the benchmarks load:
// connects, onboardings, commands and state uploads. It implements in full
// the roles those operations belong to (Things, Installations, Tokens,
// Commands, States), so that a method added to one of them is timed or not
// by decision; the other roles pass through untimed.
type timedStore struct {
	untimed
	s store.Store
	m *serverMetrics
}

var _ store.Store = timedStore{}

// untimed are the roles of store.Store that timedStore passes through: none
// of their operations is on a benchmarked path, or (EnabledTriggers) it is
// cached above. One interface, as an embedded store.Apps would be a field
// hiding the method Apps.
type untimed interface {
	store.Apps
	store.History
	store.Users
	store.Triggers
}

func newTimedStore(s store.Store, m *serverMetrics) timedStore {
	return timedStore{untimed: s, s: s, m: m}
}

func (t timedStore) since(op string, start time.Time) {
	t.m.storeOps.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t timedStore) Close() error { return t.s.Close() }

// Things: onboardings are timed. Thing is read at every request but
// cached above; the others are off the benchmarked paths.

func (t timedStore) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	defer t.since("save_onboarding", time.Now())
	return t.s.SaveOnboarding(ctx, o)
}

func (t timedStore) Thing(ctx context.Context, appID, thingID string) (store.Thing, error) {
	return t.s.Thing(ctx, appID, thingID)
}

func (t timedStore) ThingByVendorID(ctx context.Context, appID, vendorThingID string) (store.Thing, error) {
	return t.s.ThingByVendorID(ctx, appID, vendorThingID)
}

func (t timedStore) UpdateThing(ctx context.Context, th store.Thing) error {
	return t.s.UpdateThing(ctx, th)
}

func (t timedStore) UpdateVendorThingID(ctx context.Context, u store.VendorThingIDUpdate) error {
	return t.s.UpdateVendorThingID(ctx, u)
}

func (t timedStore) Things(ctx context.Context, appID, search, paginationKey string, limit int) ([]store.Thing, string, error) {
	return t.s.Things(ctx, appID, search, paginationKey, limit)
}

func (t timedStore) PutEndNode(ctx context.Context, e store.EndNode) error {
	return t.s.PutEndNode(ctx, e)
}

func (t timedStore) EndNode(ctx context.Context, thingID string) (store.EndNode, error) {
	return t.s.EndNode(ctx, thingID)
}

// Installations: the API broker's login lookup is timed.

func (t timedStore) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	defer t.since("installation_by_username", time.Now())
	return t.s.InstallationByUsername(ctx, username)
}

func (t timedStore) PutInstallation(ctx context.Context, in store.Installation) error {
	return t.s.PutInstallation(ctx, in)
}

func (t timedStore) Installation(ctx context.Context, appID, id string) (store.Installation, error) {
	return t.s.Installation(ctx, appID, id)
}

func (t timedStore) Installations(ctx context.Context, thingID string) ([]store.Installation, error) {
	return t.s.Installations(ctx, thingID)
}

func (t timedStore) DeleteInstallation(ctx context.Context, id string) error {
	return t.s.DeleteInstallation(ctx, id)
}

// Tokens: the lookup of every request and the prune of every onboarding
// are timed.

func (t timedStore) Token(ctx context.Context, hash string) (store.Token, error) {
	defer t.since("token", time.Now())
	return t.s.Token(ctx, hash)
}

// PruneThingTokens runs after every onboarding's SaveOnboarding.
func (t timedStore) PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error) {
	defer t.since("prune_thing_tokens", time.Now())
	return t.s.PruneThingTokens(ctx, thingID, keep)
}

func (t timedStore) PutToken(ctx context.Context, tok store.Token) error {
	return t.s.PutToken(ctx, tok)
}

func (t timedStore) DeleteToken(ctx context.Context, hash string) error {
	return t.s.DeleteToken(ctx, hash)
}

func (t timedStore) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	return t.s.DeleteExpiredTokens(ctx, now)
}

// Commands: a command's life (create, push scan, delivery, results) is
// timed; reads by the API and housekeeping are not.

func (t timedStore) CreateCommand(ctx context.Context, c store.Command, maxPending int) error {
	defer t.since("create_command", time.Now())
	return t.s.CreateCommand(ctx, c, maxPending)
}

func (t timedStore) PendingCommands(ctx context.Context, thingID, afterID string, limit int) ([]store.Command, error) {
	defer t.since("pending_commands", time.Now())
	return t.s.PendingCommands(ctx, thingID, afterID, limit)
}

func (t timedStore) MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error) {
	defer t.since("mark_delivered", time.Now())
	return t.s.MarkDelivered(ctx, thingID, id, at)
}

func (t timedStore) SetActionResults(ctx context.Context, thingID, id string, results json.RawMessage, state store.CommandState, at time.Time) (store.Command, error) {
	defer t.since("set_action_results", time.Now())
	return t.s.SetActionResults(ctx, thingID, id, results, state, at)
}

func (t timedStore) Command(ctx context.Context, thingID, id string) (store.Command, error) {
	return t.s.Command(ctx, thingID, id)
}

func (t timedStore) Commands(ctx context.Context, thingID, paginationKey string, limit int) ([]store.Command, string, error) {
	return t.s.Commands(ctx, thingID, paginationKey, limit)
}

func (t timedStore) PendingThings(ctx context.Context) ([]string, error) {
	return t.s.PendingThings(ctx)
}

func (t timedStore) ExpireCommands(ctx context.Context, createdBefore, at time.Time) (int64, error) {
	return t.s.ExpireCommands(ctx, createdBefore, at)
}

// States: uploads are timed, reads by the API are not.

func (t timedStore) WriteStates(ctx context.Context, w store.StateWrite) error {
	defer t.since("write_states", time.Now())
	return t.s.WriteStates(ctx, w)
}

func (t timedStore) States(ctx context.Context, thingID string) ([]store.State, error) {
	return t.s.States(ctx, thingID)
}

// opsHandler serves /metrics, /healthz, /readyz and the console
// (/console) in front of the API.
// /healthz answers 200 while the process serves; /readyz answers 200 when
// every listener is up and the store answers a read and takes writes, 503
// with the reason otherwise (notReady).
func (s *Server) opsHandler(api http.Handler) http.Handler {
	// A plain switch, not a ServeMux: a mux would redirect unclean paths,
	// which the API answers itself (404).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if console.Serves(r.URL.Path) {
			s.console.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			api.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case "/metrics":
			if !s.cfg.MetricsPublic && !loopback(r.RemoteAddr) {
				api.ServeHTTP(w, r)
				return
			}
			s.metrics.handler.ServeHTTP(w, r)
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		case "/readyz":
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "application/json")
			reason := s.notReady(ctx)
			if reason != "" {
				w.WriteHeader(http.StatusServiceUnavailable)
				json.NewEncoder(w).Encode(readyAnswer{Status: "not ready", Reason: reason})
				return
			}
			json.NewEncoder(w).Encode(readyAnswer{Status: "ready"})
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// readyAnswer is the JSON body of /readyz.
type readyAnswer struct {
	Status string `json:"status"`           // "ready" or "not ready"
	Reason string `json:"reason,omitempty"` // why not
}

// probeEvery bounds the probe writes /readyz makes while store writes fail.
const probeEvery = time.Second

// notReady returns why the server should get no traffic, or "" if it
// should:
//   - "starting" or "stopping": New has not finished, or Close has begun;
//   - "store unavailable": a read of the store fails;
//   - "store writes failing: disk full" (or "read-only", "I/O error"): a
//     write failed for want of a writable disk (sqlite.DB.WriteErr), and no
//     probe has found the disk writable since. While it is so, /readyz
//     itself probes (sqlite.DB.ProbeWrite: a 1 MiB scratch file and a
//     SQLite commit), at most once per probeEvery, so that readiness comes
//     back when the disk does, with no traffic needed.
func (s *Server) notReady(ctx context.Context) string {
	if !s.ready.Load() {
		return "starting or stopping"
	}
	if _, err := s.store.Apps(ctx); err != nil {
		return "store unavailable"
	}
	if s.db == nil || s.db.WriteErr() == nil {
		// On PostgreSQL the read above is the check: the database
		// server watches its own disk.
		return ""
	}
	if s.probe.TryLock() {
		if time.Since(s.probed) >= probeEvery {
			s.probed = time.Now()
			_ = s.db.ProbeWrite(ctx) // noted by the store like any write
		}
		s.probe.Unlock()
	}
	var ioErr *sqlite.IOError
	if errors.As(s.db.WriteErr(), &ioErr) {
		return "store writes failing: " + ioErr.Kind
	}
	return ""
}

// loopback reports whether a request's remote address is on this machine.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pprofHandler serves net/http/pprof's profiles under /debug/pprof/.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// listenPprof serves the profiles on addr, if set.
func (s *Server) listenPprof(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError("pprof", addr, err)
	}
	s.addrs = append(s.addrs, Addr{Name: "pprof", Addr: ln.Addr()})
	s.pprof = &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve pprof", "error", err)
		}
	}()
	return nil
}
