#!/usr/bin/env python3
"""Check the bundled Grafana dashboards (grafana/dashboards/*.json).

Static checks (always): each dashboard is valid JSON with a uid, a title and panels; uids are unique;
the templating has the `datasource`, `job` and `instance` variables; every panel (rows' nested panels
included) and every target uses the `${datasource}` variable; every metric named in an expression is one
that src/measure/metrics.rs, sharded.rs or e2e.rs defines (histograms with their _bucket/_count/_sum series)
or a process_* metric; and every metric selector filters on job=~"$job" and instance=~"$instance".

Live checks (unless --offline): every target's expression, with the dashboard variables substituted, is
run as an instant query against the Prometheus HTTP API and must return at least one series (and not only
NaN). The variable queries (label_values(...)) must return values too.

PromQL syntax (both modes, when `promtool` is on PATH): the substituted expressions are written as
recording rules to a temporary file and checked with `promtool check rules`.

Usage:
  scripts/check_dashboards.py [PROMETHEUS_URL]     # default http://127.0.0.1:9090
  scripts/check_dashboards.py --offline            # static checks only (no Prometheus needed)

Exit status: 0 when every check passes, 1 otherwise, 2 on bad usage.
"""

import argparse
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD_GLOB = os.path.join(ROOT, "grafana", "dashboards", "*.json")
# Where metric families are defined: the traffic's are per traffic thread, in sharded.rs; the
# end-to-end canary's (chatload_e2e_*) in e2e.rs.
METRICS_RS = [os.path.join(ROOT, "src", "measure", f) for f in ("metrics.rs", "sharded.rs", "e2e.rs")]

DATASOURCE_VAR = "${datasource}"
REQUIRED_VARIABLES = ("datasource", "job", "instance")
REQUIRED_MATCHERS = ('job=~"$job"', 'instance=~"$instance"')
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

# A metric family is created by a call whose first string argument is its name, perhaps after the
# registry (`r`) or inside `Opts::new(` / `HistogramOpts::new(`:
#   int_gauge_vec(r, "…"), histogram_vec(r, "…"), gauge(r, "…")     metrics.rs: helpers taking the registry
#   counter("…"), histogram("…"), counter_vec("…")                   sharded.rs, e2e.rs: closures
#   IntGauge::new("…"), Gauge::new("…"), IntGaugeVec::new(Opts::new("…")), Histogram::with_opts(HistogramOpts::new("…"))
FAMILY_RE = re.compile(
    r"\b(?P<ctor>[A-Za-z_][A-Za-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)?)\(\s*(?:r\s*,\s*)?"
    r"(?:(?P<opts>Opts|HistogramOpts)::new\(\s*)?\"(?P<name>chatload_[a-z0-9_]+)\""
)
# Calls that make a histogram (besides any HistogramOpts::new).
HISTOGRAM_CTORS = {"histogram", "histogram_vec", "Histogram::with_opts", "HistogramVec::new"}

# A metric name as it appears in PromQL: chatload_* or process_*, not part of a longer identifier,
# optionally followed by a {...} selector.
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:\"])((?:chatload|process)_[A-Za-z0-9_]+)\b(\s*\{[^}]*\})?")


def variable_values(job):
    """What each Grafana variable is replaced with in a live query (order matters: longest first)."""
    return [
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "15s"),
        ("$__interval", "15s"),
        ("${__range}", "5m"),
        ("$__range", "5m"),
        ("${job}", job),
        ("$job", job),
        ("[[job]]", job),
        ("${instance}", ".*"),
        ("$instance", ".*"),
        ("[[instance]]", ".*"),
    ]


def substitute(expr, job):
    for var, value in variable_values(job):
        expr = expr.replace(var, value)
    return expr


def metric_families(text):
    """{name: is_histogram} of the families created in `text` (Rust source; its tests left out), and
    the quoted chatload_* names that no known constructor creates (the parser must learn them)."""
    text = text.split("#[cfg(test)]", 1)[0]
    families = {}
    for m in FAMILY_RE.finditer(text):
        ctor, opts, name = m.group("ctor"), m.group("opts"), m.group("name")
        families[name] = families.get(name, False) or ctor in HISTOGRAM_CTORS or opts == "HistogramOpts"
    unparsed = set(re.findall(r'"(chatload_[a-z0-9_]+)"', text)) - set(families)
    return families, unparsed


