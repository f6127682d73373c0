#!/usr/bin/env python3
"""Turns the run files of scripts/bench.sh into bench/RESULTS.md (markdown on stdout) and SVG plots.

Usage: bench_report.py WORKDIR CONCURRENCY DURATION LADDER_DURATION SOAK_RATE "RATES" "LADDER"
       bench_report.py --sustained WORKDIR NAME chatload|latte RATE   (exit 0 when sustained)

Sustained: at least 99.9 % of the operations ok, at least 99 % of the target rate achieved, and
nothing dropped (chatload counts drops at its in-flight cap; latte never drops, it waits).
"""
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone


def times(work, name):
    _elapsed, user, system, rss_kb = open(os.path.join(work, name + ".time")).read().split()[-4:]
    return float(user) + float(system), int(rss_kb) * 1024


def chatload(work, name, target):
    path = os.path.join(work, name + ".json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    report = json.load(open(path))
    op = next(o for o in report["operations"] if o["backend"] == "scylla" and o["op"] == "write")
    cpu, rss = times(work, name)
    outcomes = op["outcomes"]
    ok = outcomes.get("ok", 0)
    total = sum(outcomes.values())
    renders = []
    mpath = os.path.join(work, name + ".metrics")
    if os.path.exists(mpath):
        for line in open(mpath):
            first, connect = (float(x) for x in line.split())
            renders.append(first - connect)
    return {
        "ok": ok,
        "total": total,
        "rate": op["ok_per_second"],
        "achieved": op["ok_per_second"] / target,
        "cpu_us": cpu / max(ok, 1) * 1e6,
        "rss": rss,
        "p50": op["latency"]["p50"] * 1e3,
        "p99": op["latency"]["p99"] * 1e3,
        "errors": total - ok - outcomes.get("dropped", 0),
        "drops": outcomes.get("dropped", 0),
        "lag_p50": report["schedule_lag"]["p50"] * 1e6,
        "lag_p99": report["schedule_lag"]["p99"] * 1e6,
        "threads": report.get("traffic_threads", 1),
        "render_ms": statistics.median(renders) * 1e3 if renders else None,
        "render_max_ms": max(renders) * 1e3 if renders else None,
    }


def latte(work, name, target):
    path = os.path.join(work, name + ".json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    result = json.load(open(path))["result"]
    cpu, rss = times(work, name)
    errors = result["error_count"]
    ok = result["cycle_count"] - errors
    rate = result["cycle_throughput"]["value"]
    pct = result["cycle_latency"]["percentiles"]  # Min, 1, 2, 5, 10, 25, 50, 75, 90, 95, 98, 99, 99.9, 99.99, Max
    return {
        "ok": ok,
        "total": result["cycle_count"],
        "rate": rate,
        "achieved": rate / target,
        "cpu_us": cpu / max(ok, 1) * 1e6,
        "rss": rss,
        "p50": pct[6]["value"],
        "p99": pct[11]["value"],
        "errors": errors,
        "drops": 0,
        "lag_p50": None,
        "lag_p99": None,
        "threads": None,
        "render_ms": None,
        "render_max_ms": None,
    }


def cyclictest(work, name):
    path = os.path.join(work, name + ".cyclictest")
    if not os.path.exists(path):
        return None
    hist = []
    for line in open(path):
        parts = line.split()
        if parts and parts[0].isdigit() and len(parts) > 1:
            hist.append((int(parts[0]), int(parts[1])))
    total = sum(c for _, c in hist)
    if not total:
        return None

    def q(p):
        acc = 0
        for us, c in hist:
            acc += c
            if acc >= p * total:
                return us
        return hist[-1][0]

    return {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999)}


def is_sustained(r, target):
    return (
        r is not None
        and r["total"] > 0
        and r["ok"] / r["total"] >= 0.999
        and r["rate"] >= 0.99 * target
        and r["drops"] == 0
    )


def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def write_svg(path, body, width, height):
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n')
        f.write("\n".join(body))
        f.write("\n</svg>\n")


def soak_report(work, soak_rate):
    out = []
    p = out.append
    samples_path = os.path.join(work, "soak.samples")
    if not os.path.exists(samples_path):
        return out
    rows = []
    for line in open(samples_path):
        parts = line.split()
        if len(parts) == 5 and parts[1]:
            t, ok, ut, st, rss = parts
            rows.append((float(t), float(ok), int(ut) + int(st), int(rss) * 1024))
    tick = os.sysconf("SC_CLK_TCK")
    target = float(soak_rate)
    if len(rows) > 2:
        t0 = rows[0][0]
        series = []
        for a, b in zip(rows, rows[1:]):
            dt = b[0] - a[0]
            series.append({
                "t": b[0] - t0,
                "rate": (b[1] - a[1]) / dt,
                "cpu": (b[2] - a[2]) / tick / dt,
                "rss": b[3],
            })
        after5 = [s for s in series if s["t"] >= 300]
        base = after5[0]["rss"] if after5 else series[0]["rss"]
        growth = (max(s["rss"] for s in after5) / base - 1) * 100 if after5 else None
        worst_rate = max(abs(s["rate"] / target - 1) for s in series) * 100
        # Over whole minutes: completions that a stall moved across a 10 s boundary even out.
        minutes = [
            (rows[i + 6][1] - rows[i][1]) / (rows[i + 6][0] - rows[i][0]) for i in range(0, len(rows) - 6, 6)
        ]
        worst_minute = max((abs(r / target - 1) for r in minutes), default=0) * 100
        span = series[-1]["t"] + 10
        p("# chatload soak")
        p("")
        p(f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; made by `SOAK=… scripts/bench.sh`")
        p("")
        p(f"`chatload run` at {target:,.0f} messages/s and 200 reads/s, Redis on, every probe at its defaults, "
          f"for {span / 60:.0f} minutes; RSS and CPU sampled every 10 s (`SOAK=… scripts/bench.sh`).")
        p("")
        p(f"- RSS: {series[0]['rss'] / 2**20:.1f} MiB at the first sample, {base / 2**20:.1f} MiB at 5 minutes, "
          f"{max(s['rss'] for s in series) / 2**20:.1f} MiB at most, {series[-1]['rss'] / 2**20:.1f} MiB at the end; "
          f"growth after the first 5 minutes: {fmt(growth, '.1f')} % (target ≤ 10 %).")
        p(f"- CPU: {statistics.mean(s['cpu'] for s in series) * 100:.1f} % of a core on average, "
          f"{max(s['cpu'] for s in series) * 100:.1f} % at most.")
        p(f"- Achieved write rate (writes counted ok): per minute, worst {worst_minute:.2f} % from the target "
          f"(target ≤ 1 %); per 10 s sample, worst {worst_rate:.2f} % (a stall of the database moves completions "
          f"across a 10 s boundary); mean {statistics.mean(s['rate'] for s in series):,.1f}/s.")
        p("")
        p("![RSS and CPU during the soak](soak.svg)")
        p("")
        w, h = 800, 220
        xs = [s["t"] / 60 for s in series]

        def line(vals, y0, vmax, color):
            pts = " ".join(f"{70 + x / max(xs) * w:.1f},{y0 + h - v / vmax * h:.1f}" for x, v in zip(xs, vals))
            return f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>'

        rss_mib = [s["rss"] / 2**20 for s in series]
        cpu_pct = [s["cpu"] * 100 for s in series]
        body = [
            f'<text x="{70 + w / 2}" y="25" text-anchor="middle" font-size="14">soak: RSS (MiB) and CPU (% of a core), every 10 s</text>',
            f'<rect x="70" y="40" width="{w}" height="{h}" fill="none" stroke="#999"/>',
            f'<rect x="70" y="{60 + h}" width="{w}" height="{h}" fill="none" stroke="#999"/>',
            line(rss_mib, 40, max(rss_mib) * 1.2, "#1f77b4"),
            line(cpu_pct, 60 + h, max(cpu_pct) * 1.2, "#d62728"),
            f'<text x="64" y="44" font-size="10" text-anchor="end">{max(rss_mib) * 1.2:.0f}</text>',
            f'<text x="64" y="{40 + h}" font-size="10" text-anchor="end">0</text>',
            f'<text x="64" y="{64 + h}" font-size="10" text-anchor="end">{max(cpu_pct) * 1.2:.0f}</text>',
            f'<text x="64" y="{60 + 2 * h}" font-size="10" text-anchor="end">0</text>',
            f'<text x="{80}" y="56" font-size="11" fill="#1f77b4">RSS MiB</text>',
            f'<text x="{80}" y="{76 + h}" font-size="11" fill="#d62728">CPU %</text>',
            f'<text x="{70 + w / 2}" y="{90 + 2 * h}" font-size="12" text-anchor="middle">minutes ({max(xs):.0f} in all)</text>',
        ]
        write_svg(os.path.join(work, "soak.svg"), body, 900, 2 * h + 110)
    return out


if sys.argv[1] == "--soak":
    print("\n".join(soak_report(sys.argv[2], sys.argv[3])))
    sys.exit(0)

if sys.argv[1] == "--sustained":
    work, name, tool, rate = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
    r = (chatload if tool == "chatload" else latte)(work, name, rate)
    sys.exit(0 if is_sustained(r, rate) else 1)

work, concurrency, duration, ladder_duration, soak_rate = sys.argv[1:6]
rates = [float(r) for r in sys.argv[6].split()]
ladder = [float(r) for r in sys.argv[7].split()]


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def ratio(a, b):
    return "—" if a is None or b is None or not b else f"{a / b:.2f}"


# ---- gather -------------------------------------------------------------------------------
fixed = []
for rate in rates:
    k = f"{rate:g}"
    fixed.append({
        "rate": rate,
        "precise": chatload(work, f"chatload-{k}", rate),
        "coarse": chatload(work, f"chatload1ms-{k}", rate),
        "latte": latte(work, f"latte-{k}", rate),
        "redis": chatload(work, f"chatloadredis-{k}", rate),
        "cyclictest": cyclictest(work, f"chatload-{k}"),
    })
steps = []
for rate in ladder:
    k = f"{rate:g}"
    steps.append({
        "rate": rate,
        "coarse": chatload(work, f"ladder-chatload-{k}", rate),
        "redis": chatload(work, f"ladder-chatloadredis-{k}", rate),
        "latte": latte(work, f"ladder-latte-{k}", rate),
    })


def highest(kind):
    best = None
    for row in fixed + steps:
        r = row.get(kind)
        if is_sustained(r, row["rate"]):
            if best is None or row["rate"] > best[0]:
                best = (row["rate"], r)
    return best


high = {kind: highest(kind) for kind in ("precise", "coarse", "latte", "redis")}


def criterion():
    """{benchmark name: (middle estimate, unit)} from criterion's output."""
    found, name = {}, None
    path = os.path.join(work, "criterion.txt")
    if not os.path.exists(path):
        return found
    for line in open(path):
        if "time:" in line:
            head, tail = line.split("time:", 1)
            name = head.strip() or name
            values = tail.strip().strip("[]").split()
            if name and len(values) >= 4:
                found[name] = (float(values[2]), values[3])
        elif line.strip() and not line.startswith(" ") and not line.startswith("Benchmarking"):
            name = line.strip()
    return found


bench = criterion()

# ---- plots ---------------------------------------------------------------------------------
SERIES = [
    ("precise", "chatload (default: precise)", "#1f77b4"),
    ("coarse", "chatload (wake_interval 1ms)", "#2ca02c"),
    ("latte", "latte", "#d62728"),
    ("redis", "chatload + Redis (precise; 1ms on the ladder)", "#9467bd"),
]


def svg_panel(x0, y0, w, h, title, ylabel, points, log_y):
    """points: {series: [(rate, value)]}; x is log10(rate)."""
    out = []
    xs = [x for pts in points.values() for x, _ in pts]
    ys = [y for pts in points.values() for _, y in pts if y and y > 0]
    if not xs or not ys:
        return out
    lx0, lx1 = math.log10(min(xs)) - 0.05, math.log10(max(xs)) + 0.05
    if log_y:
        ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        if ly1 == ly0:
            ly1 += 1
    else:
        ly0, ly1 = 0.0, max(ys) * 1.1

    def px(x):
        return x0 + (math.log10(x) - lx0) / (lx1 - lx0) * w

    def py(y):
        v = math.log10(y) if log_y else y
        return y0 + h - (v - ly0) / (ly1 - ly0) * h

    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 - 8}" text-anchor="middle" font-size="14">{title}</text>')
    out.append(f'<text x="{x0 - 45}" y="{y0 + h / 2}" font-size="12" transform="rotate(-90 {x0 - 45} {y0 + h / 2})" '
               f'text-anchor="middle">{ylabel}</text>')
    for rate in sorted(set(xs)):
        out.append(f'<line x1="{px(rate):.1f}" y1="{y0 + h}" x2="{px(rate):.1f}" y2="{y0 + h + 4}" stroke="#999"/>')
        out.append(f'<text x="{px(rate):.1f}" y="{y0 + h + 16}" font-size="10" text-anchor="middle">{rate / 1000:g}k</text>')
    ticks = [10 ** e for e in range(int(ly0), int(ly1) + 1)] if log_y else [ly1 * i / 5 for i in range(6)]
    for t in ticks:
        out.append(f'<line x1="{x0}" y1="{py(t):.1f}" x2="{x0 + w}" y2="{py(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 4}" y="{py(t) + 4:.1f}" font-size="10" text-anchor="end">{t:g}</text>')
    for key, _label, color in SERIES:
        pts = sorted((x, y) for x, y in points.get(key, []) if y and y > 0)
        if not pts:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 32}" font-size="12" text-anchor="middle">target rate, messages/s</text>')
    return out


