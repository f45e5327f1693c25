package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/postgres"
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

// serveOptions are what serve's flags set: the server configuration, and
// the flags that are not one of its fields as they are.
type serveOptions struct {
	cfg                    server.Config
	hashMem, hashTime      uint
	maxPacket, maxInflight uint
	logLevel, logFormat    string
	configFile             string
	checkConfig            bool
}

// serveFlags defines serve's flags on a new FlagSet. The config file and
// THINGIF_* variables (config.go) are driven by this FlagSet: a flag added
// here has a key and a variable at once, and belongs in
// deploy/thingif.example.toml (a test says so).
func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{cfg: server.DefaultConfig()}
	cfg := &o.cfg
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: thingif serve [flags]

Run the server. Every flag is also a THINGIF_* environment variable
(--public-host: THINGIF_PUBLIC_HOST) and a key of the --config file, except
--check-config (command line only); flags win over the environment, the
environment over the file, the file over the defaults below. See
docs/operations.md and deploy/thingif.example.toml.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.configFile, configFlag, "", "read settings from this TOML `file` (keys are flag names)")
	fs.BoolVar(&o.checkConfig, "check-config", false, "validate flags, environment and config file, print \"config ok\" and exit, without binding ports or opening the store")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `directory`")
	fs.Var((*storeFlag)(&cfg.Store), "store", "PostgreSQL database shared by several nodes, a postgres:// or postgresql:// `URL` (default: SQLite in --data; docs/scale-out.md)")
	fs.StringVar(&cfg.Node, "node", "", "this node's `name` among the nodes on one --store (default: the host name)")
	fs.DurationVar(&cfg.NodeDeadAfter, "node-dead-after", 0, "a node of the --store cluster silent this long counts as dead, its things placed elsewhere (default 5s)")
	fs.Var((*appsFlag)(&cfg.Apps), "app", "make sure an app with this `ID:KEY` exists; repeatable")
	fs.StringVar(&cfg.PublicHost, "public-host", cfg.PublicHost, "`host` advertised in mqttEndpoint.host")
	fs.StringVar(&cfg.OnboardTCP, "onboard-tcp", cfg.OnboardTCP, "onboarding broker, MQTT over TCP `addr`ess (empty: off)")
	fs.StringVar(&cfg.OnboardTLS, "onboard-tls", cfg.OnboardTLS, "onboarding broker, MQTT over TLS `addr`ess")
	fs.StringVar(&cfg.OnboardWS, "onboard-ws", cfg.OnboardWS, "onboarding broker, MQTT over WebSocket `addr`ess")
	fs.StringVar(&cfg.OnboardWSS, "onboard-wss", cfg.OnboardWSS, "onboarding broker, MQTT over secure WebSocket `addr`ess")
	fs.StringVar(&cfg.MQTTTCP, "mqtt-tcp", cfg.MQTTTCP, "API broker, MQTT over TCP `addr`ess")
	fs.StringVar(&cfg.MQTTTLS, "mqtt-tls", cfg.MQTTTLS, "API broker, MQTT over TLS `addr`ess")
	fs.StringVar(&cfg.MQTTWS, "mqtt-ws", cfg.MQTTWS, "API broker, MQTT over WebSocket `addr`ess")
	fs.StringVar(&cfg.MQTTWSS, "mqtt-wss", cfg.MQTTWSS, "API broker, MQTT over secure WebSocket `addr`ess")
	fs.StringVar(&cfg.HTTP, "http", cfg.HTTP, "REST API over HTTP `addr`ess")
	fs.StringVar(&cfg.HTTPS, "https", cfg.HTTPS, "REST API over HTTPS `addr`ess")
	fs.DurationVar(&cfg.EndpointTTL, "endpoint-ttl", 0, "lifetime of issued MQTT endpoints (default 2147483647s, as Kii)")
	fs.DurationVar(&cfg.ThingTokenTTL, "thing-token-ttl", 0, "lifetime of thing tokens (default 0: never expire, as Kii; a thing keeps its 5 newest)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate PEM `file` (default: self-signed, generated in the data dir)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS key PEM `file`")
	fs.UintVar(&o.hashMem, "password-hash-memory", uint(secret.DefaultCost.Memory), "argon2id memory in `KiB` for new password hashes")
	fs.UintVar(&o.hashTime, "password-hash-time", uint(secret.DefaultCost.Time), "argon2id `passes` for new password hashes")
	fs.StringVar(&cfg.AppSide.WebhookURL, "webhook-url", "", "`URL` that server-code triggers POST to (empty: server-code triggers are refused)")
	fs.DurationVar(&cfg.AppSide.CommandExpiry, "command-expiry", 0, "how long a never-delivered command stays SENDING before it becomes EXPIRED (default 168h; negative: never)")
	fs.DurationVar(&cfg.AppSide.StateRetention, "state-retention", 0, "how long state history is kept (default 2160h; negative: forever)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log `format`: text (logfmt-like key=value) or json (one object a line)")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics to every REST client, not only to loopback ones")
	fs.StringVar(&cfg.Pprof, "pprof", "", "serve net/http/pprof's profiles on this `addr`ess (empty: off; keep it on loopback)")
	lim := &cfg.Limits
	fs.DurationVar(&lim.ConnectTimeout, "connect-timeout", 0, "time from TCP accept to a complete MQTT CONNECT (default 10s)")
	fs.DurationVar(&lim.WriteTimeout, "write-timeout", 0, "an MQTT client that does not read for this long is dropped (default 30s)")
	fs.UintVar(&o.maxPacket, "max-packet-size", 0, "largest MQTT packet in `bytes` (default 1 MiB + 4 KiB)")
	fs.IntVar(&lim.MaxHeaders, "max-headers", 0, "header lines per request over MQTT (default 64)")
	fs.IntVar(&lim.MaxConnsPerAddr, "max-conns-per-addr", 0, "connections per source IP address and broker (default 1000; -1: no bound)")
	fs.UintVar(&o.maxInflight, "max-inflight", 0, "QoS 1/2 messages in flight per MQTT client (default 256)")
	fs.IntVar(&lim.MaxPendingCommands, "max-pending-commands", 0, "commands waiting per thing before 429 (default 1000; -1: no bound)")
	fs.IntVar(&lim.MaxTriggersPerThing, "max-triggers-per-thing", 0, "triggers per thing before 409 (default 100; -1: no bound)")
	fs.IntVar(&lim.BruteForce.Free, "login-free-failures", 0, "wrong passwords or app keys per thing or address before blocking (default 5)")
	fs.DurationVar(&lim.BruteForce.Max, "login-max-block", 0, "longest block after repeated wrong credentials (default 5m)")
	fs.Func("registrations-per-addr", "new things registered per second per source address, `RATE[:BURST]` (default 10:100; -1: no limit)", rateFlag(&lim.RegistrationsPerAddr))
	fs.Func("registrations-per-app", "new things registered per second per app, `RATE[:BURST]` (default 100:1000; -1: no limit)", rateFlag(&lim.RegistrationsPerApp))
	fs.IntVar(&lim.PasswordCacheEntries, "password-cache-entries", 0, "successful password checks remembered for 24h, ~110 bytes each (default 100000; -1: none)")
	return fs, o
}

