#!/usr/bin/env bash
#
# The end-to-end canary at scale, side by side with Artillery: both against the same reference
# service (chatsvc, release build, direct mode: api + WebSocket gateway), one after the other, each
# against a freshly started chatsvc.
#
#   chatload   `chatload run` with [e2e]: $SUBSCRIBERS WebSocket subscribers over $CHANNELS channels
#              (so $SUBSCRIBERS / $CHANNELS recipients a message) and $POSTS posts/s; its own
#              database traffic at 1 write/s, probes off, reads off.
#   artillery  Artillery (installed from npm into .stack/artillery, the newest release whose
#              `engines` accepts this machine's Node): $SUBSCRIBERS WebSocket connections held
#              (bench/artillery/hold.yml) and $POSTS HTTP posts/s (bench/artillery/post.yml), two
#              processes whose CPU and memory are added up.
#
# Each run: connect the population at $CONNECT_RATE/s, let it settle, then measure $DURATION s:
# the client's user+sys CPU (from /proc/<pid>/stat, the whole process tree) and its RSS (VmRSS at
# the end, VmHWM peak). For chatload also what only it measures: deliveries, delivery latency
# from the schedule, subscribers ready, anomalies (from its /metrics). The report replaces the
# "End-to-end canary" section of bench/RESULTS.md (between its markers) and goes to stdout.
#
# Usage: scripts/bench_e2e.sh          (about 5 minutes)
#        SUBSCRIBERS=2000 CHANNELS=200 POSTS=200 DURATION=30 scripts/bench_e2e.sh

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

SUBSCRIBERS=${SUBSCRIBERS:-10000}
CHANNELS=${CHANNELS:-1000}
POSTS=${POSTS:-1000}
CONNECT_RATE=${CONNECT_RATE:-1000}
DURATION=${DURATION:-60}
SETTLE=${SETTLE:-10}
ARTILLERY_DIR=.stack/artillery
OUT=${OUT:-bench/RESULTS.md}
KEYSPACE=chatsvc_bench
PREFIX=chatsvcbench
API=127.0.0.1:18088
GATEWAY=127.0.0.1:18089
METRICS=127.0.0.1:19742

log() { printf '[bench-e2e] %s\n' "$*" >&2; }

scripts/stack.sh up >&2
cargo build --release --locked --bin chatload --bin chatsvc >&2
ulimit -n "$(ulimit -Hn)"

# Artillery: the newest version whose engines.node accepts this Node (2.0.22 and later want 22).
ARTILLERY_VERSION=${ARTILLERY_VERSION:-2.0.21}
if [[ ! -x $ARTILLERY_DIR/node_modules/.bin/artillery ]]; then
    command -v npm >/dev/null || { log "installing nodejs and npm"; apt-get install -y -qq nodejs npm >&2; }
    log "installing artillery@$ARTILLERY_VERSION into $ARTILLERY_DIR"
    mkdir -p "$ARTILLERY_DIR"
    # Its Playwright engine would download a browser at install time: not needed here.
    (cd "$ARTILLERY_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund \
        --loglevel=error "artillery@$ARTILLERY_VERSION" >&2)
fi
ARTILLERY=$PWD/$ARTILLERY_DIR/node_modules/.bin/artillery

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The pids of a process and all its descendants.
tree() {
    local p=$1
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null); do tree "$c"; done
}
# user+sys CPU seconds of a process tree.
cpu_seconds() {
    local ticks=0 t
    for p in $(tree "$1"); do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        ticks=$((ticks + t))
    done
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}
# Summed VmRSS / VmHWM (KiB) of a process tree.
mem_kib() { # $1 pid, $2 field
    local sum=0 v
    for p in $(tree "$1"); do
        v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}
metric() { # $1 series (exact text before the value) from chatload's /metrics
    curl -fsS "http://$METRICS/metrics" | awk -v s="$1" 'index($0, s " ") == 1 {print $NF; found=1} END {if (!found) print "nan"}'
}
hist_quantile() { # $1 q, $2 histogram name: from the delta of two saved scrapes (before, after)
    python3 - "$1" "$2" "$work/before.prom" "$work/after.prom" <<'PY'
import sys, re
q, name, a, b = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[float('inf') if m[1] == '+Inf' else float(m[1])] = float(m[2])
    return out
x, y = buckets(a), buckets(b)
bs = sorted(y)
d = [y[k] - x.get(k, 0) for k in bs]
total = d[-1]
rank, lo, lc = q * total, 0.0, 0.0
for bound, c in zip(bs, d):
    if c >= rank:
        print("%.1f" % (1000 * (lo + (min(bound, bs[-2]) - lo) * (rank - lc) / max(c - lc, 1e-9))))
        break
    lo, lc = bound, c
PY
}