cpu_pts, p99_pts = {}, {}
for row in fixed + steps:
    for key, _, _ in SERIES:
        r = row.get(key)
        if r is not None:
            cpu_pts.setdefault(key, []).append((row["rate"], r["cpu_us"]))
            p99_pts.setdefault(key, []).append((row["rate"], r["p99"]))
body = svg_panel(70, 40, 380, 260, "client CPU per message", "µs per message", cpu_pts, False)
body += svg_panel(560, 40, 380, 260, "write latency p99 (from the schedule for chatload)", "ms (log)", p99_pts, True)
for i, (_key, label, color) in enumerate(SERIES):
    body.append(f'<rect x="{70 + i * 230}" y="350" width="14" height="4" fill="{color}"/>')
    body.append(f'<text x="{90 + i * 230}" y="356" font-size="11">{label}</text>')
write_svg(os.path.join(work, "sweep.svg"), body, 980, 370)

# ---- report --------------------------------------------------------------------------------
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
p(f"- Versions: {version(['target/release/chatload', '--version'])}; {version(['latte', '--version'])}; "
  f"cyclictest from rt-tests {version(['dpkg-query', '-W', '-f', '${Version}', 'rt-tests'])}")
p(f"- Fixed-rate runs: {duration} s each; ladder runs: {ladder_duration} s each. Single INSERT per message, "
  f"consistency ONE, in-flight cap {concurrency} for both tools, latte with as many threads as chatload "
  "has traffic threads; both write the same table (`chatload schema apply`)")
