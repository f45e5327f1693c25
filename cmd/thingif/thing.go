package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/thingif/thingif/thing"
)

func init() {
	add(&node{name: "thing", summary: "things: a simulated thing, and the app's things over REST", subs: []*node{
		{name: "run", summary: "run a simulated thing", long: thingRunHelp, flags: thingRun},
		{name: "onboard", summary: "onboard a thing once and print its mqttEndpoint as JSON", flags: thingOnboard},
		{name: "list", summary: "list the app's things (app admin)", flags: thingList},
		{name: "get", summary: "show a thing by thing ID or VENDOR_THING_ID:{vendorThingID}", args: "THING", nargs: 1, flags: thingGet},
	}})
}

// thingRunHelp describes thing run.
const thingRunHelp = `run onboards over MQTT, connects to the API broker, prints every command it
receives as a JSON line, answers it (success unless --fail), uploads a state
on a timer and reconnects after any drop until interrupted.
`

// thingFlags are the flags run and onboard share.
type thingFlags struct {
	cfg      thing.Config
	app, key string
	caFile   string
	insecure bool
	logLevel string
}

func (f *thingFlags) register(fs *flagSet) {
	fs.envString(&f.cfg.Server, "server", "THINGIF_ONBOARD", "tcp://localhost:1883", "onboarding broker `URL`: tcp://, ssl://, ws://, wss://")
	fs.envString(&f.app, "app", "THINGIF_APP_ID", "", "app `ID`, or ID:KEY")
	fs.envString(&f.key, "key", "THINGIF_APP_KEY", "", "app `key` (unless --app is ID:KEY)")
	fs.secretFile(&f.key, "key", "app key")
	fs.StringVar(&f.cfg.VendorThingID, "vendor-thing-id", "", "the thing's vendorThingID")
	fs.StringVar(&f.cfg.ThingID, "thing-id", "", "the thing's thingID (instead of --vendor-thing-id)")
	fs.StringVar(&f.cfg.Password, "password", "", "the thing's `password`")
	fs.secretStdin(&f.cfg.Password, "password", "thing's password")
	fs.StringVar(&f.cfg.ThingType, "thing-type", "", "thingType sent with the onboarding")
	fs.StringVar(&f.cfg.FirmwareVersion, "firmware-version", "", "firmwareVersion sent with the onboarding")
	fs.StringVar(&f.caFile, "ca", "", "PEM `file` of the CA that signed the server certificate (ssl, wss)")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the server certificate")
	fs.DurationVar(&f.cfg.ReonboardAfter, "reonboard-after", 0, "onboard again when the API broker was unreachable this long, to reach a live node (default 1m; negative: never)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
}

// config completes the thing.Config from the flags.
func (f *thingFlags) config(stderr io.Writer) (thing.Config, error) {
	cfg := f.cfg
	if id, key, ok := strings.Cut(f.app, ":"); ok {
		cfg.AppID, cfg.AppKey = id, key
	} else {
		cfg.AppID, cfg.AppKey = f.app, f.key
	}
	if cfg.AppID == "" || cfg.AppKey == "" {
		return cfg, usagef("--app ID:KEY, or --app ID with --key, --key-file or $THINGIF_APP_KEY, is required")
	}
	if f.caFile != "" || f.insecure {
		tc := &tls.Config{InsecureSkipVerify: f.insecure}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return cfg, fmt.Errorf("--ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, fmt.Errorf("--ca: no certificate in %s", f.caFile)
			}
		}
		cfg.TLSConfig = tc
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cfg, usagef("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, cfg.Validate()
}

func thingOnboard(fs *flagSet) action {
	var f thingFlags
	f.register(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	return func(ctx context.Context, s stdio, _ []string) error {
		stdout, stderr := s.out, s.err
		cfg, err := f.config(stderr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		cr, err := thing.Onboard(ctx, cfg)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(cr.Endpoint)
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
}

func thingRun(fs *flagSet) action {
	var f thingFlags
	f.register(fs)
	credentials := fs.String("credentials", "", "keep the credentials in this `file` (0600) so that a restart reconnects without onboarding (default: memory)")
	fail := fs.Bool("fail", false, "answer every action as failed")
	failMessage := fs.String("fail-message", "simulated failure", "errorMessage of failed actions")
	stateEvery := fs.Duration("state-interval", 10*time.Second, "upload a state this often (0: never)")
	stateJSON := fs.String("state", "", "state `JSON` object to upload (default: {\"power\":…,\"uptime\":seconds})")
	trait := fs.String("trait", "", "upload the state in the trait form, as this `alias` ({\"ALIAS\":{…}}, application/vnd.kii.MultipleTraitState+json), so that history queries and STATES triggers on the alias see it (default: the v1 form)")
	return func(ctx context.Context, s stdio, _ []string) error {
		stdout, stderr := s.out, s.err
		cfg, err := f.config(stderr)
		if err != nil {
			return err
		}
		var fixedState map[string]any
		if *stateJSON != "" {
			if err := json.Unmarshal([]byte(*stateJSON), &fixedState); err != nil {
				return usagef("--state: %w", err)
			}
		}
		if *credentials != "" {
			cfg.Store = &thing.FileStore{Path: *credentials}
		}

		var (
			outMu sync.Mutex
			power = true // the simulated device's power, changed by turnPower
		)
		emit := func(v any) {
			b, _ := json.Marshal(v)
			outMu.Lock()
			fmt.Fprintf(stdout, "%s\n", b)
			outMu.Unlock()
		}
		cfg.OnCommand = func(_ context.Context, cmd *thing.Command) []thing.Result {
			emit(json.RawMessage(cmd.Raw))
			res := make([]thing.Result, len(cmd.Actions))
			for i, a := range cmd.Actions {
				if *fail {
					res[i] = thing.Result{ErrorMessage: *failMessage}
					continue
				}
				if a.Name == "turnPower" {
					var p struct{ Power *bool }
					if a.Decode(&p) == nil && p.Power != nil {
						outMu.Lock()
						power = *p.Power
						outMu.Unlock()
					}
				}
				res[i] = thing.Result{Succeeded: true}
			}
			return res
		}

		c, err := thing.NewClient(ctx, cfg)
		if err != nil {
			return err
		}
		start := time.Now()
		var tick <-chan time.Time
		if *stateEvery > 0 {
			t := time.NewTicker(*stateEvery)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return c.Disconnect(dctx)
			case <-c.Done():
				return c.Err()
			case <-tick:
				state := fixedState
				if state == nil {
					outMu.Lock()
					state = map[string]any{"power": power, "uptime": int(time.Since(start).Seconds())}
					outMu.Unlock()
				}
				sctx, cancel := context.WithTimeout(ctx, *stateEvery)
				put := func() error { return c.PutState(sctx, state) }
				if *trait != "" {
					put = func() error { return c.PutTraitState(sctx, map[string]any{*trait: state}) }
				}
				if err := put(); err != nil && ctx.Err() == nil {
					cfg.Logger.Warn("state upload failed", "error", err)
				}
				cancel()
			}
		}
	}
}