// serverConfig checks the flags that server.Config does not hold as they
// are and turns them into it, with a logger on stderr.
func (o *serveOptions) serverConfig(stderr io.Writer) (server.Config, error) {
	cfg := o.cfg
	if o.hashMem == 0 || o.hashTime == 0 || o.hashMem > 4<<20 || o.hashTime > 100 {
		return cfg, fmt.Errorf("--password-hash-memory must be 1..%d and --password-hash-time 1..100", 4<<20)
	}
	if o.maxPacket > 256<<20 || o.maxInflight > 65535 {
		return cfg, fmt.Errorf("--max-packet-size must be at most %d and --max-inflight at most 65535", 256<<20)
	}
	cfg.Limits.MaxPacketSize, cfg.Limits.MaxInflight = uint32(o.maxPacket), uint16(o.maxInflight)
	cfg.PasswordCost = secret.Cost{Memory: uint32(o.hashMem), Time: uint32(o.hashTime), Threads: 1}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return cfg, fmt.Errorf("--log-format: want text or json, got %q", o.logFormat)
	}
	return cfg, nil
}

// checkConfig is --check-config: what server.New would refuse before it
// binds a port or opens the store, and whether the TLS files load.
func checkConfig(cfg server.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert, --tls-key: %w", err)
		}
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runServe(ctx, args, os.LookupEnv, stdout, stderr)
}

