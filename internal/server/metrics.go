package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/console"
	"github.com/thingif/thingif/internal/metrics"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/storecache"
)

// serverMetrics are the families the server records. Names follow
// Prometheus conventions; every latency is in seconds.
type serverMetrics struct {
	reg         *metrics.Registry
	requests    *metrics.CounterVec   // transport, route, method, status
	reqDuration *metrics.HistogramVec // transport, route
	onboardings *metrics.CounterVec   // transport
	commands    *metrics.CounterVec   // event
	pushLatency *metrics.HistogramVec
	storeOps    *metrics.HistogramVec // op
}

func newServerMetrics() *serverMetrics {
	r := metrics.New()
	return &serverMetrics{
		reg: r,
		requests: r.Counter("thingif_requests_total",
			"Requests served by the thing-if API, by transport (rest or mqtt), route pattern, method and status.",
			"transport", "route", "method", "status"),
		reqDuration: r.Histogram("thingif_request_duration_seconds",
			"Time in the thing-if API handler, by transport and route pattern.", nil, "transport", "route"),
		onboardings: r.Counter("thingif_onboardings_total",
			"Successful onboardings (200 answers to an onboardings route), by transport.", "transport"),
		commands: r.Counter("thingif_commands_total",
			"Command events: created (201 to POST commands), delivered (written to the thing and marked DELIVERED), results (action results accepted: DONE or INCOMPLETE).", "event"),
		pushLatency: r.Histogram("thingif_command_push_seconds",
			"Time from a command's creation to its being written to its thing.", nil),
		storeOps: r.Histogram("thingif_store_seconds",
			"Time of the store's hot operations, by operation.", nil, "op"),
	}
}

// addBrokerGauges publishes the brokers' connection counts.
func (m *serverMetrics) addBrokerGauges(s *Server) {
	m.reg.GaugeFunc("thingif_api_broker_connections", "Clients connected to the API broker.",
		func() float64 { return float64(s.api.Connections()) })
	m.reg.GaugeFunc("thingif_onboarding_broker_connections", "Clients connected to the onboarding broker.",
		func() float64 { return float64(s.onboard.Connections()) })
}

// addStoreCounters publishes the store's group commit and cache counters.
func (m *serverMetrics) addStoreCounters(db *sqlite.DB, c *storecache.Store) {
	m.reg.CounterFunc("thingif_store_writes_total",
		"Store writes, and the transactions that committed them (group commit: writes per transaction is the mean batch).", "kind",
		func() map[string]uint64 {
			ws := db.WriteStats()
			return map[string]uint64{"write": ws.Writes, "transaction": ws.Transactions}
		})
	m.reg.CounterFunc("thingif_store_cache_lookups_total",
		"Lookups of the in-memory store cache, by table and result.", "lookup",
		func() map[string]uint64 {
			in, tok, th, trs := c.Stats()
			return map[string]uint64{
				"installation_hit": in.Hits, "installation_miss": in.Misses,
				"token_hit": tok.Hits, "token_miss": tok.Misses,
				"thing_hit": th.Hits, "thing_miss": th.Misses,
				"state_triggers_hit": trs.Hits, "state_triggers_miss": trs.Misses,
			}
		})
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
		m.requests.With(transport, route, method, strconv.Itoa(status)).Inc()
		m.reqDuration.With(transport, route).ObserveDuration(time.Since(start))
		switch {
		case status == http.StatusOK && strings.HasSuffix(route, "/onboardings"):
			m.onboardings.With(transport).Inc()
		case status == http.StatusCreated && method == "POST" && strings.HasSuffix(route, "/commands"):
			m.commands.With("created").Inc()
		case status < 300 && method == "PUT" && strings.HasSuffix(route, "/action-results"):
			m.commands.With("results").Inc()
		}
	})
}

// delivered is the API broker's OnDelivered.
func (m *serverMetrics) delivered(c store.Command, at time.Time) {
	m.commands.With("delivered").Inc()
	if !c.CreatedAt.IsZero() {
		m.pushLatency.With().ObserveDuration(at.Sub(c.CreatedAt))
	}
}

// timedStore times the store operations on the paths the benchmarks load:
// connects, onboardings, commands and state uploads. The others pass
// through untimed.
type timedStore struct {
	store.Store
	m *serverMetrics
}

func (t timedStore) since(op string, start time.Time) {
	t.m.storeOps.With(op).ObserveDuration(time.Since(start))
}

func (t timedStore) InstallationByUsername(ctx context.Context, username string) (store.Installation, error) {
	defer t.since("installation_by_username", time.Now())
	return t.Store.InstallationByUsername(ctx, username)
}

func (t timedStore) Token(ctx context.Context, hash string) (store.Token, error) {
	defer t.since("token", time.Now())
	return t.Store.Token(ctx, hash)
}

func (t timedStore) SaveOnboarding(ctx context.Context, o store.Onboarding) error {
	defer t.since("save_onboarding", time.Now())
	return t.Store.SaveOnboarding(ctx, o)
}

// PruneThingTokens runs after every onboarding's SaveOnboarding.
func (t timedStore) PruneThingTokens(ctx context.Context, thingID string, keep int) ([]string, error) {
	defer t.since("prune_thing_tokens", time.Now())
	return t.Store.PruneThingTokens(ctx, thingID, keep)
}

func (t timedStore) CreateCommand(ctx context.Context, c store.Command, maxPending int) error {
	defer t.since("create_command", time.Now())
	return t.Store.CreateCommand(ctx, c, maxPending)
}

func (t timedStore) PendingCommands(ctx context.Context, thingID string) ([]store.Command, error) {
	defer t.since("pending_commands", time.Now())
	return t.Store.PendingCommands(ctx, thingID)
}

func (t timedStore) MarkDelivered(ctx context.Context, thingID, id string, at time.Time) (bool, error) {
	defer t.since("mark_delivered", time.Now())
	return t.Store.MarkDelivered(ctx, thingID, id, at)
}

func (t timedStore) SetActionResults(ctx context.Context, thingID, id string, results json.RawMessage, state store.CommandState, at time.Time) (store.Command, error) {
	defer t.since("set_action_results", time.Now())
	return t.Store.SetActionResults(ctx, thingID, id, results, state, at)
}

func (t timedStore) WriteStates(ctx context.Context, w store.StateWrite) error {
	defer t.since("write_states", time.Now())
	return t.Store.WriteStates(ctx, w)
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
			s.metrics.reg.ServeHTTP(w, r)
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
	if s.db.WriteErr() == nil {
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
