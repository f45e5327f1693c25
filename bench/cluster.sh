#!/usr/bin/env bash
# bench/cluster.sh measures, in one run on loopback, the SQLite node beside
# a node on PostgreSQL and three nodes sharing one PostgreSQL database
# (docs/scale-out.md), and rewrites the part of BENCHMARKS.md between its
# "cluster:begin" and "cluster:end" markers (the analysis around it is
# written by hand). bench/compare.sh runs it after its own runs.
#
#   bench/cluster.sh                 # the full run (about 6 minutes on 2 cores)
#   QUICK=1 bench/cluster.sh         # small sizes, to check the script
#
# Needs: go (unless T names a thingif binary), jq, a PostgreSQL server
# installation (apt-get install -y postgresql; scripts/postgres-tmp starts
# a throwaway one here and this script stops it). Every server binds
# 127.0.0.1 only; every load is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."

N_ONBOARD=${N_ONBOARD:-1000}    # things onboarded then onboarded again, default password hashing
C_ONBOARD=${C_ONBOARD:-8}     # (16 made a loaded box answer 503 busy hashing)
K_PUSH=${K_PUSH:-1000}          # connected things for push
RATE=${RATE:-2000}              # commands per second
RATE_LOW=${RATE_LOW:-1000}
RATE_PROBE=${RATE_PROBE:-100}   # a rate every set-up here sustains, for the latency alone
K_ECHO=${K_ECHO:-100}           # things uploading states
DUR=${DUR:-10s}
OUT=${OUT:-BENCHMARKS.md}
if [[ -n "${QUICK:-}" ]]; then
	N_ONBOARD=50 K_PUSH=100 RATE=500 RATE_LOW=250 RATE_PROBE=50 K_ECHO=20 DUR=2s
