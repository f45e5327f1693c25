// Package console serves thingif's web console at /console: static pages
// embedded in the binary (hand-written HTML, CSS and JavaScript; nothing is
// loaded from elsewhere) that call the thing-if REST API from the browser
// with the token they sign in for, and the live protocol inspector's event
// stream, GET /console/api/inspect, fed by the brokers' broker.Tap.
//
// The console holds no session of its own: the browser keeps the token and
// sends it on every call, and the inspector stream asks the API itself
// whether the token may see what it asks for (a thing: GET the thing; the
// onboarding broker: list the app's things, which only an app token may).
// What a user sees is thus exactly what the API lets that user see.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/thingif/thingif/internal/broker"
	"github.com/thingif/thingif/internal/httpapi"
)

//go:embed static
var static embed.FS

// Prefix is the path the console is served under.
const Prefix = "/console"

// Config configures the console. API and Tap are required.
type Config struct {
	// API is the thing-if handler; the inspector asks it whether a token
	// may see a thing or the onboarding broker.
	API http.Handler
	// Tap is where the brokers describe their traffic.
	Tap *broker.Tap
	// Subscribed, if set, counts a thing's API broker connections that
	// commands are pushed to (broker.API.Subscribed), for
	// GET /console/api/connection.
	Subscribed func(thingID string) int
	// ThingNodes, if set, names the nodes of the cluster that hold a
	// connection of the thing (cluster.Cluster.ThingNodes), for the same
	// answer: with several nodes, the thing may be connected to another.
	ThingNodes func(ctx context.Context, thingID string) ([]string, error)
	// Logger receives the console's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Buffer is the number of events held per inspector stream for a slow
	// browser; beyond it events are dropped and counted. If zero, 256.
	Buffer int
	// Heartbeat is the interval of the comment lines that keep an idle
	// stream open through proxies and show a gone browser. If zero, 15 s.
	Heartbeat time.Duration
}

// Handler serves the console.
type Handler struct {
	cfg   Config
	files http.Handler
	// closing ends every inspector stream: an http.Server's Shutdown waits
	// for them, and they never end by themselves.
	closing   chan struct{}
	closeOnce sync.Once
}

// New returns the console handler.
func New(cfg Config) (*Handler, error) {
	if cfg.API == nil || cfg.Tap == nil {
		return nil, errors.New("console config: API and Tap are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = 256
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, files: http.StripPrefix(Prefix+"/", http.FileServerFS(sub)), closing: make(chan struct{})}, nil
}

// Close ends the inspector streams, now and from now on. Register it with
// http.Server.RegisterOnShutdown.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.closing) }) }

// Serves reports whether path is the console's, so that the server can
// route it here and everything else to the API.
func Serves(path string) bool {
	return path == Prefix || strings.HasPrefix(path, Prefix+"/")
}

// ServeHTTP serves the pages and the inspector stream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The pages are this origin's only scripts; nothing may frame them.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	switch {
	case r.URL.Path == Prefix:
		http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
	case r.URL.Path == Prefix+"/api/inspect" || r.URL.Path == Prefix+"/api/connection":
		if r.Method != http.MethodGet {
			h.cfg.API.ServeHTTP(w, r) // the API's 404/405 answer
			return
		}
		f, ok := h.authorize(w, r)
		if !ok {
			return
		}
		if strings.HasSuffix(r.URL.Path, "/connection") {
			h.connection(w, r, f)
			return
		}
		h.stream(w, r, f)
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		h.cfg.API.ServeHTTP(w, r)
	default:
		w.Header().Set("Cache-Control", "no-cache")
		h.files.ServeHTTP(w, r)
	}
}

