#!/usr/bin/env bash
#
# chatload side by side with latte (a Rust CQL load tool, `cargo install latte-cli`), against the
# same local Cassandra, at the same fixed rates, with the same in-flight cap:
#
#   for each rate in $RATES:  chatload (Redis off: like for like)   latte   chatload (Redis on)
#   then the highest rate each sustains: chatload offered $MAX_RATE/s open loop, latte unthrottled.
#
# For every run it records achieved/target rate, client CPU per message (user+sys of the whole
# process, from /usr/bin/time, i.e. the kernel's accounting in /proc), peak RSS, and p50/p99.
# chatload's latency counts from the *scheduled* start; latte's is its cycle latency.
# The table goes to stdout and to bench/RESULTS.md (with date, machine and versions).
#
# Usage: scripts/bench.sh            (about 6 minutes with the defaults)
#        DURATION=60 RATES="1000 5000 10000" scripts/bench.sh

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-30}          # seconds per run
RATES=${RATES:-"1000 5000"}       # fixed rates, messages per second
MAX_RATE=${MAX_RATE:-50000}       # what chatload is offered when looking for its highest rate
CONCURRENCY=${CONCURRENCY:-256}   # in-flight cap of both tools
LATTE_VERSION=0.29.0
OUT=${OUT:-bench/RESULTS.md}
KEYSPACE=chatload_bench

log() { printf '[bench] %s\n' "$*" >&2; }

scripts/stack.sh up >&2
command -v /usr/bin/time >/dev/null || { log "installing GNU time"; apt-get install -y -qq time >&2; }
cargo build --release --locked >&2
CHATLOAD=target/release/chatload
if ! command -v latte >/dev/null; then
    log "installing latte-cli $LATTE_VERSION (takes a few minutes)"
    cargo install latte-cli --locked --version "$LATTE_VERSION" >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

config() { # $1 rate, $2 redis on|off
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
seed = 1
CFG
}

config 1000 off >"$work/schema.toml"
"$CHATLOAD" schema apply --config "$work/schema.toml" >&2

run_chatload() { # $1 name, $2 rate, $3 redis on|off
    log "chatload $1: ${2}/s, Redis $3, ${DURATION}s"
    config "$2" "$3" >"$work/$1.toml"
    /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" \
        "$CHATLOAD" check --config "$work/$1.toml" --duration "${DURATION}s" --warmup 0s --format json \
        >"$work/$1.json" 2>"$work/$1.log" || true   # exit 1 (an SLO breach) still has a report
}

run_latte() { # $1 name, $2 rate or "max"
    log "latte $1: ${2}/s, ${DURATION}s"
    local rate=()
    [[ $2 != max ]] && rate=(-r "$2")
    # In the temp dir: latte writes a log file into its working directory.
    (cd "$work" && /usr/bin/time -f '%e %U %S %M' -o "$work/$1.time" \
        latte run "$OLDPWD/bench/latte/chat_insert.rn" -P "keyspace=\"$KEYSPACE\"" "${rate[@]}" -d "${DURATION}s" \
        -t 1 -p "$CONCURRENCY" -o "$work/$1.json" 127.0.0.1:9042 >"$work/$1.log" 2>&1)
}

runs=()
for rate in $RATES; do
    run_chatload "chatload-$rate" "$rate" off
    run_latte "latte-$rate" "$rate"
    run_chatload "chatload-redis-$rate" "$rate" on
    runs+=("$rate")
done
run_chatload chatload-max "$MAX_RATE" off
run_latte latte-max max

python3 scripts/bench_report.py "$work" "$MAX_RATE" "$CONCURRENCY" "$DURATION" "${runs[@]}" | tee "$OUT"
log "written to $OUT"