p("- Made by `scripts/bench.sh` (the raw numbers come from `chatload check --format json`, latte's JSON "
  "report, `/usr/bin/time` and cyclictest's histogram)")
p("")
p("CPU µs/msg is the client process's user+sys CPU divided by the messages it wrote ok. chatload's latency is "
  "measured from each message's *scheduled* start (coordinated-omission-correct); latte's is its cycle latency. "
  "Schedule lag is how late chatload sent each request; cyclictest ran beside the precise run and measured the "
  "machine's own timer wake-up latency under the same load.")
p("")
p("![CPU per message and p99 against the rate, both tools](sweep.svg)")
p("")
p("## Fixed rates")
p("")
p("| tool | target /s | threads | achieved /s | achieved/target | CPU µs/msg | peak RSS MiB | p50 ms | p99 ms "
  "| schedule lag p50 / p99 µs | errors | drops |")
p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {
    "precise": "chatload (Redis off)",
    "coarse": "chatload (Redis off, wake_interval 1ms)",
    "latte": "latte",
    "redis": "chatload (Redis on: + LPUSH/LTRIM/PEXPIRE/PUBLISH)",
}


def row(label, target, r):
    if r is None:
        return f"| {label} | {target:,.0f} | run failed: see the bench's log | | | | | | | | | |"
    threads = r["threads"] if r["threads"] is not None else "="
    return (
        f"| {label} | {target:,.0f} | {threads} | {r['rate']:,.1f} | {r['achieved'] * 100:.2f} % "
        f"| {r['cpu_us']:.1f} | {r['rss'] / 2**20:.1f} | {r['p50']:.3f} | {r['p99']:.3f} "
        f"| {fmt(r['lag_p50'], '.0f')} / {fmt(r['lag_p99'], '.0f')} | {r['errors']} | {r['drops']} |"
    )