// authorize reads what the request asks to see, one thing
// (?app=APP&thing=ID) or the app's onboarding broker
// (?app=APP&broker=onboarding), and asks the API whether the request's
// token may see it. If not, it has answered, and reports false.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) (broker.Filter, bool) {
	q := r.URL.Query()
	app, thing, brk := q.Get("app"), q.Get("thing"), q.Get("broker")
	f := broker.Filter{AppID: app}
	var check string
	switch {
	case app == "" || strings.ContainsAny(app, "/?#"):
		httpapi.WriteMalformedRequest(w, errors.New("app is required"))
		return f, false
	case brk == broker.TapOnboarding && thing == "":
		f.Broker = broker.TapOnboarding
		check = "/thing-if/apps/" + url.PathEscape(app) + "/things?bestEffortLimit=1"
	case (brk == "" || brk == broker.TapAPI) && thing != "":
		f.Broker = broker.TapAPI
		check = "/thing-if/apps/" + url.PathEscape(app) + "/things/" + url.PathEscape(thing)
	default:
		httpapi.WriteMalformedRequest(w, errors.New("give thing=ID, or broker=onboarding"))
		return f, false
	}
	// Ask the API, with the caller's own token, whether it may see this.
	probe, err := http.NewRequestWithContext(r.Context(), http.MethodGet, check, nil)
	if err != nil {
		httpapi.WriteMalformedRequest(w, err)
		return f, false
	}
	probe.Header.Set("Authorization", r.Header.Get("Authorization"))
	probe.RemoteAddr = r.RemoteAddr
	rec := httptest.NewRecorder()
	h.cfg.API.ServeHTTP(rec, probe)
	if rec.Code != http.StatusOK {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return f, false
	}
	if f.Broker == broker.TapAPI {
		var t struct {
			ThingID string `json:"thingID"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &t); err != nil || t.ThingID == "" {
			h.cfg.Logger.Error("inspect: read thing", "error", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return f, false
		}
		f.ThingID = t.ThingID
	}
	return f, true
}

// connection answers {"subscribed":N,"nodes":[…]}: how many of the
// thing's connections to this node's API broker commands are pushed to now
// (null if unknown), and, with several nodes, the nodes that hold a
// connection of the thing (absent on one node, null if unknown).
func (h *Handler) connection(w http.ResponseWriter, r *http.Request, f broker.Filter) {
	var out struct {
		Subscribed *int      `json:"subscribed"`
		Nodes      *[]string `json:"nodes,omitempty"`
	}
	if h.cfg.Subscribed != nil && f.ThingID != "" {
		n := h.cfg.Subscribed(f.ThingID)
		out.Subscribed = &n
	}
	if h.cfg.ThingNodes != nil && f.ThingID != "" {
		nodes, err := h.cfg.ThingNodes(r.Context(), f.ThingID)
		if err != nil {
			h.cfg.Logger.Error("connection: nodes of thing", "error", err)
			nodes = nil
		}
		out.Nodes = &nodes
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// stream writes the events the filter selects as Server-Sent Events until
// the browser goes or the server stops: one "event: mqtt" per broker
// event, its data the JSON of a broker.Event, and an "event: dropped" with
// the count whenever events were lost to a slow reader.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, f broker.Filter) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	wt := h.cfg.Tap.Watch(f, h.cfg.Buffer)
	defer wt.Close()
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	var reported uint64
	// write sends one chunk; the REST server's write timeout is for whole
	// answers, so each chunk of this endless one gets its own deadline.
	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.Heartbeat + 10*time.Second))
		if _, err := w.Write([]byte(s)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(": thingif inspector " + f.Broker + "\nretry: 2000\n\n") {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			return
		case <-beat.C:
			if !write(": keep-alive\n\n") {
				return
			}
		case e, ok := <-wt.Events():
			if !ok {
				return
			}
			b, err := json.Marshal(e)
			if err != nil {
				continue
			}
			msg := "event: mqtt\nid: " + strconv.FormatUint(e.Seq, 10) + "\ndata: " + string(b) + "\n\n"
			if d := wt.Dropped(); d != reported {
				reported = d
				msg = "event: dropped\ndata: " + strconv.FormatUint(d, 10) + "\n\n" + msg
			}
			if !write(msg) {
				return
			}
		}
	}
}
