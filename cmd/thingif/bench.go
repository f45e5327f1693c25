package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/thingif/thingif/internal/bench"
	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/server"
)

func init() {
	add(&node{name: "bench", summary: "load a server on loopback: " + strings.Join(bench.Scenarios, ", "),
		args: "SCENARIO", nargs: 1, choices: bench.Scenarios, long: benchUsage, flags: runBench})
}

const benchUsage = `Scenarios (thingif):
  onboard   N new things onboard over MQTT, C at a time
  reonboard N new things onboard, then onboard again with their right passwords (a fleet after a power
            cut), C at a time; both rates and latencies
  connect   N things connect to the API broker and subscribe (at --rate per second if set), held for --hold;
            with --pid, the server's resident memory per connection (with --broker: any MQTT broker)
  push      K things subscribed; commands over REST at --rate for --duration; push and full-loop latency;
            with --rest-nodes, to another node of a cluster than the thing's (or its own: --command-node same)
  state     K things upload states over MQTT, each as fast as its answers come
Scenarios (any MQTT broker, --broker):
  pubsub    K clients on unique topics, QoS 1, --rate messages/s in all: one publisher→subscriber hop
  echo      K requesters and one responder, QoS 1, closed loop: request→echo round trips

Every address must be on loopback. The thingif target is --onboard/--mqtt/--rest, or --embedded
for a server in this process (its memory then includes the load generator's).
The progress bar is drawn on stderr when it is a terminal.
`

func runBench(fs *flagSet) action {
	var cfg bench.Config
	var restNodes string
	benchFlags(&cfg, &restNodes, fs)
	embedded := fs.Bool("embedded", false, "start a thingif server in this process (default password hashing; TCP and HTTP listeners on 127.0.0.1)")
	var app, key string
	fs.envString(&app, "app", "THINGIF_APP_ID", "", "the app's `ID`, or ID:KEY (with --embedded: bench:bench-key)")
	fs.envString(&key, "key", "THINGIF_APP_KEY", "", "the app's `key` (unless --app is ID:KEY)")
	fs.secretFile(&key, "key", "app key")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar, even on a terminal")
	return func(ctx context.Context, s stdio, args []string) error {
		stdout, stderr := s.out, s.err
		cfg.Scenario = args[0]
		if !slices.Contains(bench.Scenarios, cfg.Scenario) {
			return usagef("unknown scenario %q: want one of %s", cfg.Scenario, strings.Join(bench.Scenarios, ", "))
		}
		if cfg.CommandNode != bench.CommandNodeOther && cfg.CommandNode != bench.CommandNodeSame {
			return usagef("unknown --command-node %q: want %s or %s", cfg.CommandNode, bench.CommandNodeOther, bench.CommandNodeSame)
		}
		if limit, err := raiseFileLimit(); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
		} else if !*quiet {
			fmt.Fprintf(stderr, "open files limit %d\n", limit)
		}
		if app != "" {
			if !strings.Contains(app, ":") {
				app += ":" + key
			}
			a, err := server.ParseAppCredential(app)
			if err != nil {
				return usageErr(err)
			}
			cfg.AppID, cfg.AppKey = a.ID, a.Key
		}
		cfg.RESTNodes = splitList(restNodes)
		cfg.Broker = strings.TrimPrefix(cfg.Broker, "tcp://")
		cfg.Onboard = strings.TrimPrefix(cfg.Onboard, "tcp://")
		if !*quiet && isTerminal(stderr) {
			cfg.Progress = stderr
		}
		if *embedded {
			srv, dir, err := benchServer(ctx, &cfg)
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				srv.Close(sctx)
			}()
		}
		res, err := bench.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("bench %s: %w", cfg.Scenario, err)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		return res.WriteTable(stdout)
	}
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// isTerminal reports whether w is a terminal (a character device): the
// progress bar rewrites its line with \r, which in a file or a pipe is
// noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func benchFlags(cfg *bench.Config, restNodes *string, fs *flagSet) {
	fs.envString(&cfg.Onboard, "onboard", "THINGIF_ONBOARD", "127.0.0.1:1883", "thingif onboarding broker `host:port` (MQTT over TCP)")
	fs.StringVar(&cfg.MQTT, "mqtt", "", "thingif API broker `host:port` (default: the port in the onboarding answer)")
	fs.envString(&cfg.REST, "rest", "THINGIF_SERVER", "http://127.0.0.1:8080", "thingif REST API base `URL`")
	fs.envString(restNodes, "rest-nodes", "THINGIF_REST_NODES", "", "push: the REST API base `URLs` of a cluster's nodes, comma-separated; each thing's commands go to one of them, chosen by --command-node, instead of to --rest")
	fs.StringVar(&cfg.CommandNode, "command-node", bench.CommandNodeOther, "push with --rest-nodes: send a thing's commands to a node other than the one it is connected to (`other`: cross-node), or to that node (same)")
	fs.StringVar(&cfg.Broker, "broker", "", "MQTT broker `host:port` for pubsub, echo and connect")
	fs.IntVar(&cfg.N, "n", 0, "things to onboard or connect (default 1000)")
	fs.IntVar(&cfg.K, "k", 0, "connected things or clients (default 1000; 100 for state and echo)")
	fs.IntVar(&cfg.Concurrency, "c", 0, "onboardings, dials or REST requests at a time (default 16 onboarding, 64 otherwise)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "commands, messages or new connections per second (default 2000; connect: unpaced)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "length of the paced or closed-loop phase (default 10s)")
	fs.DurationVar(&cfg.Hold, "hold", 0, "connect: hold the connections this long before measuring memory (default 5s)")
	fs.IntVar(&cfg.Sources, "sources", 0, "loopback source addresses 127.0.0.2… to spread connections over (default one per 900)")
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process `id`, for its memory and CPU")
	fs.StringVar(&cfg.ThingsFile, "things", "", "`file` keeping onboarded things between runs against the same server")
	fs.StringVar(&cfg.Transport, "transport", "tcp", "connect: how connections reach the broker: tcp, tls, ws or wss (certificates not verified)")
	fs.BoolVar(&cfg.NoAnswer, "no-answer", false, "push: things do not send action results")
	fs.IntVar(&cfg.PayloadSize, "payload", 0, "pubsub and echo payload `bytes` (default 160)")
}

// benchServer starts an in-process server for --embedded and points cfg at
// it.
func benchServer(ctx context.Context, cfg *bench.Config) (*server.Server, string, error) {
	dir, err := os.MkdirTemp("", "thingif-bench-")
	if err != nil {
		return nil, "", err
	}
	if cfg.AppID == "" {
		cfg.AppID, cfg.AppKey = "bench", "bench-key"
	}
	scfg := server.Config{
		DataDir:    dir,
		Apps:       []server.AppCredential{{ID: cfg.AppID, Key: cfg.AppKey}},
		PublicHost: "127.0.0.1",
		OnboardTCP: "127.0.0.1:0", MQTTTCP: "127.0.0.1:0", HTTP: "127.0.0.1:0",
		// The load generator registers things from one address far faster
		// than a factory line: no registration rate limit here.
		Limits: server.Limits{
			RegistrationsPerAddr: limit.BucketConfig{Rate: -1},
			RegistrationsPerApp:  limit.BucketConfig{Rate: -1},
		},
	}
	srv, err := server.New(ctx, scfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	cfg.Onboard = srv.Addr("onboard-tcp").String()
	cfg.MQTT = srv.Addr("mqtt-tcp").String()
	cfg.REST = "http://" + srv.Addr("http").String()
	cfg.PID = os.Getpid()
	return srv, dir, nil
}
