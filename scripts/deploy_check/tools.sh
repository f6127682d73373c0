# shellcheck shell=bash
#
# The tools of scripts/check-deploy.sh, installed once and cached under .stack/ (sourced by
# check-deploy.sh, which sets the pinned versions, CACHE, VENV, TOOLS, WORK and step/info first).
# Sets PY, HELM, KUSTOMIZE, AMTOOL, COMPOSE_SCHEMA, CRD_DIR, COMPOSE_CHECK, PROMTOOL and CHATLOAD.

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
    cp scripts/deploy_check/compose_check.go "$COMPOSE_CHECK_DIR/main.go"
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
