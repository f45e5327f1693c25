// Package server assembles a complete thingif server in one process: the
// store, the REST API on HTTP and HTTPS, the onboarding broker and the API
// broker, each on TCP, TLS, WebSocket and WebSocket over TLS.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thingif/thingif/codec"
	"github.com/thingif/thingif/internal/broker"
	"github.com/thingif/thingif/internal/cluster"
	"github.com/thingif/thingif/internal/console"
	"github.com/thingif/thingif/internal/httpapi"
	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/sqlite"
	"github.com/thingif/thingif/internal/store"
	"github.com/thingif/thingif/internal/storecache"
)

// Default listener addresses. The onboarding broker's are Kii's documented
// ports; the API broker's are the next ones up.
const (
	DefaultOnboardTCP = ":1883"
	DefaultOnboardTLS = ":8883"
	DefaultOnboardWS  = ":12470"
	DefaultOnboardWSS = ":12473"
	DefaultMQTTTCP    = ":1884"
	DefaultMQTTTLS    = ":8884"
	DefaultMQTTWS     = ":12471"
	DefaultMQTTWSS    = ":12474"
	DefaultHTTP       = ":8080"
	DefaultHTTPS      = ":8443"
	DefaultDataDir    = "./thingif-data"
	DefaultPublicHost = "localhost"
)

// AppCredential is an app ID and key given on the command line.
type AppCredential struct{ ID, Key string }

// ParseAppCredential parses "ID:KEY".
func ParseAppCredential(s string) (AppCredential, error) {
	id, key, ok := strings.Cut(s, ":")
	if !ok || id == "" || key == "" {
		return AppCredential{}, fmt.Errorf("app %q: want ID:KEY", s)
	}
	if strings.ContainsAny(id, "/+#") {
		return AppCredential{}, fmt.Errorf("app %q: ID may not contain '/', '+' or '#'", s)
	}
	return AppCredential{ID: id, Key: key}, nil
}

// Config configures a Server. Use DefaultConfig and change what you need:
// there, an empty address turns that listener off.
type Config struct {
	// DataDir holds the database (unless Store names another), the
	// generated TLS certificate and the development app's credentials.
	DataDir string
	// Store, if set, is the postgres:// or postgresql:// URL of a
	// PostgreSQL database that several nodes share (docs/scale-out.md);
	// empty keeps the embedded SQLite database in DataDir. It may hold a
	// password: it is never logged.
	Store string
	// Node names this node among those sharing Store. If empty, the host
	// name. On PostgreSQL it must be a cluster.ValidName.
	Node string
	// NodeDeadAfter is how long a node of the cluster may miss heartbeats
	// before the others count it dead and place its things elsewhere. If
	// zero, cluster.DefaultDeadAfter (5 s).
	NodeDeadAfter time.Duration
	// Apps are made sure to exist with these keys.
	Apps []AppCredential
	// PublicHost is advertised as mqttEndpoint.host.
	PublicHost string

	OnboardTCP, OnboardTLS, OnboardWS, OnboardWSS string
	MQTTTCP, MQTTTLS, MQTTWS, MQTTWSS             string
	HTTP, HTTPS                                   string

	// EndpointTTL is the lifetime of issued MQTT endpoints. If zero, Kii's
	// 2147483647 seconds.
	EndpointTTL time.Duration
	// ThingTokenTTL is the lifetime of thing tokens. If zero, they never
	// expire, as Kii's did not (a thing keeps its five newest either way).
	ThingTokenTTL time.Duration
	// AppSide configures triggers, command expiry and state history
	// retention; its zero value is documented field by field.
	AppSide AppSideConfig
	// TLSCert and TLSKey are PEM files. If both are empty, a self-signed
	// certificate is generated in DataDir/tls.
	TLSCert, TLSKey string
	// PasswordCost is the argon2id cost of new password hashes. If zero,
	// secret.DefaultCost.
	PasswordCost secret.Cost
	// Logger receives the logs. If nil, logs are discarded.
	Logger *slog.Logger

	// Pprof is the address of a listener serving net/http/pprof's profiles
	// under /debug/pprof/. If empty, profiling is off; keep it on loopback.
	Pprof string
	// MetricsPublic serves /metrics to any client of the REST listeners. If
	// false, only loopback clients get it (others get the API's 404): the
	// counters tell how many things and calls a deployment has.
	MetricsPublic bool

	// Limits bound what one client may make the server hold; zero fields
	// take the defaults documented on Limits (docs/security.md lists them).
	Limits Limits
}

