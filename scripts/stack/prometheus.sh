# shellcheck shell=bash
#
# Prometheus of scripts/stack.sh (sourced by it): Debian's prometheus on 127.0.0.1:9090, scraping
# the config of scripts/stack/prometheus.yml, with chatload's alert rules when the file exists.

PROMETHEUS_PORT=9090
PROM_DIR="$STACK_DIR/prometheus"
PROM_RULES_FILE="$REPO_ROOT/deploy/prometheus/rules/chatload-rules.yml"

# The Debian packages Prometheus needs whose commands are missing.
prometheus_packages() {
    command -v prometheus >/dev/null || echo prometheus
    command -v promtool >/dev/null || echo prometheus
    command -v curl >/dev/null || echo curl
}

PROM_LOG="$PROM_DIR/prometheus.log"
PROM_PID="$PROM_DIR/prometheus.pid"
PROM_CONFIG="$PROM_DIR/prometheus.yml"
PROM_PATTERN="$PROM_CONFIG"      # our prometheus is the one using our config

prometheus_pid() { live_pid "$PROM_PID" "$PROM_PATTERN"; }

prometheus_ready() {
    curl -fsS --max-time 2 "http://$HOST:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1
}

# Render .stack/prometheus/prometheus.yml from the committed config, adding
# rule_files only if the rules file exists. Validates with promtool.
# Sets PROM_CONFIG_CHANGED=1 if the rendered file changed, 0 if not.
prometheus_configure() {
    mkdir -p -- "$PROM_DIR/data"
    local new="$PROM_CONFIG.new"
    {
        cat -- "$SUPPORT_DIR/prometheus.yml"
        if [[ -f $PROM_RULES_FILE ]]; then
            # The checksum makes an edit of the rules file count as a config
            # change, so a running Prometheus gets reloaded by `up`.
            printf '\n# Added by scripts/stack.sh because the rules file exists (sha256 %s).\n' \
                "$(sha256sum <"$PROM_RULES_FILE" | cut -d' ' -f1)"
            printf 'rule_files:\n  - "%s"\n' "$PROM_RULES_FILE"
        fi
    } >"$new"
    if ! promtool check config "$new" >"$PROM_DIR/promtool.log" 2>&1; then
        cat -- "$PROM_DIR/promtool.log" >&2
        rm -f -- "$new"
        die "prometheus: promtool rejected the config rendered from $SUPPORT_DIR/prometheus.yml (rules file: $([[ -f $PROM_RULES_FILE ]] && echo "$PROM_RULES_FILE" || echo none))"
    fi
    if [[ -f $PROM_CONFIG ]] && cmp -s -- "$new" "$PROM_CONFIG"; then
        rm -f -- "$new"
        PROM_CONFIG_CHANGED=0
    else
        mv -- "$new" "$PROM_CONFIG"
        PROM_CONFIG_CHANGED=1
    fi
}

prometheus_start() {
    PROM_JUST_STARTED=0
    PROM_RELOADED=0
    prometheus_configure
    if prometheus_pid >/dev/null; then
        # Already running: pick up a changed config (e.g. the rules file appeared).
        if ((PROM_CONFIG_CHANGED)); then
            curl -fsS --max-time 10 -X POST "http://$HOST:$PROMETHEUS_PORT/-/reload" >/dev/null \
                || die "prometheus: config changed but POST /-/reload failed (log: $PROM_LOG)"
            PROM_RELOADED=1
        fi
        return 0
    fi
    if port_open "$PROMETHEUS_PORT"; then
        die "prometheus: port $HOST:$PROMETHEUS_PORT is in use by a process this script did not start"
    fi
    spawn "$PROM_PID" "$PROM_LOG" prometheus \
        --config.file="$PROM_CONFIG" \
        --storage.tsdb.path="$PROM_DIR/data" \
        --web.listen-address="$HOST:$PROMETHEUS_PORT" \
        --web.enable-lifecycle
    PROM_JUST_STARTED=1
}

prometheus_wait() {
    local note
    wait_ready prometheus prometheus_pid prometheus_ready "$PROM_LOG" \
        "/-/ready did not answer on $HOST:$PROMETHEUS_PORT"
    if ((PROM_JUST_STARTED)); then note=started
    elif ((PROM_RELOADED)); then note="already running, config reloaded"
    else note="already running"
    fi
    [[ -f $PROM_RULES_FILE ]] && note+=", rules: ${PROM_RULES_FILE#"$REPO_ROOT"/}" || note+=", no rules file"
    status_line prometheus up "$READY_PID" "$PROMETHEUS_PORT" "$note"
}

prometheus_stop() { stop_pid prometheus "$PROM_PID" "$PROM_PATTERN"; }

prometheus_status() {
    service_status prometheus "$PROMETHEUS_PORT" prometheus_pid prometheus_ready prometheus_ready "" \
        "process running, not ready" "external: not started by this script"
}
