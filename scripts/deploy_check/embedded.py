"""Generated copies inside Kubernetes objects: a PrometheusRule's groups and a dashboard ConfigMap's
JSON equal the committed rules file and dashboard; a PrometheusRule as a rules file for promtool."""

import json
import os
import sys

import yaml

from common import fail, finish, load_docs, ok


def cmd_embedded(args):
    """PrometheusRule spec.groups == the rules file's groups; dashboard ConfigMap JSON == the dashboard."""
    with open(args.rules, encoding="utf-8") as f:
        groups = yaml.safe_load(f)["groups"]
    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)
    for path in args.files:
        docs = load_docs(path)
        kinds = {d["kind"] for d in docs}
        for want in args.expect:
            if want not in kinds and want != "Dashboard":
                fail(f"{path}: no {want} rendered")
        for d in docs:
            name = f"{path}: {d['kind']}/{d['metadata']['name']}"
            if d["kind"] == "PrometheusRule":
                if d["spec"]["groups"] == groups:
                    n = sum(len(g["rules"]) for g in groups)
                    ok(f"{name}: spec.groups equal {args.rules} ({len(groups)} groups, {n} rules)")
                else:
                    fail(f"{name}: spec.groups differ from {args.rules}")
            if d["kind"] == "ConfigMap" and d.get("metadata", {}).get("labels", {}).get("grafana_dashboard"):
                found = {k: json.loads(v) for k, v in d["data"].items() if k.endswith(".json")}
                if found.get(os.path.basename(args.dashboard)) == dashboard:
                    ok(f"{name}: {os.path.basename(args.dashboard)} equals {args.dashboard}")
                else:
                    fail(f"{name}: dashboard JSON differs from {args.dashboard}")
        if "Dashboard" in args.expect and not any(
                d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") for d in docs):
            fail(f"{path}: no dashboard ConfigMap rendered")
    finish()


def cmd_rules_groups(args):
    """Print a PrometheusRule's spec as a Prometheus rules file (for promtool)."""
    for d in load_docs(args.file):
        if d["kind"] == "PrometheusRule":
            yaml.safe_dump({"groups": d["spec"]["groups"]}, sys.stdout, sort_keys=False)
            return