// Limits are the resource and brute-force bounds of a Server. Each zero
// field takes the default of the package that enforces it.
type Limits struct {
	// ConnectTimeout bounds the time from TCP accept to a complete CONNECT
	// (broker.Config.ConnectTimeout; 10 s).
	ConnectTimeout time.Duration
	// WriteTimeout drops MQTT clients that do not read their answers and
	// pushes (broker.Config.WriteTimeout; 30 s).
	WriteTimeout time.Duration
	// MaxPacketSize bounds MQTT packets, and so request payloads
	// (broker.Config.MaxPacketSize; 1 MiB + 4 KiB).
	MaxPacketSize uint32
	// MaxHeaders bounds the header lines of a request over MQTT
	// (codec.DefaultMaxHeaders).
	MaxHeaders int
	// MaxConnsPerAddr bounds each source IP address's connections per
	// broker (broker.DefaultMaxConnsPerAddr); negative: no bound.
	MaxConnsPerAddr int
	// MaxInflight bounds QoS 1 and 2 messages in flight per MQTT client
	// (256).
	MaxInflight uint16
	// MaxPendingCommands bounds each thing's commands not yet delivered
	// (httpapi.DefaultMaxPendingCommands); negative: no bound.
	MaxPendingCommands int
	// MaxTriggersPerThing bounds each thing's triggers
	// (httpapi.DefaultMaxTriggersPerThing); negative: no bound.
	MaxTriggersPerThing int
	// BruteForce slows down and then refuses repeated wrong thing passwords
	// and app keys (limit package defaults).
	BruteForce limit.Config
	// RegistrationsPerAddr and RegistrationsPerApp limit first onboardings
	// of new things per source address and per app
	// (limit.DefaultRegistrationsPerAddr, ...PerApp); a negative Rate: no
	// limit.
	RegistrationsPerAddr, RegistrationsPerApp limit.BucketConfig
	// PasswordCacheEntries bounds the remembered successful password and
	// app key checks (secret.DefaultVerifierEntries); negative: none.
	PasswordCacheEntries int
}

// DefaultConfig returns the zero-configuration setup of `thingif serve`.
func DefaultConfig() Config {
	return Config{
		DataDir:    DefaultDataDir,
		PublicHost: DefaultPublicHost,
		OnboardTCP: DefaultOnboardTCP, OnboardTLS: DefaultOnboardTLS, OnboardWS: DefaultOnboardWS, OnboardWSS: DefaultOnboardWSS,
		MQTTTCP: DefaultMQTTTCP, MQTTTLS: DefaultMQTTTLS, MQTTWS: DefaultMQTTWS, MQTTWSS: DefaultMQTTWSS,
		HTTP: DefaultHTTP, HTTPS: DefaultHTTPS,
	}
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("config: DataDir is required")
	case c.PublicHost == "":
		return errors.New("config: PublicHost is required")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("config: TLSCert and TLSKey go together")
	case c.AppSide.validate() != nil:
		return c.AppSide.validate()
	case c.ThingTokenTTL < 0:
		return errors.New("config: ThingTokenTTL is negative")
	case c.EndpointTTL < 0:
		return errors.New("config: EndpointTTL is negative")
	case c.EndpointTTL > 0 && c.EndpointTTL < time.Second:
		return errors.New("config: EndpointTTL is under a second")
	case c.Store != "" && !postgres.IsDSN(c.Store):
		return errors.New("config: Store must be a postgres:// or postgresql:// URL (empty: SQLite in DataDir)")
	case len(c.Node) > 64 || strings.ContainsAny(c.Node, " \t\r\n"):
		return errors.New("config: Node must be at most 64 bytes without white space")
	case c.Store != "" && c.Node != "" && cluster.ValidName(c.Node) != nil:
		return fmt.Errorf("config: %w", cluster.ValidName(c.Node))
	case c.NodeDeadAfter != 0 && c.NodeDeadAfter < 500*time.Millisecond:
		return errors.New("config: NodeDeadAfter is under 500ms")
	}
	return nil
}

