#!/usr/bin/env bash
#
# Every Grafana panel's query returns data from a live chatload: run chatload on 127.0.0.1:9742 (the
# address the stack's Prometheus scrapes) with all probes every 5 s and the e2e canary against the
# stack's chatsvc, let Prometheus scrape it for
# $SCRAPE_SECONDS, then run every dashboard query through Prometheus' HTTP API
# (scripts/check_dashboards.py lists them and fails on any error or empty result).
# Bounded: chatload is stopped at the end (and killed by `timeout` in any case).

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
SCRAPE_SECONDS=${SCRAPE_SECONDS:-75}
BIN=${CHATLOAD_BIN:-target/debug/chatload}
work=$(mktemp -d)
cat >"$work/chatload.toml" <<CFG
[http]
listen = "127.0.0.1:9742"
[scylla]
keyspace = "chatload_dashboards"
[redis]
key_prefix = "chatload_dashboards"
[traffic]
write_rate = 200.0
read_rate = 50.0
[probes.ttl_metadata]
interval = "5s"
[probes.ttl_expiry]
interval = "5s"
timeout = "10s"
[probes.recent_50]
interval = "5s"
[probes.range_5m]
interval = "5s"
[probes.pagination]
interval = "5s"
[probes.partition_balance]
interval = "5s"
window = "20s"
[probes.redis_ttl]
interval = "5s"
[probes.redis_cache]
interval = "5s"
[probes.redis_pubsub]
interval = "5s"
# The end-to-end canary against the stack's chatsvc (its defaults point there).
[e2e]
enabled = true
CFG
timeout $((SCRAPE_SECONDS + 60)) "$BIN" run --config "$work/chatload.toml" 2>"$work/chatload.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
# Our chatload must be the one Prometheus scrapes: if another process holds 127.0.0.1:9742 (say the
# quick start's), ours exits at once with "failed to listen", and the queries would otherwise "pass"
# against the other one.
ours_alive() {
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "error: this script's chatload exited ($1); is 127.0.0.1:9742 taken by another process?" >&2
        cat "$work/chatload.log" >&2
        exit 1
    fi
}
for _ in $(seq 1 100); do
    ours_alive "before serving"
    curl -fsS -o /dev/null http://127.0.0.1:9742/healthz 2>/dev/null && break
    sleep 0.1
done
sleep 1
ours_alive "after binding"
echo "chatload (pid $pid) serving 127.0.0.1:9742; letting Prometheus scrape it for ${SCRAPE_SECONDS}s"
sleep "$SCRAPE_SECONDS"
ours_alive "while Prometheus scraped it"
python3 scripts/check_dashboards.py