def known_metrics():
    """Series of the families defined in METRICS_RS (histograms expanded to their series), the
    histogram names, and the quoted chatload_* names the parser could not place."""
    families, unparsed = {}, set()
    for path in METRICS_RS:
        with open(path, encoding="utf-8") as f:
            found, missed = metric_families(f.read())
        families.update(found)
        unparsed |= {f"{name} ({os.path.relpath(path, ROOT)})" for name in missed}
    histograms = {name for name, is_histogram in families.items() if is_histogram}
    series = set(families)
    for h in histograms:
        series |= {h + s for s in HISTOGRAM_SUFFIXES}
    return series, histograms, unparsed


def walk_panels(panels):
    """Every panel, rows' nested panels included, with rows themselves."""
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def uses_datasource_var(ds):
    if isinstance(ds, str):
        return ds == DATASOURCE_VAR or ds == "$datasource"
    if isinstance(ds, dict):
        return ds.get("uid") in (DATASOURCE_VAR, "$datasource")
    return False


class Result:
    def __init__(self):
        self.failures = 0

    def fail(self, msg):
        self.failures += 1
        print(f"FAIL {msg}")


def static_check(path, dashboard, metric_names, histograms, seen_uids, res):
    """Structure, variables, datasource references and metric names of one dashboard."""
    name = os.path.relpath(path, ROOT)
    for key in ("uid", "title", "panels"):
        if not dashboard.get(key):
            res.fail(f"{name}: missing or empty '{key}'")
    uid = dashboard.get("uid")
    if uid in seen_uids:
        res.fail(f"{name}: uid {uid!r} also used by {seen_uids[uid]}")
    seen_uids[uid] = name

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    for var in REQUIRED_VARIABLES:
        if var not in variables:
            res.fail(f"{name}: no templating variable '{var}'")
    ds_var = variables.get("datasource")
    if ds_var and (ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus"):
        res.fail(f"{name}: variable 'datasource' must be type datasource with query prometheus")
    for var in ("job", "instance"):
        v = variables.get(var)
        if v and v.get("type") == "query" and not uses_datasource_var(v.get("datasource")):
            res.fail(f"{name}: variable '{var}' does not use {DATASOURCE_VAR}")

    ids = {}
    queries = []
    for p in walk_panels(dashboard.get("panels")):
        title = p.get("title", "<untitled>")
        pid = p.get("id")
        if pid is None:
            res.fail(f"{name}: panel {title!r} has no id")
        elif pid in ids:
            res.fail(f"{name}: panel id {pid} used by {title!r} and {ids[pid]!r}")
        else:
            ids[pid] = title
        if "gridPos" not in p:
            res.fail(f"{name}: panel {title!r} has no gridPos")
        if p.get("type") == "row":
            continue
        if not uses_datasource_var(p.get("datasource")):
            res.fail(f"{name}: panel {title!r} datasource is {p.get('datasource')!r}, not {DATASOURCE_VAR}")
        targets = p.get("targets") or []
        if not targets:
            res.fail(f"{name}: panel {title!r} has no targets")
        ref_ids = set()
        for t in targets:
            ref = t.get("refId")
            if not ref or ref in ref_ids:
                res.fail(f"{name}: panel {title!r} has a missing or duplicate refId {ref!r}")
            ref_ids.add(ref)
            if "datasource" in t and not uses_datasource_var(t["datasource"]):
                res.fail(f"{name}: panel {title!r} target {ref} datasource is {t['datasource']!r}")
            expr = t.get("expr")
            if not expr:
                res.fail(f"{name}: panel {title!r} target {ref} has no expr")
                continue
            queries.append((title, expr))
            for m in METRIC_RE.finditer(expr):
                metric, selector = m.group(1), m.group(2) or ""
                if metric.startswith("chatload_"):
                    if metric not in metric_names:
                        res.fail(f"{name}: panel {title!r}: metric {metric} is not defined in src/measure/")
                    elif metric in histograms:
                        res.fail(f"{name}: panel {title!r}: histogram {metric} needs a _bucket/_count/_sum suffix")
                missing = [x for x in REQUIRED_MATCHERS if x not in selector]
                if missing:
                    res.fail(f"{name}: panel {title!r}: {metric} selector lacks {', '.join(missing)}")
    return queries, variables


def promtool_syntax(queries, job, res):
    """Parse every substituted expression with `promtool check rules`; skipped without promtool."""
    promtool = shutil.which("promtool")
    if not promtool:
        print("SKIP PromQL syntax: promtool not on PATH")
        return
    rules = [{"record": f"chatload:dashboard_check:{i}", "expr": substitute(expr, job)}
             for i, (_, expr) in enumerate(queries)]
    # JSON is valid YAML, so no YAML library is needed.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump({"groups": [{"name": "dashboard_check", "rules": rules}]}, f)
    try:
        out = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if out.returncode == 0:
        print(f"OK   PromQL syntax of {len(rules)} expressions (promtool check rules)")
        return
    text = (out.stdout + out.stderr).strip()
    res.fail("PromQL syntax (promtool check rules):\n     " + text.replace("\n", "\n     "))
    for i, (title, expr) in enumerate(queries):
        if f"\"chatload:dashboard_check:{i}\"" in text:
            print(f"     rule {i} is {title!r}: {expr}")


def prom_get(base, path, params):
    url = f"{base.rstrip('/')}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=15) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
            return body
        except Exception:  # noqa: BLE001 - report whatever came back
            return {"status": "error", "error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError) as e:
        return {"status": "error", "error": str(e)}


def is_nan(v):
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def live_query(base, title, expr, job, res):
    q = substitute(expr, job)
    body = prom_get(base, "/api/v1/query", {"query": q})
    if body.get("status") != "success":
        res.fail(f"error  {title}: {q}\n     {body.get('errorType', '')} {body.get('error', '')}")
        return
    data = body["data"]
    rtype, result = data["resultType"], data["result"]
    if rtype == "vector":
        n = len(result)
        values = [s["value"][1] for s in result]
    elif rtype == "matrix":
        n = len(result)
        values = [v[1] for s in result for v in s["values"]]
    else:  # scalar / string
        n = 1
        values = [result[1]]
    if n == 0:
        res.fail(f"empty  {title}: {q}")
    elif all(is_nan(v) for v in values):
        res.fail(f"NaN    {title}: {q}")
    else:
        print(f"OK   {n:>3} series  {title}: {q}")


def live_variable(base, name, var, job, res):
    """label_values(metric{...}, label) → /api/v1/label/<label>/values?match[]=..."""
    query = var.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query or "")
    if not m:
        return
    selector = substitute(m.group(1), job)
    body = prom_get(base, f"/api/v1/label/{m.group(2)}/values", {"match[]": selector})
    if body.get("status") != "success":
        res.fail(f"error  variable {name}: {query}: {body.get('error', '')}")
    elif not body["data"]:
        res.fail(f"empty  variable {name}: {query}")
    else:
        print(f"OK   {len(body['data']):>3} values  variable {name}: {query} -> {', '.join(body['data'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prometheus", nargs="?", default="http://127.0.0.1:9090",
                    help="Prometheus base URL (default %(default)s)")
    ap.add_argument("--offline", action="store_true",
                    help="only the static checks; do not query Prometheus")
    ap.add_argument("--job", default="chatload",
                    help="value substituted for $job in live queries (default %(default)s); $instance becomes .*")
    args = ap.parse_args()

    res = Result()
    metric_names, histograms, unparsed = known_metrics()
    for name in sorted(unparsed):
        res.fail(f"metric {name}: created by a call this script does not recognise (see FAMILY_RE)")
    paths = sorted(glob.glob(DASHBOARD_GLOB))
    if not paths:
        res.fail(f"no dashboards match {os.path.relpath(DASHBOARD_GLOB, ROOT)}")
    seen_uids = {}
    total = 0
    all_queries = []
    for path in paths:
        rel = os.path.relpath(path, ROOT)
        try:
            with open(path, encoding="utf-8") as f:
                dashboard = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            res.fail(f"{rel}: not valid JSON: {e}")
            continue
        before = res.failures
        queries, variables = static_check(path, dashboard, metric_names, histograms, seen_uids, res)
        total += len(queries)
        all_queries += queries
        status = "OK  " if res.failures == before else "FAIL"
        print(f"{status} {rel}: uid={dashboard.get('uid')!r}, {len(queries)} queries, static checks")
        if args.offline:
            continue
        for name in ("job", "instance"):
            if name in variables:
                live_variable(args.prometheus, name, variables[name], args.job, res)
        for title, expr in queries:
            live_query(args.prometheus, title, expr, args.job, res)

    if all_queries:
        promtool_syntax(all_queries, args.job, res)

    mode = "offline" if args.offline else f"live against {args.prometheus}"
    print(f"\n{len(paths)} dashboard(s), {total} queries, {mode}: "
          + ("all OK" if res.failures == 0 else f"{res.failures} failure(s)"))
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