// Server is a running thingif server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   store.Store
	cache   *storecache.Store
	cert    *certificate
	handler *httpapi.Handler

	onboard *broker.Onboarding
	api     *broker.API
	rest    []*http.Server
	// brokerLns are every bound broker listener, for Close to close those
	// a failed New never handed to a broker.
	brokerLns []*broker.Listener
	// db is the SQLite store under the cache, or nil on PostgreSQL; pg
	// the PostgreSQL one, or nil. lock holds the data directory (lock.go).
	db   *sqlite.DB
	pg   *postgres.DB
	lock *dirLock
	// node is this node's name (Config.Node or the host name); cluster
	// its membership of the nodes on PostgreSQL, or nil.
	node    string
	cluster *cluster.Cluster

	addrs []Addr
	// DevApp is the development app created on first start when no app
	// existed, or nil.
	DevApp *AppCredential

	app appSide

	metrics *serverMetrics
	console *console.Handler // /console and its inspector stream
	ready   atomic.Bool
	// probe serialises /readyz's probe writes; probed is the last one's
	// time (notReady).
	probe  sync.Mutex
	probed time.Time
	pprof  *http.Server
}

// Addr is one bound listener.
type Addr struct {
	Name string // e.g. "onboard-tcp", "mqtt-wss", "https"
	Addr net.Addr
}

// New opens the store, makes sure the apps exist, binds every listener and
// starts serving. Close stops it.
func New(ctx context.Context, cfg Config) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s = &Server{cfg: cfg, log: cfg.Logger, metrics: newServerMetrics(cfg.Logger)}
	// Every error return below sets s to nil: the cleanup works on srv.
	// Close undoes whatever was started, so that a failed New leaves no
	// listener, goroutine, open store or lock behind.
	srv := s
	defer func() {
		if err != nil {
			srv.Close(context.Background())
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, privateDir); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, pathReason(err))
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := tightenFiles(cfg.DataDir, s.log); err != nil {
		return nil, err
	}
	if s.node = cfg.Node; s.node == "" {
		if s.node, err = os.Hostname(); err != nil || s.node == "" {
			return nil, fmt.Errorf("node name: no --node and no host name: %v", err)
		}
	}
	if err := s.openStore(ctx); err != nil {
		return nil, err
	}
	if err := s.ensureApps(ctx); err != nil {
		return nil, err
	}
	if err := s.loadCertificate(); err != nil {
		return nil, err
	}
	tlsConf := s.cert.tlsConfig()

	listen := func(name string, t broker.Transport, addr string) (*broker.Listener, error) {
		l, err := broker.Listen(t, addr, tlsConf)
		if err != nil {
			return nil, listenError(name, addr, err)
		}
		if l != nil {
			s.addrs = append(s.addrs, Addr{Name: name, Addr: l.Addr()})
			s.brokerLns = append(s.brokerLns, l)
		}
		return l, nil
	}
	var onboardLns, apiLns [4]*broker.Listener
	for i, spec := range []struct {
		name string
		t    broker.Transport
		addr string
	}{
		{"onboard-tcp", broker.TCP, cfg.OnboardTCP}, {"onboard-tls", broker.TLS, cfg.OnboardTLS},
		{"onboard-ws", broker.WS, cfg.OnboardWS}, {"onboard-wss", broker.WSS, cfg.OnboardWSS},
		{"mqtt-tcp", broker.TCP, cfg.MQTTTCP}, {"mqtt-tls", broker.TLS, cfg.MQTTTLS},
		{"mqtt-ws", broker.WS, cfg.MQTTWS}, {"mqtt-wss", broker.WSS, cfg.MQTTWSS},
	} {
		l, err := listen(spec.name, spec.t, spec.addr)
		if err != nil {
			return nil, err // Close closes the ones bound so far
		}
		if i < 4 {
			onboardLns[i] = l
		} else {
			apiLns[i-4] = l
		}
	}
	advertised := httpapi.BrokerAddr{
		Host:    cfg.PublicHost,
		PortTCP: apiLns[0].Port(), PortSSL: apiLns[1].Port(), PortWS: apiLns[2].Port(), PortWSS: apiLns[3].Port(),
	}

	// The API broker pushes commands the handler stores, and the handler
	// serves the requests the API broker receives: the broker gets the
	// handler through a reference filled in once both exist.
	ref := new(handlerRef)
	lim := cfg.Limits
	guard := s.newGuard()
	verify := secret.NewVerifier(secret.VerifierConfig{Cost: cfg.PasswordCost, MaxEntries: lim.PasswordCacheEntries})
	bcfg := broker.Config{
		Handler: ref, Logger: s.log,
		ConnectTimeout: lim.ConnectTimeout, WriteTimeout: lim.WriteTimeout, MaxPacketSize: lim.MaxPacketSize,
		Limits:          codec.Limits{MaxHeaders: lim.MaxHeaders},
		MaxConnsPerAddr: lim.MaxConnsPerAddr, MaxInflight: lim.MaxInflight,
		Tap: broker.NewTap(),
	}
	apiCfg := broker.APIConfig{Config: bcfg, Store: s.store, OnDelivered: s.metrics.delivered}
	if s.pg != nil {
		apiCfg.Sessions = clusterSessions{s}
	}
	s.api, err = broker.NewAPI(apiCfg, apiLns[:]...)
	if err != nil {
		return nil, fmt.Errorf("api broker: %w", err)
	}
	if err := s.joinCluster(ctx, advertised); err != nil {
		return nil, err
	}
	if err := s.newAppSide(); err != nil {
		return nil, err
	}
	s.handler, err = httpapi.New(httpapi.Config{
		Triggers:             s.app.triggers,
		Store:                s.store,
		Logger:               s.log.With("component", "httpapi"),
		APIBroker:            s.placement(advertised),
		Nodes:                s.nodes(advertised),
		EndpointTTL:          cfg.EndpointTTL,
		ThingTokenTTL:        cfg.ThingTokenTTL,
		PasswordCost:         cfg.PasswordCost,
		Pusher:               clusterPusher{s},
		Revoker:              clusterPusher{s},
		Limiter:              guard,
		MaxPendingCommands:   lim.MaxPendingCommands,
		Verifier:             verify,
		RegistrationsPerAddr: limit.NewBuckets(lim.RegistrationsPerAddr.WithDefault(limit.DefaultRegistrationsPerAddr)),
		RegistrationsPerApp:  limit.NewBuckets(lim.RegistrationsPerApp.WithDefault(limit.DefaultRegistrationsPerApp)),
		MaxTriggersPerThing:  lim.MaxTriggersPerThing,
	})
	if err != nil {
		return nil, fmt.Errorf("http handler: %w", err)
	}
	ref.h = s.metrics.instrument("mqtt", s.handler)
	ccfg := console.Config{API: s.handler, Tap: bcfg.Tap, Subscribed: s.api.Subscribed, Logger: s.log.With("component", "console")}
	if s.cluster != nil {
		ccfg.ThingNodes = s.cluster.ThingNodes
	}
	s.console, err = console.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	s.onboard, err = broker.NewOnboarding(broker.OnboardingConfig{Config: bcfg, Store: s.store, Limiter: guard, Verifier: verify}, onboardLns[:]...)
	if err != nil {
		return nil, fmt.Errorf("onboarding broker: %w", err)
	}

	if err := s.listenREST("http", cfg.HTTP, nil); err != nil {
		return nil, err
	}
	if err := s.listenREST("https", cfg.HTTPS, tlsConf); err != nil {
		return nil, err
	}
	if err := s.api.Start(); err != nil {
		return nil, fmt.Errorf("start api broker: %w", err)
	}
	if err := s.onboard.Start(); err != nil {
		return nil, fmt.Errorf("start onboarding broker: %w", err)
	}
	attrs := []any{}
	for _, a := range s.addrs {
		attrs = append(attrs, a.Name, a.Addr.String())
	}
	if err := s.listenPprof(cfg.Pprof); err != nil {
		return nil, err
	}
	s.metrics.addBrokerGauges(s)
	s.startAppSide()
	s.ready.Store(true)
	s.log.Info("thingif ready", attrs...)
	return s, nil
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