for f in fixed:
    for key in ("precise", "coarse", "latte", "redis"):
        p(row(names[key], f["rate"], f[key]))
p("")
p("## Targets, as ratios in this run")
p("")
p("| rate | CPU/msg vs latte, precise (target ≤ 0.8 at 5k and 20k, ≤ 1.0 at 1k) | CPU/msg vs latte, wake_interval 1ms "
  "| schedule lag p99 (precise) | cyclictest p99 beside it | lag / cyclictest (target ≤ 1.5) |")
p("|---:|---:|---:|---:|---:|---:|")
for f in fixed:
    c, l, cc, cyc = f["precise"], f["latte"], f["coarse"], f["cyclictest"]
    lag = c["lag_p99"] if c else None
    p(f"| {f['rate']:,.0f} | {ratio(c and c['cpu_us'], l and l['cpu_us'])} | {ratio(cc and cc['cpu_us'], l and l['cpu_us'])} "
      f"| {fmt(lag, '.0f')} µs | {fmt(cyc and cyc['p99'], '.0f')} µs | {ratio(lag, cyc and cyc['p99'])} |")
p("")
at20 = next((f for f in fixed if f["rate"] == 20000), None)
if at20 and at20["precise"]:
    c = at20["precise"]
    renders = [f[k]["render_ms"] for f in fixed for k in ("precise", "coarse", "redis") if f[k] and f[k]["render_ms"]]
    worst = [f[k]["render_max_ms"] for f in fixed for k in ("precise", "coarse", "redis") if f[k] and f[k]["render_max_ms"]]
    p(f"- Peak RSS at 20,000/s: {c['rss'] / 2**20:.1f} MiB precise, "
      f"{at20['coarse']['rss'] / 2**20 if at20['coarse'] else float('nan'):.1f} MiB with wake_interval 1ms, "
      f"{at20['redis']['rss'] / 2**20 if at20['redis'] else float('nan'):.1f} MiB with Redis (target ≤ 40 MiB).")
    if "render /metrics" in bench:
        v, unit = bench["render /metrics"]
        p(f"- `/metrics` render (criterion, two traffic threads' series and every probe's): {v:g} {unit} "
          "(target < 2 ms).")
    if renders:
        p(f"- `/metrics` seen by a scraper during the runs (time to first byte minus connect, 10 scrapes per run): "
          f"median {statistics.median(renders):.2f} ms, worst {max(worst):.2f} ms.")
    p("")