start_chatsvc() {
    local role args=(--mode direct --keyspace "$KEYSPACE" --prefix "$PREFIX")
    for role in api gateway; do
        local listen=$API
        [[ $role == gateway ]] && listen=$GATEWAY
        rm -f "$work/$role.ready"
        target/release/chatsvc --role "$role" --listen "$listen" --ready-file "$work/$role.ready" \
            "${args[@]}" 2>"$work/chatsvc-$role.log" &
        pids+=($!)
        eval "${role}_pid=$!"
    done
    for role in api gateway; do
        for _ in $(seq 1 600); do [[ -f $work/$role.ready ]] && break; sleep 0.1; done
        [[ -f $work/$role.ready ]] || { log "chatsvc $role not ready"; cat "$work/chatsvc-$role.log" >&2; exit 1; }
    done
}
stop_chatsvc() {
    kill -TERM "$api_pid" "$gateway_pid" 2>/dev/null || true
    wait "$api_pid" "$gateway_pid" 2>/dev/null || true
}

connect_seconds=$(( (SUBSCRIBERS + CONNECT_RATE - 1) / CONNECT_RATE ))

# ---- chatload --------------------------------------------------------------------------------
log "chatload: $SUBSCRIBERS subscribers over $CHANNELS channels, $POSTS posts/s"
start_chatsvc
cat >"$work/chatload.toml" <<CFG
[http]
listen = "$METRICS"
[scylla]
keyspace = "chatload_bench_e2e"
[redis]
key_prefix = "chatload_bench_e2e"
[traffic]
write_rate = 1.0
read_rate = 0.0
[probes.ttl_metadata]
enabled = false
[probes.ttl_expiry]
enabled = false
[probes.recent_50]
enabled = false
[probes.range_5m]
enabled = false
[probes.pagination]
enabled = false
[probes.partition_balance]
enabled = false
[probes.redis_ttl]
enabled = false
[probes.redis_cache]
enabled = false
[probes.redis_pubsub]
enabled = false
[e2e]
enabled = true
base_url = "http://$API"
channels = $CHANNELS
[e2e.post]
rate = $POSTS
connections = 256
[e2e.read]
rate = 0.0
[e2e.subscribers]
count = $SUBSCRIBERS
connect_rate = $CONNECT_RATE
url = "ws://$GATEWAY/ws?channel={channel}&user={subscriber}"
[e2e.visibility]
keyspace = "$KEYSPACE"
sample = 0.01
[e2e.queue]
enabled = false
CFG
target/release/chatload run --config "$work/chatload.toml" 2>"$work/chatload.log" &
cl=$!
pids+=("$cl")
for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$METRICS/healthz" 2>/dev/null && break; sleep 0.1; done
sleep $((connect_seconds + SETTLE))
ready_start=$(metric 'chatload_e2e_subscribers{state="ready"}')
curl -fsS "http://$METRICS/metrics" >"$work/before.prom"
c0=$(cpu_seconds "$cl")
t0=$(date +%s.%N)
min_ready=$ready_start
for _ in $(seq 1 "$DURATION"); do
    sleep 1
    r=$(metric 'chatload_e2e_subscribers{state="ready"}')
    min_ready=$(awk -v a="$min_ready" -v b="$r" 'BEGIN { print (b < a) ? b : a }')