type handlerRef struct{ h http.Handler }

func (r *handlerRef) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.h.ServeHTTP(w, req) }

func (s *Server) listenREST(name, addr string, tlsConf *tls.Config) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError(name, addr, err)
	}
	s.addrs = append(s.addrs, Addr{Name: name, Addr: ln.Addr()})
	var l net.Listener = lingerListener{Listener: ln, linger: time.Second}
	if tlsConf != nil {
		l = tls.NewListener(l, tlsConf.Clone())
	}
	hs := &http.Server{
		Handler:           s.opsHandler(s.metrics.instrument("rest", s.handler)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	hs.RegisterOnShutdown(s.console.Close) // its streams never end by themselves
	s.rest = append(s.rest, hs)
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve "+name, "error", err)
		}
	}()
	return nil
}

// Addrs returns every bound listener.
func (s *Server) Addrs() []Addr { return s.addrs }

// Addr returns the bound address of the named listener, or nil.
func (s *Server) Addr(name string) net.Addr {
	for _, a := range s.addrs {
		if a.Name == name {
			return a.Addr
		}
	}
	return nil
}

// Port returns the bound port of the named listener, or 0.
func (s *Server) Port(name string) int {
	if a, ok := s.Addr(name).(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// ReloadCertificate loads the TLS certificate again from its files; the
// next TLS handshake on every listener uses it.
func (s *Server) ReloadCertificate() error { return s.cert.load() }

// Close stops every listener, disconnects every client, waits for running
// work up to ctx's deadline and closes the store. It returns the first
// error and keeps cleaning up after it.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	s.ready.Store(false)
	if s.pprof != nil {
		s.pprof.Close()
	}
	for _, hs := range s.rest {
		if err := hs.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown rest: %w", err))
			hs.Close()
		}
	}
	if s.onboard != nil {
		if err := s.onboard.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close onboarding broker: %w", err))
		}
	}
	if s.api != nil {
		if err := s.api.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close api broker: %w", err))
		}
	}
	// Listeners a failed New bound but gave no broker; the brokers have
	// closed their own, and closing one again does nothing.
	for _, l := range s.brokerLns {
		l.Close()
	}
	if err := s.leaveCluster(ctx); err != nil {
		errs = append(errs, err)
	}
	s.stopAppSide()
	switch {
	case s.store != nil:
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	case s.db != nil: // New failed before the cache was made
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	case s.pg != nil:
		if err := s.pg.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	// The lock goes last: the next server may open the store once it is
	// free.
	if s.lock != nil {
		if err := s.lock.release(); err != nil {
			errs = append(errs, fmt.Errorf("release data dir lock: %w", err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (s *Server) loadCertificate() error {
	certFile, keyFile := s.cfg.TLSCert, s.cfg.TLSKey
	if certFile == "" {
		hosts := []string{s.cfg.PublicHost, "localhost", "127.0.0.1", "::1"}
		var err error
		certFile, keyFile, err = selfSigned(filepath.Join(s.cfg.DataDir, "tls"), hosts)
		if err != nil {
			return fmt.Errorf("self-signed certificate: %w", err)
		}
	}
	s.cert = &certificate{certFile: certFile, keyFile: keyFile}
	return s.cert.load()
}

// devAppFile keeps the development app's credentials so that every start can
// print them: the store has only the key's hash. It is a development
// convenience; apps given with --app are never written there.
const devAppFile = "dev-app.json"

// ensureApps stores the configured apps and, when none is configured and
// none exists, creates a development app.
func (s *Server) ensureApps(ctx context.Context) error {
	verify := new(secret.Verifier)
	for _, a := range s.cfg.Apps {
		old, err := s.store.App(ctx, a.ID)
		if err == nil && verify.Verify(old.KeyHash, a.Key) {
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("load app %q: %w", a.ID, err)
		}
		if err := s.putApp(ctx, a, old.CreatedAt); err != nil {
			return err
		}
	}
	path := filepath.Join(s.cfg.DataDir, devAppFile)
	if b, err := os.ReadFile(path); err == nil {
		var a AppCredential
		if json.Unmarshal(b, &a) == nil && a.ID != "" {
			if old, err := s.store.App(ctx, a.ID); err == nil && verify.Verify(old.KeyHash, a.Key) {
				s.DevApp = &a
			}
		}
	}
	if len(s.cfg.Apps) > 0 || s.DevApp != nil {
		return nil
	}
	apps, err := s.store.Apps(ctx)
	if err != nil {
		return fmt.Errorf("list apps: %w", err)
	}
	if len(apps) > 0 {
		return nil
	}
	a := AppCredential{ID: secret.NewID(4), Key: secret.NewID(16)}
	if err := s.putApp(ctx, a, time.Time{}); err != nil {
		return err
	}
	b, _ := json.Marshal(a)
	if err := writeFile(path, b, privateFile); err != nil {
		return fmt.Errorf("write %s: %w", devAppFile, err)
	}
	s.DevApp = &a
	return nil
}

func (s *Server) putApp(ctx context.Context, a AppCredential, created time.Time) error {
	hash, err := secret.HashPassword(a.Key, s.cfg.PasswordCost)
	if err != nil {
		return fmt.Errorf("hash app key: %w", err)
	}
	if created.IsZero() {
		created = time.Now()
	}
	if err := s.store.PutApp(ctx, store.App{ID: a.ID, KeyHash: hash, AllowAnonymous: true, CreatedAt: created}); err != nil {
		return fmt.Errorf("store app %q: %w", a.ID, err)
	}
	return nil
}

// HostPort joins the public host with a bound port.
func (s *Server) HostPort(name string) string {
	return net.JoinHostPort(s.cfg.PublicHost, strconv.Itoa(s.Port(name)))
}
