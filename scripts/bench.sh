#!/usr/bin/env bash
#
# chatload side by side with latte (a Rust CQL load tool, `cargo install latte-cli`), against the
# same local Cassandra, at the same fixed rates, with the same in-flight cap, and latte with as
# many threads as chatload has traffic threads:
#
#   for each rate in $RATES:
#     chatload (Redis off, precise: the default wake_interval = 0s), with cyclictest beside it
#     chatload (Redis off, wake_interval = 1ms: latte's own timer granularity)
#     latte
#     chatload (Redis on: + LPUSH/LTRIM/PEXPIRE/PUBLISH per message, precise)
#   then the highest rate each sustains (>= 99.9 % ok, >= 99 % of target, nothing dropped): the
#   rates of $LADDER in turn, each tool until its first failure (chatload with wake_interval = 1ms,
#   Redis off and on).
#
# For every run it records achieved/target rate, client CPU per message (user+sys of the whole
# process, from /usr/bin/time, i.e. the kernel's accounting in /proc), peak RSS, p50/p99, and for
# chatload its schedule lag and, during the run, how long its /metrics takes to render (curl).
# cyclictest (Debian's rt-tests, plain priority, 1 ms interval) runs beside each precise chatload
# run: the machine's own timer wake-up latency under the same load, which the lag is held to.
# chatload's latency counts from the *scheduled* start; latte's is its cycle latency.
# The report goes to stdout and bench/RESULTS.md, the plot to bench/sweep.svg.
#
# SOAK=1h (opt-in) adds a soak: `chatload run` at 5,000 msg/s with Redis on and every probe, RSS
# and CPU sampled every 10 s, into bench/SOAK.md and bench/soak.svg. SWEEP=0 skips the sweep (the
# soak alone).
#
# Usage: scripts/bench.sh                 (about 20 minutes with the defaults)
#        DURATION=60 RATES="1000 5000" LADDER="25000 30000" scripts/bench.sh
#        SOAK=1h scripts/bench.sh
#        SOAK=1h SWEEP=0 scripts/bench.sh

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-30}                           # seconds per fixed-rate run
RATES=${RATES:-"1000 5000 20000"}                  # fixed rates, messages per second
LADDER=${LADDER:-"10000 15000 20000 25000 30000 40000 50000"}  # tried for the highest sustained rate
LADDER_DURATION=${LADDER_DURATION:-20}             # seconds per ladder run
CONCURRENCY=${CONCURRENCY:-1024}                   # in-flight cap of both tools
SOAK=${SOAK:-}                                     # e.g. 1h, 20m: run the soak too
SOAK_RATE=${SOAK_RATE:-5000}
SWEEP=${SWEEP:-1}                                  # 0: skip the sweep (run the soak only)
LATTE_VERSION=0.29.0
OUT=${OUT:-bench/RESULTS.md}
KEYSPACE=chatload_bench

log() { printf '[bench] %s\n' "$*" >&2; }

scripts/stack.sh up >&2
need() { # $1 command, $2 Debian package
    command -v "$1" >/dev/null || { log "installing $2"; apt-get install -y -qq "$2" >&2; }
}
need /usr/bin/time time
need cyclictest rt-tests
need curl curl
need ss iproute2
cargo build --release --locked >&2
CHATLOAD=target/release/chatload
if ! command -v latte >/dev/null; then
    log "installing latte-cli $LATTE_VERSION (takes a few minutes)"
    cargo install latte-cli --locked --version "$LATTE_VERSION" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"; jobs -p | xargs -r kill 2>/dev/null || true' EXIT

config() { # $1 rate, $2 redis on|off, $3 wake_interval, [$4 extra lines]
    local redis=false
    [[ $2 == on ]] && redis=true
    cat <<CFG
[http]
listen = "127.0.0.1:0"
[log]
level = "warn"
[scylla]
keyspace = "$KEYSPACE"
consistency = "one"
[redis]
cache = $redis
pubsub = $redis
[traffic]
write_rate = $1
read_rate = 0.0
max_in_flight = $CONCURRENCY
wake_interval = "$3"
seed = 1
${4:-}
CFG
}

if [[ $SWEEP != 0 ]]; then
    log "criterion: the traffic's own work per message, and the /metrics render"
    cargo bench --locked --bench hot_path -- --noplot >"$work/criterion.txt" 2>&1
fi

config 1000 off 0s >"$work/schema.toml"
"$CHATLOAD" schema apply --config "$work/schema.toml" >&2

# Scrape the /metrics of process $1 ten times from 5 s into the run; seconds each, one per line.
time_metrics() {
    local pid=$1 out=$2 port=""
    sleep 5
    port=$(ss -Hltnp 2>/dev/null | grep "pid=$pid," | awk '{print $4}' | sed 's/.*://' | head -1)
    [[ -n $port ]] || return 0
    for _ in $(seq 10); do
        curl -s -o /dev/null -w '%{time_starttransfer} %{time_connect}\n' "http://127.0.0.1:$port/metrics" >>"$out" || true
        sleep 0.5
    done
}