done
c1=$(cpu_seconds "$cl")
t1=$(date +%s.%N)
curl -fsS "http://$METRICS/metrics" >"$work/after.prom"
cl_rss=$(mem_kib "$cl" VmRSS)
cl_hwm=$(mem_kib "$cl" VmHWM)
delta() { # series: after - before
    local a b
    a=$(awk -v s="$1" 'index($0, s " ") == 1 {print $NF}' "$work/after.prom")
    b=$(awk -v s="$1" 'index($0, s " ") == 1 {print $NF}' "$work/before.prom")
    awk -v a="${a:-0}" -v b="${b:-0}" 'BEGIN { printf "%.0f", a - b }'
}
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
cl_cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')
delivered=$(delta 'chatload_e2e_deliveries_total{outcome="ok"}')
lost=$(delta 'chatload_e2e_deliveries_total{outcome="lost"}')
aborted=$(delta 'chatload_e2e_deliveries_total{outcome="aborted"}')
posts_ok=$(delta 'chatload_operations_total{backend="chat_api",op="api_post",outcome="ok"}')
posts_dropped=$(delta 'chatload_operations_total{backend="chat_api",op="api_post",outcome="dropped"}')
anomalies=0
for k in duplicate out_of_order late ghost unknown unparseable; do
    anomalies=$((anomalies + $(delta "chatload_e2e_anomalies_total{kind=\"$k\"}")))
done
p50=$(hist_quantile 0.5 chatload_e2e_delivery_seconds)
p95=$(hist_quantile 0.95 chatload_e2e_delivery_seconds)
p99=$(hist_quantile 0.99 chatload_e2e_delivery_seconds)
rx_p99=$(hist_quantile 0.99 chatload_e2e_rx_lag_seconds)
gw_rss=$(mem_kib "$gateway_pid" VmRSS)
kill -TERM "$cl"; wait "$cl" 2>/dev/null || true
stop_chatsvc
log "chatload: ${cl_cpu}s CPU over ${secs}s, $delivered delivered, RSS $((cl_rss / 1024)) MiB"

# ---- Artillery -------------------------------------------------------------------------------
log "artillery $ARTILLERY_VERSION: $SUBSCRIBERS WebSocket connections held, $POSTS posts/s"
start_chatsvc
hold=$((connect_seconds + SETTLE + DURATION + 30))
(cd bench/artillery && GATEWAY=$GATEWAY CHANNELS=$CHANNELS CONNECT_RATE=$CONNECT_RATE \
    CONNECT_SECONDS=$connect_seconds HOLD=$hold \
    "$ARTILLERY" run --quiet hold.yml >"$work/artillery-hold.log" 2>&1) &
hold_pid=$!
pids+=("$hold_pid")
sleep $((connect_seconds + SETTLE))
(cd bench/artillery && API=$API CHANNELS=$CHANNELS RATE=$POSTS DURATION=$((DURATION + 10)) \
    "$ARTILLERY" run --quiet post.yml >"$work/artillery-post.log" 2>&1) &
post_pid=$!
pids+=("$post_pid")
sleep 5 # Artillery's start-up (node, loading the engines) is not its steady cost
held=$(curl -fsS "http://$GATEWAY/metrics" | awk '$1 == "chatsvc_ws_connections" {print $2}')
a0=$(awk -v a="$(cpu_seconds "$hold_pid")" -v b="$(cpu_seconds "$post_pid")" 'BEGIN { print a + b }')
api0=$(curl -fsS "http://$API/metrics" | awk '$1 ~ /^chatsvc_http_requests_total\{/ && /route="post"/ && /code="2xx"/ {print $2}')
t0=$(date +%s.%N)
sleep "$DURATION"
a1=$(awk -v a="$(cpu_seconds "$hold_pid")" -v b="$(cpu_seconds "$post_pid")" 'BEGIN { print a + b }')
t1=$(date +%s.%N)
api1=$(curl -fsS "http://$API/metrics" | awk '$1 ~ /^chatsvc_http_requests_total\{/ && /route="post"/ && /code="2xx"/ {print $2}')
art_rss=$(($(mem_kib "$hold_pid" VmRSS) + $(mem_kib "$post_pid" VmRSS)))
art_hwm=$(($(mem_kib "$hold_pid" VmHWM) + $(mem_kib "$post_pid" VmHWM)))
a_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
art_cpu=$(awk -v a="$a0" -v b="$a1" 'BEGIN { printf "%.3f", b - a }')
art_posts=$(awk -v a="${api0:-0}" -v b="${api1:-0}" 'BEGIN { printf "%.0f", b - a }')
wait "$post_pid" 2>/dev/null || true
kill -TERM "$hold_pid" 2>/dev/null || true; wait "$hold_pid" 2>/dev/null || true
stop_chatsvc
log "artillery: ${art_cpu}s CPU over ${a_secs}s, $art_posts posts answered 2xx, $held sockets, RSS $((art_rss / 1024)) MiB"