per_msg = bench.get("generate + schedule + record, per message")
if per_msg:
    p(f"- chatload's own work per message (criterion, no network: generate it, keep the timetable, record its "
      f"outcome, latencies and lag): {per_msg[0]:g} {per_msg[1]}; the rest of the CPU per message is the driver, "
      "the runtime and the kernel.")
    p("")
p("## Highest rate sustained")
p("")
p("At least 99.9 % ok, at least 99 % of the target rate, nothing dropped: the highest rate that held, over the "
  "fixed rates and the ladder (each tool ran the ladder until its first failure).")
p("")
p("| tool | highest sustained /s | achieved /s | CPU µs/msg there | peak RSS MiB | p99 ms |")
p("|---|---:|---:|---:|---:|---:|")
for key in ("precise", "coarse", "latte", "redis"):
    h = high[key]
    if h is None:
        p(f"| {names[key]} | none | | | | |")
    else:
        rate, r = h
        p(f"| {names[key]} | {rate:,.0f} | {r['rate']:,.1f} | {r['cpu_us']:.1f} | {r['rss'] / 2**20:.1f} | {r['p99']:.3f} |")
p("")
p("Ladder runs (all of them, so the first failure of each tool is visible):")
p("")
p("| tool | target /s | achieved /s | ok % | drops | CPU µs/msg | p99 ms |")
p("|---|---:|---:|---:|---:|---:|---:|")
for s in steps:
    for key in ("coarse", "redis", "latte"):
        r = s[key]
        if r is not None:
            p(f"| {names[key].replace(')', ', ladder)') if key != 'latte' else 'latte'} | {s['rate']:,.0f} | {r['rate']:,.1f} "
              f"| {r['ok'] / max(r['total'], 1) * 100:.2f} | {r['drops']} | {r['cpu_us']:.1f} | {r['p99']:.3f} |")
p("")
if high["coarse"] and high["latte"]:
    p(f"Highest sustained, chatload (wake_interval 1ms) / latte: {high['coarse'][0] / high['latte'][0]:.2f}.")
    p("")
p("## The issue's table, redone")
p("")
p("| rate | chatload CPU µs/msg (precise / 1ms) | latte CPU µs/msg | ratio (precise / 1ms) |")
p("|---:|---:|---:|---:|")
for f in fixed:
    c, cc, l = f["precise"], f["coarse"], f["latte"]
    if c and cc and l:
        p(f"| {f['rate']:,.0f}/s | {c['cpu_us']:.1f} / {cc['cpu_us']:.1f} | {l['cpu_us']:.1f} "
          f"| {c['cpu_us'] / l['cpu_us']:.2f} / {cc['cpu_us'] / l['cpu_us']:.2f} |")
if high["coarse"] and high["latte"]:
    (rc, c), (rl, l) = high["coarse"], high["latte"]
    p(f"| highest | {c['cpu_us']:.1f} at {rc:,.0f}/s (1ms) | {l['cpu_us']:.1f} at {rl:,.0f}/s | {c['cpu_us'] / l['cpu_us']:.2f} |")
p("")

p("The soak (`SOAK=1h scripts/bench.sh`, or `SOAK=1h SWEEP=0` for the soak alone) writes [SOAK.md](SOAK.md).")
p("")
print("\n".join(out))