// runServe is serve with the environment given as lookup, for tests.
func runServe(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	fs, o := serveFlags(stderr)
	// Mistakes in the flags, the environment or the config file are usage
	// errors (exit 2); a failure to start is not (exit 1).
	// The FlagSet writes only the help asked for; a parse error is one line
	// from main, not the error and the whole flag list.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return usageErr(hideSecretValue(fs, err))
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := applyConfig(fs, lookup); err != nil {
		return configErrorf("serve: %w", err)
	}
	cfg, err := o.serverConfig(stderr)
	if err != nil {
		return configErrorf("serve: %w", err)
	}
	if o.checkConfig {
		if err := checkConfig(cfg); err != nil {
			return configErrorf("serve: %w", err)
		}
		fmt.Fprintln(stdout, "config ok")
		return nil
	}

	// Every connection is a file: allow as many as the hard limit does.
	if n, err := raiseFileLimit(); err != nil {
		cfg.Logger.Warn("raise open files limit", "error", err)
	} else {
		cfg.Logger.Debug("open files limit", "limit", n)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if a := srv.DevApp; a != nil {
		printDevApp(stdout, srv, *a)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for running := true; running; {
		select {
		case <-hup:
			if err := srv.ReloadCertificate(); err != nil {
				cfg.Logger.Error("reload certificate", "error", err)
			} else {
				cfg.Logger.Info("certificate reloaded")
			}
		case <-ctx.Done():
			running = false
		}
	}
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Close(sctx)
}

func printDevApp(w io.Writer, srv *server.Server, a server.AppCredential) {
	fmt.Fprintf(w, `
Development app (kept in the data directory; use --app ID:KEY for your own):
  APP_ID=%s
  APP_KEY=%s

Onboard a thing over MQTT (mosquitto-clients), answer on the same topic:
  mosquitto_rr -h %s -p %d -V mqttv5 -i anonymous \
    -u 'type=oauth2&client_id=%s' -P 'client_secret=%s' \
    -t p/anonymous/thing-if/apps/%s/onboardings -e p/anonymous/thing-if/apps/%s/onboardings \
    -m "$(printf 'POST\nContent-Type: application/vnd.kii.OnboardingWithVendorThingIDByThing+json\n\n{"vendorThingID":"my-thing","thingPassword":"secret"}')"

`, a.ID, a.Key, "localhost", srv.Port("onboard-tcp"), a.ID, a.Key, a.ID, a.ID)
}

// rateFlag parses RATE[:BURST] into a token bucket configuration; a
// negative RATE turns the limit off, and "" (the flag's default, as in
// deploy/thingif.example.toml) keeps the built-in default.
func rateFlag(c *limit.BucketConfig) func(string) error {
	return func(s string) error {
		if s == "" {
			*c = limit.BucketConfig{}
			return nil
		}
		rate, burst, hasBurst := strings.Cut(s, ":")
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || math.IsNaN(r) || math.IsInf(r, 0) || r == 0 {
			return fmt.Errorf("want RATE[:BURST] with a non-zero RATE, got %q", s)
		}
		c.Rate = r
		if hasBurst {
			b, err := strconv.ParseFloat(burst, 64)
			if err != nil || !(b >= 1) || math.IsInf(b, 0) {
				return fmt.Errorf("want BURST of at least 1, got %q", burst)
			}
			c.Burst = b
		}
		return nil
	}
}

// appsFlag is --app: repeatable, a list in the config file, and a secret
// (the key) that errors never repeat.
type appsFlag []server.AppCredential

func (a *appsFlag) String() string {
	if a == nil {
		return ""
	}
	ids := make([]string, len(*a))
	for i, c := range *a {
		ids[i] = c.ID + ":…" // String feeds -h's default: never the key
	}
	return strings.Join(ids, " ")
}

// Set adds one ID:KEY. Its error leaves the value out, unlike
// server.ParseAppCredential's: the value holds the key.
func (a *appsFlag) Set(s string) error {
	c, err := server.ParseAppCredential(s)
	if err != nil {
		return errors.New("want ID:KEY, with no '/', '+' or '#' in ID")
	}
	*a = append(*a, c)
	return nil
}

func (a *appsFlag) isList()   {}
func (a *appsFlag) isSecret() {}

// hideSecretValue rewrites the flag package's parse error for a flag whose
// value may hold a secret (`invalid value "…" for flag -store: why`)
// without the value: stderr ends up in service logs.
func hideSecretValue(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	var hidden error
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(secretValue); !ok || hidden != nil {
			return
		}
		marker := " for flag -" + f.Name + ": "
		if i := strings.Index(msg, marker); i >= 0 && strings.HasPrefix(msg, "invalid value ") {
			hidden = fmt.Errorf("invalid value for flag -%s: %s", f.Name, msg[i+len(marker):])
		}
	})
	if hidden != nil {
		return hidden
	}
	return err
}

// storeFlag is --store: a URL that may hold the database password, so
// neither -h nor an error repeats it.
type storeFlag string

func (f *storeFlag) String() string {
	if f == nil || *f == "" {
		return ""
	}
	return "postgres://…"
}

// Set takes a postgres:// or postgresql:// URL, or "" for SQLite.
func (f *storeFlag) Set(s string) error {
	if s != "" && !postgres.IsDSN(s) {
		return errors.New("want a postgres:// or postgresql:// URL (leave it out for SQLite in --data)")
	}
	*f = storeFlag(s)
	return nil
}

func (f *storeFlag) isSecret() {}
