package main

import (
	"context"
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
	"github.com/thingif/thingif/internal/secret"
	"github.com/thingif/thingif/internal/server"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `directory`")
	fs.Func("app", "make sure an app with this `ID:KEY` exists; repeatable", func(s string) error {
		a, err := server.ParseAppCredential(s)
		if err != nil {
			return err
		}
		cfg.Apps = append(cfg.Apps, a)
		return nil
	})
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
	var hashMem, hashTime uint
	fs.UintVar(&hashMem, "password-hash-memory", uint(secret.DefaultCost.Memory), "argon2id memory in `KiB` for new password hashes")
	fs.UintVar(&hashTime, "password-hash-time", uint(secret.DefaultCost.Time), "argon2id `passes` for new password hashes")
	fs.StringVar(&cfg.AppSide.WebhookURL, "webhook-url", "", "`URL` that server-code triggers POST to (empty: server-code triggers are refused)")
	fs.DurationVar(&cfg.AppSide.CommandExpiry, "command-expiry", 0, "how long a never-delivered command stays SENDING before it becomes EXPIRED (default 168h; negative: never)")
	fs.DurationVar(&cfg.AppSide.StateRetention, "state-retention", 0, "how long state history is kept (default 2160h; negative: forever)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	fs.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "serve /metrics to every REST client, not only to loopback ones")
	fs.StringVar(&cfg.Pprof, "pprof", "", "serve net/http/pprof's profiles on this `addr`ess (empty: off; keep it on loopback)")
	lim := &cfg.Limits
	fs.DurationVar(&lim.ConnectTimeout, "connect-timeout", 0, "time from TCP accept to a complete MQTT CONNECT (default 10s)")
	fs.DurationVar(&lim.WriteTimeout, "write-timeout", 0, "an MQTT client that does not read for this long is dropped (default 30s)")
	var maxPacket, maxInflight uint
	fs.UintVar(&maxPacket, "max-packet-size", 0, "largest MQTT packet in `bytes` (default 1 MiB + 4 KiB)")
	fs.IntVar(&lim.MaxHeaders, "max-headers", 0, "header lines per request over MQTT (default 64)")
	fs.IntVar(&lim.MaxConnsPerAddr, "max-conns-per-addr", 0, "connections per source IP address and broker (default 1000; -1: no bound)")
	fs.UintVar(&maxInflight, "max-inflight", 0, "QoS 1/2 messages in flight per MQTT client (default 256)")
	fs.IntVar(&lim.MaxPendingCommands, "max-pending-commands", 0, "commands waiting per thing before 429 (default 1000; -1: no bound)")
	fs.IntVar(&lim.MaxTriggersPerThing, "max-triggers-per-thing", 0, "triggers per thing before 409 (default 100; -1: no bound)")
	fs.IntVar(&lim.BruteForce.Free, "login-free-failures", 0, "wrong passwords or app keys per thing or address before blocking (default 5)")
	fs.DurationVar(&lim.BruteForce.Max, "login-max-block", 0, "longest block after repeated wrong credentials (default 5m)")
	fs.Func("registrations-per-addr", "new things registered per second per source address, `RATE[:BURST]` (default 10:100; -1: no limit)", rateFlag(&lim.RegistrationsPerAddr))
	fs.Func("registrations-per-app", "new things registered per second per app, `RATE[:BURST]` (default 100:1000; -1: no limit)", rateFlag(&lim.RegistrationsPerApp))
	fs.IntVar(&lim.PasswordCacheEntries, "password-cache-entries", 0, "successful password checks remembered for 24h, ~110 bytes each (default 100000; -1: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if hashMem == 0 || hashTime == 0 || hashMem > 4<<20 || hashTime > 100 {
		return fmt.Errorf("serve: --password-hash-memory must be 1..%d and --password-hash-time 1..100", 4<<20)
	}
	if maxPacket > 256<<20 || maxInflight > 65535 {
		return fmt.Errorf("serve: --max-packet-size must be at most %d and --max-inflight at most 65535", 256<<20)
	}
	lim.MaxPacketSize, lim.MaxInflight = uint32(maxPacket), uint16(maxInflight)
	cfg.PasswordCost = secret.Cost{Memory: uint32(hashMem), Time: uint32(hashTime), Threads: 1}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("serve: --log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

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
// negative RATE turns the limit off.
func rateFlag(c *limit.BucketConfig) func(string) error {
	return func(s string) error {
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
