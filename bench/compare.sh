#!/usr/bin/env bash
# bench/compare.sh runs thingif beside its baseline (Debian's mosquitto), all
# on loopback, and rewrites the results section
# of BENCHMARKS.md (between its "results:begin" and "results:end" markers;
# the analysis around it is written by hand), then runs bench/cluster.sh
# (PostgreSQL and three nodes, its own part of BENCHMARKS.md) unless
# NO_CLUSTER is set.
#
#   bench/compare.sh                 # the full run (about 10 minutes on 2 cores)
#   QUICK=1 bench/compare.sh         # small sizes, to check the script
#
# Needs: go, mosquitto (apt-get install -y mosquitto), jq; for
# bench/cluster.sh a PostgreSQL installation. Every server binds
# 127.0.0.1 only; every load is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."

N_CONNECT=${N_CONNECT:-19000}   # idle connections held (file limit here: 20,000 per process)
N_ONBOARD=${N_ONBOARD:-2000}    # new things onboarded, default password hashing
C_ONBOARD=${C_ONBOARD:-16}
K_PUSH=${K_PUSH:-1000}          # things / client pairs for push and pubsub
RATE=${RATE:-2000}              # commands or messages per second
RATE_LOW=${RATE_LOW:-1000}      # a second push rate, under the store's write ceiling
K_ECHO=${K_ECHO:-100}           # things / requesters for state and echo
DUR=${DUR:-10s}
OUT=${OUT:-BENCHMARKS.md}
if [[ -n "${QUICK:-}" ]]; then
	N_CONNECT=500 N_ONBOARD=100 K_PUSH=100 RATE=500 RATE_LOW=250 K_ECHO=20 DUR=2s
fi
PORT_MOSQ=31883 PORT_OB=31885 PORT_API=31886 PORT_HTTP=31880 PORT_PPROF=31860
PORT_API_TLS=31887 PORT_API_WS=31888 PORT_API_WSS=31889

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

go build -o "$work/thingif" ./cmd/thingif
T="$work/thingif"

cat >"$work/mosquitto.conf" <<EOF
listener $PORT_MOSQ 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_connections -1
persistence false
log_dest stderr
log_type error
EOF

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }

start_mosquitto() { mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" & MOSQ=$!; pids+=("$MOSQ"); wait_port $PORT_MOSQ; }
# start_thingif DATA_DIR [serve flags...]
start_thingif() {
	local data=$1; shift
	"$T" serve --data "$data" --app bench:bench-key --public-host 127.0.0.1 \
		--onboard-tcp 127.0.0.1:$PORT_OB --onboard-tls '' --onboard-ws '' --onboard-wss '' \
		--mqtt-tcp 127.0.0.1:$PORT_API --mqtt-tls '' --mqtt-ws '' --mqtt-wss '' \
		--http 127.0.0.1:$PORT_HTTP --https '' --pprof 127.0.0.1:$PORT_PPROF --log-level warn \
		--registrations-per-addr -1 --registrations-per-app -1 "$@" \
		>"$work/serve.log" 2>&1 &
	SERVE=$!; pids+=("$SERVE"); wait_port $PORT_HTTP
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

TI=(--onboard 127.0.0.1:$PORT_OB --rest http://127.0.0.1:$PORT_HTTP --app bench:bench-key --quiet)
cmds=()
# run NAME ARGS...: one bench run, JSON kept in $work/NAME.json, table in $work/NAME.md
run() {
	local name=$1; shift
	echo "== $name: thingif bench $*" >&2
	cmds+=("$name|thingif bench $*")
	"$T" bench "$@" --json >"$work/$name.json"
	jq -r '"**\(.scenario)** against \(.target) (\(.params | to_entries | map("\(.key)=\(.value)") | join(" ")))\n\n| measure | value | unit |\n|---|---:|---|\n" + (.metrics | map("| \(.name) | \(.value | if . == (. | floor) then tostring else (. * 100 | round / 100 | tostring) end) | \(.unit) |") | join("\n")) + "\n" + ((.notes // []) | map("\n- " + .) | join(""))' "$work/$name.json" >"$work/$name.md"
}
m() { jq -r --arg n "$2" '.metrics[] | select(.name == $n) | .value' "$work/$1.json"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# 1. Idle connections: memory per connection and connect rate, each server alone.
start_mosquitto
run connect-mosquitto connect --broker 127.0.0.1:$PORT_MOSQ -n "$N_CONNECT" --pid "$MOSQ" --quiet
stop "$MOSQ"
# The things for connect are onboarded with cheap hashing first: the hashing
# cost does not touch connects (endpoint passwords are SHA-256), and
# onboarding 19,000 things at the default cost would take minutes.
start_thingif "$work/data-connect" --password-hash-memory 64
run onboard-thingif-cheap-hash onboard "${TI[@]}" -n "$N_ONBOARD" -c "$C_ONBOARD" --pid "$SERVE"
run connect-thingif connect "${TI[@]}" -n "$N_CONNECT" --pid "$SERVE" --things "$work/things-connect.json"
stop "$SERVE"
# The same things over TLS and WebSocket, each on a fresh server (a Go
# process keeps the heap it grew, so a second run in one process would
# measure nothing). The generator does not verify the self-signed
# certificate thingif generates in its data directory.
for tr in tls ws wss; do
	start_thingif "$work/data-connect" --mqtt-tls 127.0.0.1:$PORT_API_TLS --mqtt-ws 127.0.0.1:$PORT_API_WS --mqtt-wss 127.0.0.1:$PORT_API_WSS
	run connect-thingif-$tr connect "${TI[@]}" -n "$N_CONNECT" --pid "$SERVE" --things "$work/things-connect.json" --transport $tr --mqtt 127.0.0.1:$(eval echo \$PORT_API_${tr^^})
	stop "$SERVE"
done

# 2. Messaging, thingif and the baselines in turn, one server running at a time.
start_thingif "$work/data"
run onboard-thingif onboard "${TI[@]}" -n "$N_ONBOARD" -c "$C_ONBOARD" --pid "$SERVE"
run push-thingif push "${TI[@]}" -k "$K_PUSH" --rate "$RATE" --duration "$DUR" --no-answer --pid "$SERVE" --things "$work/things.json"
run push-low-thingif push "${TI[@]}" -k "$K_PUSH" --rate "$RATE_LOW" --duration "$DUR" --no-answer --pid "$SERVE" --things "$work/things.json"
run push-loop-thingif push "${TI[@]}" -k "$K_PUSH" --rate "$RATE" --duration "$DUR" --pid "$SERVE" --things "$work/things.json"
run state-thingif state "${TI[@]}" -k "$K_ECHO" --duration "$DUR" --pid "$SERVE" --things "$work/things.json"
stop "$SERVE"
start_mosquitto
run pubsub-mosquitto pubsub --broker 127.0.0.1:$PORT_MOSQ -k "$K_PUSH" --rate "$RATE" --duration "$DUR" --pid "$MOSQ" --quiet
run pubsub-low-mosquitto pubsub --broker 127.0.0.1:$PORT_MOSQ -k "$K_PUSH" --rate "$RATE_LOW" --duration "$DUR" --pid "$MOSQ" --quiet
run echo-mosquitto echo --broker 127.0.0.1:$PORT_MOSQ -k "$K_ECHO" --duration "$DUR" --pid "$MOSQ" --quiet
stop "$MOSQ"

# 3. The report.
f=$(mktemp)
{
	echo "<!-- results:begin (written by bench/compare.sh; edit the script, not this part) -->"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/compare.sh\` at commit \`$(git rev-parse --short HEAD)\`."
	echo
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(free -g | awk '/Mem:/ {print $2}') GiB RAM; Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3), $(mosquitto -h 2>/dev/null | head -1 || true); open files limit $(ulimit -n)"
	echo "- load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "### Targets"
	echo
	echo "| measure | thingif | baseline | ratio | target |"
	echo "|---|---:|---:|---:|---|"
	# pass VALUE OP LIMIT: "yes" or "no"
	pass() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "yes" : "**no**" }'; }
	# cpu_us RUN RATE_METRIC: server CPU per message, in µs
	cpu_us() { awk -v c="$(m "$1" 'server CPU')" -v r="$(m "$1" "$2")" 'BEGIN { if (r == 0) print "n/a"; else printf "%.0f", c / 100 * 1e6 / r }'; }
	# cpu_us_n RUN COUNT_METRIC: the same from a count over the run's $DUR
	cpu_us_n() { awk -v c="$(m "$1" 'server CPU')" -v n="$(m "$1" "$2")" -v d="${DUR%s}" 'BEGIN { if (n == 0) print "n/a"; else printf "%.0f", c / 100 * d * 1e6 / n }'; }
	R=$(m connect-thingif 'server RSS per connection')
	echo "| server memory per connected thing, $N_CONNECT idle, TCP (RSS) | $(printf '%.1f' "$R") KiB | mosquitto $(m connect-mosquitto 'server RSS per connection' | xargs printf '%.1f') KiB | | ≤ 6 KiB: $(pass "$R" '<=' 6) |"
	echo "| the same over TLS / WebSocket / WebSocket over TLS (RSS) | $(for tr in tls ws wss; do m connect-thingif-$tr 'server RSS per connection' | xargs printf '%.1f\n'; done | paste -sd/ | sed 's|/| / |g') KiB | | | (reported) |"
	C=$(m connect-thingif 'connects/s (CONNECT+SUBSCRIBE)'); MC=$(m connect-mosquitto 'connects/s (CONNECT+SUBSCRIBE)')
	echo "| API-broker connects/s (CONNECT + SUBSCRIBE) | $(printf '%.0f' "$C") | mosquitto $(printf '%.0f' "$MC") | $(ratio "$C" "$MC") × mosquitto | ≥ 1.0 × mosquitto: $(pass "$(ratio "$C" "$MC")" '>=' 1.0) |"
	P50=$(m push-thingif 'push due→thing received p50'); MP50=$(m pubsub-mosquitto 'hop due→received p50')
	echo "| push p50 at $RATE/s over $K_PUSH things | $(printf '%.2f' "$P50") ms | mosquitto pubsub $(printf '%.2f' "$MP50") ms | $(ratio "$P50" "$MP50") × mosquitto | ≤ 1.5 × mosquitto: $(pass "$(ratio "$P50" "$MP50")" '<=' 1.5) |"
	S=$(m state-thingif 'uploads/s'); E=$(m echo-mosquitto 'round trips/s')
	echo "| durable state uploads/s over MQTT, K=$K_ECHO | $(printf '%.0f' "$S") | mosquitto echo $(printf '%.0f' "$E") | $(ratio "$S" "$E") × mosquitto | ≥ 1.3 × mosquitto: $(pass "$(ratio "$S" "$E")" '>=' 1.3) |"
	echo
	echo "### Other figures"
	echo
	echo "| measure | thingif | baseline | ratio |"
	echo "|---|---:|---:|---:|"
	echo "| server CPU per pushed command at $RATE/s | $(cpu_us push-thingif 'delivered/s') µs | mosquitto per pubsub message $(cpu_us_n pubsub-mosquitto 'messages received') µs | |"
	echo "| server CPU per connect (CONNECT + SUBSCRIBE) | $(cpu_us connect-thingif 'connects/s (CONNECT+SUBSCRIBE)') µs | mosquitto $(cpu_us connect-mosquitto 'connects/s (CONNECT+SUBSCRIBE)') µs | |"
	echo "| connects/s over TLS / WebSocket / WebSocket over TLS | $(for tr in tls ws wss; do m connect-thingif-$tr 'connects/s (CONNECT+SUBSCRIBE)' | xargs printf '%.0f\n'; done | paste -sd/ | sed 's|/| / |g') | | |"
	echo "| server CPU per state upload, K=$K_ECHO | $(cpu_us state-thingif 'uploads/s') µs | mosquitto per echo round trip (two messages) $(cpu_us echo-mosquitto 'round trips/s') µs | |"
	echo "| first onboardings/s, default hashing (argon2id 19 MiB, 2 passes), C=$C_ONBOARD | $(m onboard-thingif 'onboardings/s' | xargs printf '%.0f') | with --password-hash-memory 64: $(m onboard-thingif-cheap-hash 'onboardings/s' | xargs printf '%.0f') | |"
	echo "| push p99 at $RATE/s over $K_PUSH things | $(m push-thingif 'push due→thing received p99' | xargs printf '%.2f') ms | mosquitto $(m pubsub-mosquitto 'hop due→received p99' | xargs printf '%.2f') ms | |"
	P50=$(m push-low-thingif 'push due→thing received p50'); MP50=$(m pubsub-low-mosquitto 'hop due→received p50')
	echo "| push p50 / p99 at $RATE_LOW/s over $K_PUSH things | $(printf '%.2f' "$P50") / $(m push-low-thingif 'push due→thing received p99' | xargs printf '%.2f') ms | mosquitto pubsub $(printf '%.2f' "$MP50") / $(m pubsub-low-mosquitto 'hop due→received p99' | xargs printf '%.2f') ms | $(ratio "$P50" "$MP50") × mosquitto |"
	echo "| commands delivered/s, offered $RATE/s | $(m push-thingif 'delivered/s' | xargs printf '%.0f') | | |"
	for tr in "" -tls -ws -wss; do
		label=${tr#-}; label=${label:-tcp}
		echo "| server Go heap / goroutine stacks per idle connected thing, $label | $(m connect-thingif$tr 'server Go heap in use per connection' | xargs printf '%.2f') / $(m connect-thingif$tr 'server goroutine stacks per connection' | xargs printf '%.2f') KiB | | |"
	done
	echo
	echo "### Every run"
	echo
	for c in "${cmds[@]}"; do
		name=${c%%|*}
		echo "#### $name"
		echo
		echo "\`${c#*|}\`"
		echo
		cat "$work/$name.md"
		echo
	done
	echo "<!-- results:end -->"
} >"$f"
if [[ -f "$OUT" ]] && grep -q 'results:begin' "$OUT"; then
	awk -v f="$f" '
		/<!-- results:begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
		/<!-- results:end -->/ { skip = 0; next }
		!skip { print }' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
else
	cat "$f" >>"$OUT"
fi
rm -f "$f"
echo "wrote $OUT" >&2

# 4. PostgreSQL and three nodes, on the same binary.
if [[ -z "${NO_CLUSTER:-}" ]]; then
	T="$T" OUT="$OUT" bench/cluster.sh
fi