# ---- report ----------------------------------------------------------------------------------
report=$(python3 - <<PY
secs, cl_cpu, delivered = $secs, $cl_cpu, $delivered
a_secs, art_cpu = $a_secs, $art_cpu
posts_ok, art_posts = $posts_ok, $art_posts
cl_rss, cl_hwm, art_rss, art_hwm = $cl_rss / 1024, $cl_hwm / 1024, $art_rss / 1024, $art_hwm / 1024
cl_core = cl_cpu / secs * 100
art_core = art_cpu / a_secs * 100
ratio = lambda a, b: (a / b) if b else float('nan')
reached = art_posts / a_secs / $POSTS
shortfall = "" if reached >= 0.99 else (
    f" Artillery answered {100 * reached:.1f} % of the {int($POSTS):,} posts/s it was set to send: its Node"
    f" processes ran at {art_core:.0f} % of a core, so at this rate it is CPU-bound, and its CPU ratio"
    f" above flatters it (it did less of the work).")
print(f"""<!-- e2e:begin (scripts/bench_e2e.sh replaces this section) -->
## End-to-end canary: {int($SUBSCRIBERS):,} WebSocket subscribers, {int($POSTS):,} posts/s, beside Artillery

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); made by \`scripts/bench_e2e.sh\`; chatsvc (release, direct mode: api + gateway) restarted fresh for each tool; Cassandra and Redis of \`scripts/stack.sh\` on the same 2 cores
- Load: {int($SUBSCRIBERS):,} sockets over {int($CHANNELS):,} channels ({int($SUBSCRIBERS)//int($CHANNELS)} recipients a message), {int($POSTS):,} posts/s; connected at {int($CONNECT_RATE):,}/s, settled {int($SETTLE)} s, then measured {int($DURATION)} s
- Peer: Artillery $ARTILLERY_VERSION (newest release whose \`engines\` accepts Node $(node --version)), two processes: \`bench/artillery/hold.yml\` holds the sockets, \`post.yml\` posts at the same arrival rate

| | chatload | Artillery | chatload / Artillery |
|---|---:|---:|---:|
| posts answered 2xx in the window | {posts_ok:,.0f} ({posts_ok/secs:,.1f}/s) | {art_posts:,.0f} ({art_posts/a_secs:,.1f}/s) | |
| WebSocket connections held | {float("$min_ready"):,.0f} ready (lowest sample) | {float("${held:-0}"):,.0f} (gateway's count) | |
| client CPU, % of a core | {cl_core:.1f} | {art_core:.1f} | **{ratio(cl_core, art_core):.2f}** |
| client RSS at the end, MiB | {cl_rss:.1f} | {art_rss:.1f} | **{ratio(cl_rss, art_rss):.2f}** |
| client peak RSS, MiB | {cl_hwm:.1f} | {art_hwm:.1f} | {ratio(cl_hwm, art_hwm):.2f} |
| deliveries received and matched | {delivered:,.0f} ({delivered/secs:,.0f}/s) | not measured | |
| CPU per delivered message, µs | {1e6*cl_cpu/max(delivered,1):.1f} | — | |
| delivery latency from the schedule p50 / p95 / p99, ms (interpolated in the histogram's buckets) | $p50 / $p95 / $p99 | — | |
| lost / aborted / anomalies / posts dropped | $lost / $aborted / $anomalies / $posts_dropped | — | |
| canary's receiving-thread wake-up lag p99, ms | $rx_p99 | — | |

chatload's CPU covers everything it does for these numbers: pacing and sending the posts, reading and
parsing every frame on {int($SUBSCRIBERS):,} sockets, matching each to its post and recipient, the histograms, plus
its own database traffic (1 write/s). Artillery's covers sending the posts and holding the sockets;
it reads no frame as a measurement (it cannot correlate an HTTP publish with a WebSocket receive),
so its CPU does not include the work chatload's numbers come from. Target: chatload RSS <= 200 MiB
for 10,000 sockets.{shortfall}
<!-- e2e:end -->""")
PY
)
printf '%s\n' "$report"
python3 - "$OUT" <<PY
import sys, re
path = sys.argv[1]
block = """$report"""
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"<!-- e2e:begin.*?<!-- e2e:end -->", re.S)
text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
log "wrote the section of $OUT"