run_chatload() { # $1 name, $2 rate, $3 redis on|off, $4 wake_interval, $5 duration, [$6 cyclictest]
    log "chatload $1: ${2}/s, Redis $3, wake_interval $4, ${5}s"
    config "$2" "$3" "$4" >"$work/$1.toml"
    if [[ ${6:-} == cyclictest ]]; then
        cyclictest -q -i 1000 -D "$5" -h 20000 -m >"$work/$1.cyclictest" 2>/dev/null &
    fi
    /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" \
        "$CHATLOAD" check --config "$work/$1.toml" --duration "${5}s" --warmup 0s --format json \
        >"$work/$1.json" 2>"$work/$1.log" &   # exit 1 (an SLO breach) still has a report
    local time_pid=$!
    sleep 0.5
    time_metrics "$(pgrep -P "$time_pid" -f 'chatload check' | head -1)" "$work/$1.metrics" &
    wait "$time_pid" || true
    wait
}

threads_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["traffic_threads"])' "$work/$1.json"; }

run_latte() { # $1 name, $2 rate, $3 threads, $4 duration
    log "latte $1: ${2}/s, $3 thread(s), ${4}s"
    # In the temp dir: latte writes a log file into its working directory.
    (cd "$work" && /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" \
        latte run "$OLDPWD/bench/latte/chat_insert.rn" -P "keyspace=\"$KEYSPACE\"" -r "$2" -d "${4}s" \
        -t "$3" -p "$CONCURRENCY" -o "$work/$1.json" 127.0.0.1:9042 >"$work/$1.log" 2>&1) || true
}

sustained() { # $1 name, $2 tool, $3 rate: exit 0 when the run sustained the rate
    python3 scripts/bench_report.py --sustained "$work" "$1" "$2" "$3"
}

[[ $SWEEP != 0 ]] || RATES="" LADDER=""
for rate in $RATES; do
    run_chatload "chatload-$rate" "$rate" off 0s "$DURATION" cyclictest
    run_chatload "chatload1ms-$rate" "$rate" off 1ms "$DURATION"
    run_latte "latte-$rate" "$rate" "$(threads_of "chatload-$rate")" "$DURATION"
    run_chatload "chatloadredis-$rate" "$rate" on 0s "$DURATION"
done

ladder_c=on ladder_r=on ladder_l=on
for rate in $LADDER; do
    [[ $ladder_c$ladder_r$ladder_l == *on* ]] || break
    if [[ $ladder_c == on ]]; then
        run_chatload "ladder-chatload-$rate" "$rate" off 1ms "$LADDER_DURATION"
        sustained "ladder-chatload-$rate" chatload "$rate" || ladder_c=off
    fi
    if [[ $ladder_r == on ]]; then
        run_chatload "ladder-chatloadredis-$rate" "$rate" on 1ms "$LADDER_DURATION"
        sustained "ladder-chatloadredis-$rate" chatload "$rate" || ladder_r=off
    fi
    if [[ $ladder_l == on ]]; then
        threads=$(threads_of "ladder-chatload-$rate" 2>/dev/null || echo 1)
        run_latte "ladder-latte-$rate" "$rate" "$threads" "$LADDER_DURATION"
        sustained "ladder-latte-$rate" latte "$rate" || ladder_l=off
    fi
done

if [[ -n $SOAK ]]; then
    secs=$(python3 -c 'import sys,re; m=re.fullmatch(r"(\d+)([smh])",sys.argv[1]); print(int(m[1])*{"s":1,"m":60,"h":3600}[m[2]])' "$SOAK")
    log "soak: ${SOAK_RATE}/s, Redis on, every probe, $SOAK"
    config "$SOAK_RATE" on 0s >"$work/soak.toml"
    sed -i 's/^listen = .*/listen = "127.0.0.1:9745"/; s/^read_rate = .*/read_rate = 200.0/' "$work/soak.toml"
    "$CHATLOAD" run --config "$work/soak.toml" 2>"$work/soak.log" &
    soak_pid=$!
    start=$(date +%s)
    : >"$work/soak.samples"
    while (($(date +%s) - start < secs)); do
        sleep 10
        kill -0 "$soak_pid" 2>/dev/null || { log "chatload stopped during the soak"; break; }
        ok=$(curl -s http://127.0.0.1:9745/metrics |
            awk '/^chatload_operations_total\{backend="scylla",op="write",outcome="ok"\}/ {print $2}')
        read -r utime stime < <(awk '{print $14, $15}' "/proc/$soak_pid/stat")
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$soak_pid/status")
        echo "$(date +%s.%N) $ok $utime $stime $rss" >>"$work/soak.samples"
    done
    kill -TERM "$soak_pid" 2>/dev/null || true
    wait "$soak_pid" 2>/dev/null || true
fi

if [[ -n $SOAK ]]; then
    python3 scripts/bench_report.py --soak "$work" "$SOAK_RATE" >bench/SOAK.md
    cp "$work/soak.svg" bench/ 2>/dev/null || true
    log "soak written to bench/SOAK.md"
fi
[[ $SWEEP != 0 ]] || exit 0
python3 scripts/bench_report.py "$work" "$CONCURRENCY" "$DURATION" "$LADDER_DURATION" "$SOAK_RATE" \
    "$RATES" "$LADDER" >"$work/report.md"
# Keep the end-to-end section scripts/bench_e2e.sh wrote (a run of its own).
if [[ -f $OUT ]] && grep -q '<!-- e2e:begin' "$OUT"; then
    { printf '\n'; sed -n '/<!-- e2e:begin/,/<!-- e2e:end -->/p' "$OUT"; } >>"$work/report.md"
fi
cp "$work/report.md" "$OUT"
cp "$work/sweep.svg" bench/
cat "$OUT"
log "written to $OUT"