fi
# Node i listens on 3200i (HTTP), 3201i (onboarding), 3202i (API broker),
# 3203i (pprof).
port() { echo $((32000 + 10 * $2 + $1)); }
HTTP=0 OB=1 API=2 PPROF=3

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
# The PostgreSQL server runs as the postgres user when this script runs
# as root: its directory must not be under the private $work.
pgdir=$(mktemp -d /tmp/thingif-bench-pg.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for w in "$work"/*.waits; do [[ -e $w ]] && touch "$w.stop"; done
	wait 2>/dev/null || true
	scripts/postgres-tmp stop "$pgdir" >/dev/null 2>&1 || true
	rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

if [[ -z "${T:-}" ]]; then
	go build -o "$work/thingif" ./cmd/thingif
	T="$work/thingif"
fi

eval "$(scripts/postgres-tmp start "$pgdir")"
PG=$THINGIF_TEST_POSTGRES # postgres://thingif:thingif@127.0.0.1:PORT/thingif
PG_PID=$(head -1 "$pgdir/data/postmaster.pid")
PG_PORT=$(sed 's|.*:\([0-9]*\)/.*|\1|' <<<"$PG")
createdb() { PGPASSWORD=thingif psql -q -h 127.0.0.1 -p "$PG_PORT" -U thingif -d thingif -c "CREATE DATABASE $1"; }

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
NODES=() # the PIDs of the running thingif nodes
# start_node I [serve flags...]: node I, its data in $work/data-$GROUP-I
start_node() {
	local i=$1; shift
	"$T" serve --data "$work/data-$GROUP-$i" --app bench:bench-key --public-host 127.0.0.1 \
		--onboard-tcp 127.0.0.1:$(port $OB "$i") --onboard-tls '' --onboard-ws '' --onboard-wss '' \
		--mqtt-tcp 127.0.0.1:$(port $API "$i") --mqtt-tls '' --mqtt-ws '' --mqtt-wss '' \
		--http 127.0.0.1:$(port $HTTP "$i") --https '' --pprof 127.0.0.1:$(port $PPROF "$i") --log-level warn \
		--registrations-per-addr -1 --registrations-per-app -1 "$@" \
		>"$work/serve-$GROUP-$i.log" 2>&1 &
	NODES+=($!); pids+=($!); wait_port "$(port $HTTP "$i")"
}
stop_nodes() { for p in "${NODES[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done; NODES=(); }
rest() { echo "http://127.0.0.1:$(port $HTTP "$1")"; }

# ticks PID...: "pid utime+stime" per process, in clock ticks.
ticks() { for p in "$@"; do [[ -r /proc/$p/stat ]] && awk -v p="$p" '{ sub(/^.*\) /, ""); print p, $12 + $13 }' "/proc/$p/stat"; done; true; }
pg_pids() { echo "$PG_PID"; pgrep -P "$PG_PID" || true; }
# cpu_delta BEFORE AFTER: seconds of CPU between two ticks snapshots (a
# process that started in between counts from zero).
cpu_delta() { awk -v hz="$(getconf CLK_TCK)" 'NR == FNR { b[$1] = $2; next } { s += $2 - b[$1] } END { printf "%.3f", s / hz }' "$1" "$2"; }

# sample FILE: every 0.2 s until FILE.stop exists, one line per active
# client backend of PostgreSQL: its wait event, or "CPU" (over one psql
# session, which ends with its input).
sample() {
	while [[ ! -e $1.stop ]] && sleep 0.2; do
		echo "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
			WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid();"
	done | PGPASSWORD=thingif psql -qAt -h 127.0.0.1 -p "$PG_PORT" -U thingif -d thingif >"$1" 2>/dev/null
}

cmds=()
# run NAME ARGS...: one bench run, JSON kept in $work/NAME.json, the CPU
# seconds of the thingif nodes and of PostgreSQL during it in
# $work/NAME.cpu ("thingif postgres"), PostgreSQL's wait events (on
# PostgreSQL runs) in $work/NAME.waits.
run() {
	local name=$1; shift
	echo "== $name: thingif bench $*" >&2
	cmds+=("$name|thingif bench $*")
	local sampler=""
	if [[ $GROUP != sqlite ]]; then sample "$work/$name.waits" & sampler=$!; fi
	ticks "${NODES[@]}" >"$work/t0"; ticks $(pg_pids) >"$work/p0"
	"$T" bench "$@" --quiet --json >"$work/$name.json"
	ticks "${NODES[@]}" >"$work/t1"; ticks $(pg_pids) >"$work/p1"
	[[ -z $sampler ]] || { touch "$work/$name.waits.stop"; wait "$sampler" || true; }
	echo "$(cpu_delta "$work/t0" "$work/t1") $(cpu_delta "$work/p0" "$work/p1")" >"$work/$name.cpu"
}
# waits RUN: the commonest wait events of its samples, in percent
waits() {
	sort "$work/$1.waits" | uniq -c | sort -rn | awk -v n="$(wc -l <"$work/$1.waits")" \
		'NR <= 4 { printf "%s%s %.0f%%", (NR > 1 ? ", " : ""), $2, 100 * $1 / n } END { printf (n ? " (%d samples)" : "no backend active in any sample"), n }'
}
m() { jq -r --arg n "$2" '.metrics[] | select(.name == $n) | .value' "$work/$1.json"; }

TI=(--onboard 127.0.0.1:$(port $OB 0) --app bench:bench-key)
# group NAME: the state, onboarding and push runs against the running
# node(s); PUSH_ARGS say where commands go (and PUSH_SAME, if set, for a
# first pair of push runs). The pushes come last, the faster last of all:
# commands a server could not deliver in time stay pending, and would be
# pushed to the things when they next connect.
group() {
	local g=$1; shift
	local things="$work/things-$g.json"
	# The push things are onboarded (and connected once) beforehand, so
	# that no push run counts their password hashing.
	run "$g-things" connect "${TI[@]}" --rest "$(rest 0)" -n "$K_PUSH" -c "$C_ONBOARD" --hold 1ms --things "$things"
	run "$g-state" state "${TI[@]}" -k "$K_ECHO" --duration "$DUR" --things "$things"
	run "$g-reonboard" reonboard "${TI[@]}" -n "$N_ONBOARD" -c "$C_ONBOARD"
	if ((${#PUSH_SAME[@]})); then
		run "$g-same-push-probe" push "${TI[@]}" "${PUSH_SAME[@]}" -k "$K_PUSH" --rate "$RATE_PROBE" --duration "$DUR" --no-answer --things "$things"
		run "$g-same-push-low" push "${TI[@]}" "${PUSH_SAME[@]}" -k "$K_PUSH" --rate "$RATE_LOW" --duration "$DUR" --no-answer --things "$things"
		run "$g-same-push" push "${TI[@]}" "${PUSH_SAME[@]}" -k "$K_PUSH" --rate "$RATE" --duration "$DUR" --no-answer --things "$things"
	fi
	run "$g-push-probe" push "${TI[@]}" "${PUSH_ARGS[@]}" -k "$K_PUSH" --rate "$RATE_PROBE" --duration "$DUR" --no-answer --things "$things"
	run "$g-push-low" push "${TI[@]}" "${PUSH_ARGS[@]}" -k "$K_PUSH" --rate "$RATE_LOW" --duration "$DUR" --no-answer --things "$things"
	run "$g-push" push "${TI[@]}" "${PUSH_ARGS[@]}" -k "$K_PUSH" --rate "$RATE" --duration "$DUR" --no-answer --things "$things"
}

# 1. The SQLite node.
GROUP=sqlite
start_node 0 --node n0
PUSH_ARGS=(--rest "$(rest 0)" --pid "${NODES[0]}") PUSH_SAME=()
group sqlite
stop_nodes

# 2. One node on PostgreSQL.
GROUP=pg
createdb bench_pg
start_node 0 --store "${PG%/*}/bench_pg" --node n0
PUSH_ARGS=(--rest "$(rest 0)" --pid "${NODES[0]}") PUSH_SAME=()
group pg
stop_nodes

# 3. Three nodes on one PostgreSQL database; onboarding through n0 places
# the things over the three. Commands go to a node other than the thing's
# (cross-node), then to its own.
GROUP=cluster
createdb bench_cluster
for i in 0 1 2; do start_node $i --store "${PG%/*}/bench_cluster" --node n$i; done
ALL=$(rest 0),$(rest 1),$(rest 2)
PUSH_ARGS=(--rest-nodes "$ALL" --command-node other) PUSH_SAME=(--rest-nodes "$ALL" --command-node same)
group cluster
stop_nodes

# 4. The report.
f=$(mktemp)
{
	# fmt2 RUN METRIC: the value with two decimals
	fmt2() { m "$1" "$2" | xargs printf '%.2f'; }
	fmt0() { m "$1" "$2" | xargs printf '%.0f'; }
	p50p99() { echo "$(fmt2 "$1" 'push due→thing received p50') / $(fmt2 "$1" 'push due→thing received p99') ms"; }
	# cpu RUN WHICH(1 thingif, 2 postgres) COUNT_METRIC: µs of CPU per event
	cpu() { awk -v c="$(cut -d' ' -f"$2" "$work/$1.cpu")" -v n="$(m "$1" "$3")" 'BEGIN { if (n == 0) print "n/a"; else printf "%.0f µs", c * 1e6 / n }'; }
	row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }
	echo "<!-- cluster:begin (written by bench/cluster.sh; edit the script, not this part) -->"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/cluster.sh\` at commit \`$(git rev-parse --short HEAD)\`."
	echo
	echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(free -g | awk '/Mem:/ {print $2}') GiB RAM; Linux $(uname -r)"
	echo "- $(go version | cut -d' ' -f3), $("$(dirname "$(ls -d /usr/lib/postgresql/*/bin/postgres | tail -1)")/postgres" --version) (scripts/postgres-tmp: fsync on, defaults otherwise)"
	echo "- load average before the run: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| measure | SQLite node | PostgreSQL, one node | three nodes, command on the thing's node | three nodes, command on another node |"
	echo "|---|---:|---:|---:|---:|"
	for r in probe low ""; do
		rate=$RATE_LOW; [[ -z $r ]] && rate=$RATE; [[ $r == probe ]] && rate=$RATE_PROBE
		s=${r:+-$r}
		row "push p50 / p99 at $rate/s over $K_PUSH things" "$(p50p99 sqlite-push$s)" "$(p50p99 pg-push$s)" "$(p50p99 cluster-same-push$s)" "$(p50p99 cluster-push$s)"
		row "commands delivered/s, offered $rate/s" "$(fmt0 sqlite-push$s 'delivered/s')" "$(fmt0 pg-push$s 'delivered/s')" "$(fmt0 cluster-same-push$s 'delivered/s')" "$(fmt0 cluster-push$s 'delivered/s')"
		row "thingif CPU per command at $rate/s (all nodes)" "$(cpu sqlite-push$s 1 'pushes received')" "$(cpu pg-push$s 1 'pushes received')" "$(cpu cluster-same-push$s 1 'pushes received')" "$(cpu cluster-push$s 1 'pushes received')"
		row "PostgreSQL CPU per command at $rate/s" "" "$(cpu pg-push$s 2 'pushes received')" "$(cpu cluster-same-push$s 2 'pushes received')" "$(cpu cluster-push$s 2 'pushes received')"
	done
	row "durable state uploads/s over MQTT, K=$K_ECHO" "$(fmt0 sqlite-state 'uploads/s')" "$(fmt0 pg-state 'uploads/s')" "$(fmt0 cluster-state 'uploads/s')" ""
	row "state upload round trip p50 / p99" "$(fmt2 sqlite-state 'upload round trip p50') / $(fmt2 sqlite-state 'upload round trip p99') ms" "$(fmt2 pg-state 'upload round trip p50') / $(fmt2 pg-state 'upload round trip p99') ms" "$(fmt2 cluster-state 'upload round trip p50') / $(fmt2 cluster-state 'upload round trip p99') ms" ""
	row "thingif / PostgreSQL CPU per state upload" "$(cpu sqlite-state 1 'uploads answered 204')" "$(cpu pg-state 1 'uploads answered 204') / $(cpu pg-state 2 'uploads answered 204')" "$(cpu cluster-state 1 'uploads answered 204') / $(cpu cluster-state 2 'uploads answered 204')" ""
	row "first onboardings/s, default hashing, C=$C_ONBOARD, through one node" "$(fmt0 sqlite-reonboard 'first onboardings/s')" "$(fmt0 pg-reonboard 'first onboardings/s')" "$(fmt0 cluster-reonboard 'first onboardings/s')" ""
	row "re-onboardings/s (the same things again), C=$C_ONBOARD" "$(fmt0 sqlite-reonboard 're-onboardings/s')" "$(fmt0 pg-reonboard 're-onboardings/s')" "$(fmt0 cluster-reonboard 're-onboardings/s')" ""
	echo
	# Targets
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
	pass() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "yes" : "**no**" }'; }
	# kept RUN RATE: whether the run delivered at least 95 % of its rate
	kept() { awk -v d="$(m "$1" 'delivered/s')" -v r="$2" 'BEGIN { exit !(d >= 0.95 * r) }'; }
	# judge VALUE OP LIMIT RATE BASE RUN: the verdict; a RUN that fell
	# behind its rate fails (its latency is a queue's length), and a
	# BASE that fell behind leaves nothing to compare with
	judge() {
		kept "$5" "$4" || { echo "n/a: $5 delivered $(fmt0 "$5" 'delivered/s')/s"; return; }
		kept "$6" "$4" || { echo "**no**: delivered $(fmt0 "$6" 'delivered/s')/s"; return; }
		pass "$1" "$2" "$3"
	}
	echo "| target | at $RATE_PROBE/s | at $RATE_LOW/s | at $RATE/s |"
	echo "|---|---|---|---|"
	line="| PostgreSQL node push p50 ≤ 2 × the SQLite node's"
	for s in -probe -low ""; do
		rate=$RATE_LOW; [[ -z $s ]] && rate=$RATE; [[ $s == -probe ]] && rate=$RATE_PROBE
		x=$(ratio "$(m pg-push$s 'push due→thing received p50')" "$(m sqlite-push$s 'push due→thing received p50')")
		line+=" | $x ×: $(judge "$x" '<=' 2 "$rate" sqlite-push$s pg-push$s)"
	done
	echo "$line |"
	line="| cross-node push adds ≤ 1 ms at p50 (three nodes, other node − same node)"
	for s in -probe -low ""; do
		rate=$RATE_LOW; [[ -z $s ]] && rate=$RATE; [[ $s == -probe ]] && rate=$RATE_PROBE
		d=$(awk -v a="$(m cluster-push$s 'push due→thing received p50')" -v b="$(m cluster-same-push$s 'push due→thing received p50')" 'BEGIN { printf "%.2f", a - b }')
		line+=" | $d ms: $(judge "$d" '<=' 1 "$rate" cluster-same-push$s cluster-push$s)"
	done
	echo "$line |"
	echo
	echo "PostgreSQL's active client backends, sampled every 0.2 s (wait event, or CPU when none):"
	echo
	for r in pg-push-probe pg-push-low pg-push cluster-same-push-probe cluster-same-push-low cluster-same-push cluster-push-probe cluster-push-low cluster-push cluster-state; do
		echo "- $r: $(waits $r)"
	done
	echo
	echo "Things per node in the three-node runs: $(jq -r '.notes[] | select(startswith("things per node")) | sub("things per node: "; "")' "$work/cluster-push.json")."
	echo "A push run waits up to 30 s after its last command for the pushes still due; delivered/s below the offered rate is a server that fell behind."
	echo "CPU per command is the nodes' (and PostgreSQL's server processes') CPU time over the whole bench run, connects included, divided by the commands delivered."
	echo
	echo "<details><summary>Every run</summary>"
	echo
	for c in "${cmds[@]}"; do
		name=${c%%|*}
		echo "- $name: \`${c#*|}\`"
	done
	echo
	echo "</details>"
	echo
	echo "<!-- cluster:end -->"
} | sed "s|$work|\$work|g" >"$f"
if [[ -f "$OUT" ]] && grep -q 'cluster:begin' "$OUT"; then
	awk -v f="$f" '
		/<!-- cluster:begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
		/<!-- cluster:end -->/ { skip = 0; next }
		!skip { print }' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
else
	cat "$f" >>"$OUT"
fi
rm -f "$f"
echo "wrote $OUT" >&2
