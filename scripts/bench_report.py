#!/usr/bin/env python3
"""Turns the run files of scripts/bench.sh into bench/RESULTS.md (markdown on stdout).

Usage: bench_report.py WORKDIR MAX_RATE CONCURRENCY DURATION RATE...
"""
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

work, max_rate, concurrency, duration = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rates = [float(r) for r in sys.argv[5:]]


def times(name):
    elapsed, user, system, rss_kb = open(os.path.join(work, name + ".time")).read().split()[-4:]
    return float(user) + float(system), int(rss_kb) * 1024


def chatload(name, target):
    report = json.load(open(os.path.join(work, name + ".json")))
    op = next(o for o in report["operations"] if o["backend"] == "scylla" and o["op"] == "write")
    cpu, rss = times(name)
    ok = op["outcomes"].get("ok", 0)
    return {
        "ok": ok,
        "rate": op["ok_per_second"],
        "achieved": op["ok_per_second"] / target,
        "cpu_us": cpu / max(ok, 1) * 1e6,
        "rss": rss,
        "p50": op["latency"]["p50"] * 1e3,
        "p99": op["latency"]["p99"] * 1e3,
        "svc_p99": op["service_time"]["p99"] * 1e3,
        "errors": sum(v for k, v in op["outcomes"].items() if k not in ("ok",)),
        "lag_p50": report["schedule_lag"]["p50"] * 1e6,
        "lag_p99": report["schedule_lag"]["p99"] * 1e6,
    }


def latte(name, target):
    result = json.load(open(os.path.join(work, name + ".json")))["result"]
    cpu, rss = times(name)
    ok = result["cycle_count"] - result["error_count"]
    rate = result["cycle_throughput"]["value"]
    pct = result["cycle_latency"]["percentiles"]  # Min, 1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.9, 99.99, Max
    return {
        "ok": ok,
        "rate": rate,
        "achieved": rate / target if target else None,
        "cpu_us": cpu / max(ok, 1) * 1e6,
        "rss": rss,
        "p50": pct[6]["value"],
        "p99": pct[11]["value"],
        "svc_p99": None,
        "errors": result["error_count"],
        "lag_p50": None,
        "lag_p99": None,
    }


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def row(tool, target, r):
    return (
        f"| {tool} | {target:,.0f} | {r['rate']:,.1f} | {fmt(r['achieved'] and r['achieved'] * 100, '.2f')} % "
        f"| {r['cpu_us']:.1f} | {r['rss'] / 2**20:.1f} | {r['p50']:.3f} | {r['p99']:.3f} "
        f"| {fmt(r['lag_p50'], '.0f')} / {fmt(r['lag_p99'], '.0f')} | {r['errors']} |"
    )


cpu_model = next(
    (l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine()
)
mem_gib = int(open("/proc/meminfo").readline().split()[1]) / 2**20
first = json.load(open(os.path.join(work, f"chatload-{rates[0]:g}.json")))
cassandra = first["backends"].get("scylla", "?")
out = []
p = out.append
p("# chatload benchmark: side by side with latte")
p("")
p(f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
p(f"- Machine: {os.cpu_count()} cores ({cpu_model}), {mem_gib:.0f} GiB; {cassandra} on the same machine "
  f"(1 GiB heap, from scripts/stack.sh)")
p(f"- Versions: {version(['target/release/chatload', '--version'])}; {version(['latte', '--version'])}")
p(f"- Each run: {duration} s, single INSERT per message, consistency ONE, in-flight cap {concurrency} "
  f"for both tools; workloads write the same table (`chatload schema apply`)")
p("- Made by `scripts/bench.sh` (the raw numbers come from `chatload check --format json`, latte's JSON "
  "report and `/usr/bin/time`)")
p("")
p("CPU µs/msg is the client process's user+sys CPU divided by the messages it wrote. chatload's latency is "
  "measured from each message's *scheduled* start (coordinated-omission-correct); latte's is its cycle latency.")
p("")
p("## Fixed rates")
p("")
p("| tool | target /s | achieved /s | achieved/target | CPU µs/msg | peak RSS MiB | p50 ms | p99 ms | schedule lag p50 / p99 µs | errors |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
ratios = []
for rate in rates:
    c = chatload(f"chatload-{rate:g}", rate)
    l = latte(f"latte-{rate:g}", rate)
    cr = chatload(f"chatload-redis-{rate:g}", rate)
    p(row("chatload (Redis off)", rate, c))
    p(row("latte", rate, l))
    p(row("chatload (Redis on: + LPUSH/LTRIM/PEXPIRE/PUBLISH)", rate, cr))
    ratios.append((rate, c, l, cr))
p("")
p("## Highest rate sustained")
p("")
cm = chatload("chatload-max", max_rate)
lm = latte("latte-max", 0)
p("| tool | offered | achieved /s | CPU µs/msg | peak RSS MiB | errors + drops |")
p("|---|---|---:|---:|---:|---:|")
p(f"| chatload (Redis off) | {max_rate:,.0f}/s open loop | {cm['rate']:,.1f} | {cm['cpu_us']:.1f} | {cm['rss'] / 2**20:.1f} | {cm['errors']} |")
p(f"| latte | unthrottled | {lm['rate']:,.1f} | {lm['cpu_us']:.1f} | {lm['rss'] / 2**20:.1f} | {lm['errors']} |")
p("")
p("## Ratios (chatload / latte, like for like: Redis off)")
p("")
p("| target /s | CPU per message | peak RSS | p50 | p99 | achieved rate |")
p("|---:|---:|---:|---:|---:|---:|")
for rate, c, l, _ in ratios:
    p(f"| {rate:,.0f} | {c['cpu_us'] / l['cpu_us']:.2f} | {c['rss'] / l['rss']:.2f} | {c['p50'] / l['p50']:.2f} "
      f"| {c['p99'] / l['p99']:.2f} | {c['rate'] / l['rate']:.3f} |")
p(f"| highest | {cm['cpu_us'] / lm['cpu_us']:.2f} | {cm['rss'] / lm['rss']:.2f} | — | — | {cm['rate'] / lm['rate']:.3f} |")
p("")
print("\n".join(out))
