#!/usr/bin/env bash
#
# Local test stack for chatload, without Docker, on loopback only:
#
#   cassandra   Apache Cassandra 5.0.9 (jars from Maven Central)   127.0.0.1:9042
#   redis       Debian's redis-server                               127.0.0.1:6379
#   prometheus  Debian's prometheus                                 127.0.0.1:9090
#
# Usage:
#   scripts/stack.sh up                 install what is missing, start what is not
#                                       running, wait until everything answers
#   scripts/stack.sh status             one line per service; non-zero if any is down
#   scripts/stack.sh down               stop what this script started
#   scripts/stack.sh start   <service>  install + start + wait for one service
#   scripts/stack.sh stop    <service>  stop one service (if this script started it)
#   scripts/stack.sh restart <service>  stop + start one service
#
# All state (jars, config, data, logs, pid files) lives under .stack/ at the
# repository root. Every command is idempotent.
#
# Environment overrides:
#   CASSANDRA_HEAP           JVM heap for Cassandra (default 1G)
#   CASSANDRA_BOOT_TIMEOUT   seconds to wait for CQL (default 180)
#   STOP_TIMEOUT             seconds between SIGTERM and SIGKILL (default 60)

set -euo pipefail

# --------------------------------------------------------------------------
# Locations and constants
# --------------------------------------------------------------------------

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
SUPPORT_DIR="$SCRIPT_DIR/stack"          # committed templates and configs
STACK_DIR="$REPO_ROOT/.stack"            # all runtime state (git-ignored)

HOST=127.0.0.1
SERVICES=(cassandra redis prometheus)

CASSANDRA_PORT=9042
CASSANDRA_STORAGE_PORT=7011              # must match scripts/stack/cassandra.yaml
CASSANDRA_JMX_PORT=7199                  # must match scripts/stack/cassandra-jvm.options
CASSANDRA_HEAP=${CASSANDRA_HEAP:-1G}
CASSANDRA_BOOT_TIMEOUT=${CASSANDRA_BOOT_TIMEOUT:-180}
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon
CASS_DIR="$STACK_DIR/cassandra"

REDIS_PORT=6379
REDIS_DIR="$STACK_DIR/redis"

PROMETHEUS_PORT=9090
PROM_DIR="$STACK_DIR/prometheus"
PROM_RULES_FILE="$REPO_ROOT/deploy/prometheus/rules/chatload-rules.yml"

STOP_TIMEOUT=${STOP_TIMEOUT:-60}
SIMPLE_BOOT_TIMEOUT=30                   # redis and prometheus

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

log()  { printf '[stack] %s\n' "$*" >&2; }
die()  { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# Print the tail of a log file to stderr, to explain a failure.
show_log_tail() {
    local file=$1 lines=${2:-40}
    if [[ -s $file ]]; then
        printf '[stack] ---- last %s lines of %s ----\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" | cut -c1-400 >&2   # some lines are huge
        printf '[stack] ---- end of %s ----\n' "$file" >&2
    else
        log "(log $file is empty or missing)"
    fi
}

# Seconds since the epoch, with decimals.
now() { date +%s.%N; }

# Elapsed seconds between two `now` values, one decimal.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# True if something accepts TCP connections on $HOST:$1.
port_open() {
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# Print the pid recorded in pid file $1 if that process is alive and its
# command line contains $2 (guards against stale pid files and pid reuse).
# Returns non-zero otherwise.
live_pid() {
    local pidfile=$1 pattern=$2 pid cmdline
    pid=$(cat -- "$pidfile" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # A zombie has an empty command line and therefore never matches.
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$pattern"* ]] || return 1
    printf '%s\n' "$pid"
}

# True while process $1 exists and has not fully exited. While the JVM shuts
# down, its main thread can already be a zombie (and the command line empty)
# while other threads still run and hold the sockets; the process is only
# really gone once /proc/PID has vanished, or it is a zombie with no threads left.
pid_running() {
    local stat tasks
    # (not $(<file): in bash 5.2 a missing file there aborts a `set -e` script)
    stat=$(cat -- "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} == [ZX] ]] || return 0
    tasks=(/proc/"$1"/task/*)
    ((${#tasks[@]} > 1))
}

# spawn <pidfile> <logfile> <command> [args...]
# Start a command in the background, in its own session (so it survives the
# calling shell and its signals), with stdout/stderr appended to <logfile>.
# The process writes its own pid before exec'ing, so the pid file holds the pid
# of the service itself, not of a wrapper.
spawn() {
    local pidfile=$1 logfile=$2
    shift 2
    rm -f -- "$pidfile"
    # Full command line next to the pid file, a short banner in the log.
    printf '%q ' "$@" >"${pidfile%.pid}.cmdline"
    printf '\n===== %s stack.sh starting %s (command: %s) =====\n' \
        "$(date -Is)" "${1##*/}" "${pidfile%.pid}.cmdline" >>"$logfile"
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    # (9>&- : the service must not inherit the lock taken in main)
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.1
    done
    die "could not start $1 (no pid file $pidfile)"
}

# stop_pid <name> <pidfile> <pattern>
# SIGTERM the process from the pid file, wait up to STOP_TIMEOUT seconds, then
# SIGKILL. Only touches a process whose command line matches <pattern>.
# Sets STOPPED=1 if it stopped something, 0 if there was nothing to stop.
stop_pid() {
    local name=$1 pidfile=$2 pattern=$3 pid i
    STOPPED=0
    if ! pid=$(live_pid "$pidfile" "$pattern"); then
        rm -f -- "$pidfile"
        log "$name: not running (nothing started by this script)"
        return 0
    fi
    log "$name: stopping pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        pid_running "$pid" || break
        sleep 0.1
    done
    if pid_running "$pid"; then
        log "$name: still running after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            pid_running "$pid" || break
            sleep 0.1
        done
        if pid_running "$pid"; then die "$name: pid $pid survived SIGKILL"; fi
    fi
    rm -f -- "$pidfile"
    STOPPED=1
    log "$name: stopped"
}

# --------------------------------------------------------------------------
# Prerequisites (Debian packages)
# --------------------------------------------------------------------------

APT_UPDATED=0

# apt_install <package>...  — install Debian packages (apt-get update first, once).
apt_install() {
    [[ $# -gt 0 ]] || return 0
    [[ $(id -u) -eq 0 ]] || die "need root to install: $* (or install them yourself)"
    command -v apt-get >/dev/null || die "apt-get not found; please install: $*"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt/dpkg run to release its lock instead of failing.
    local apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        apt-get "${apt_opts[@]}" update >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    apt-get "${apt_opts[@]}" install --no-install-recommends "$@" >&2
}

# Major version of a java binary (e.g. 17), or empty.
java_major() {
    "$1" -version 2>&1 | awk -F'"' '/version/ { split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit }'
}

# Sets JAVA to a Java 17+ binary, installing openjdk-17-jre-headless if needed.
JAVA=""
ensure_java() {
    [[ -n $JAVA ]] && return 0
    local candidate major
    for candidate in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        [[ -n $candidate && -x $candidate ]] || continue
        major=$(java_major "$candidate")
        if [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)); then
            JAVA=$candidate
            break
        fi
    done
    if [[ -z $JAVA ]]; then
        apt_install openjdk-17-jre-headless
        for candidate in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
            [[ -x $candidate ]] && JAVA=$candidate && break
        done
        [[ -n $JAVA ]] || die "Java 17 not found even after installing openjdk-17-jre-headless"
        major=17
    fi
    if ((major != 17)); then
        log "warning: using Java $major ($JAVA); Cassandra 5.0 is tested with 11 and 17"
    fi
}

# Install the Debian packages providing the commands a service needs.
ensure_packages_for() {
    local missing=() svc
    for svc in "$@"; do
        case $svc in
            cassandra)
                command -v mvn >/dev/null || missing+=(maven) ;;
            redis)
                command -v redis-server >/dev/null || missing+=(redis-server)
                command -v redis-cli >/dev/null || missing+=(redis-tools) ;;
            prometheus)
                command -v prometheus >/dev/null || missing+=(prometheus)
                command -v promtool >/dev/null || missing+=(prometheus)
                command -v curl >/dev/null || missing+=(curl) ;;
        esac
    done
    command -v setsid >/dev/null || missing+=(util-linux)
    # de-duplicate
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        apt_install "${missing[@]}"
    fi
    for svc in "$@"; do
        [[ $svc == cassandra ]] && ensure_java
    done
    return 0
}

# ==========================================================================
# Cassandra
# ==========================================================================

CASS_LIB="$CASS_DIR/lib"
CASS_CONF="$CASS_DIR/conf"
CASS_DATA="$CASS_DIR/data"
CASS_TMP="$CASS_DIR/tmp"
CASS_LOGDIR="$CASS_DIR/logs"
CASS_LOG="$CASS_DIR/cassandra.log"
CASS_PID="$CASS_DIR/cassandra.pid"
CASS_STARTED="$CASS_DIR/started_at"       # `now` when java was spawned
CASS_MARKER="$CASS_LIB/.complete"         # sha256 of the pom the jars came from
CASS_PATTERN="$CASS_LIB/"                 # our node's classpath points into this .stack

cassandra_pid() {
    local pid
    pid=$(live_pid "$CASS_PID" "$CASS_PATTERN") || return 1
    # ...and it really is the Cassandra daemon.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CASSANDRA_MAIN" || return 1
    printf '%s\n' "$pid"
}

# Send a CQL OPTIONS request (protocol v4 header, opcode 0x05, empty body) and
# check that the reply is a v4 response (0x84) with opcode SUPPORTED (0x06).
cql_ready() {
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x04\x00\x00\x00\x05\x00\x00\x00\x00" >&3
        hdr=$(head -c 9 <&3 | od -An -tx1 | tr -d " \n")
        [[ ${hdr:0:2} == 84 && ${hdr:8:2} == 06 ]]
    ' "$HOST" "$CASSANDRA_PORT" 2>/dev/null
}

# Download cassandra-all and its runtime dependencies from Maven Central into
# .stack/cassandra/lib, unless a complete copy for the same pom is already there.
cassandra_install() {
    local pom="$SUPPORT_DIR/cassandra-pom.xml" want
    want=$(sha256sum <"$pom" | cut -d' ' -f1)
    if [[ -f $CASS_MARKER && $(<"$CASS_MARKER") == "$want" ]]; then
        return 0
    fi
    log "cassandra: downloading jars from Maven Central into ${CASS_LIB#"$REPO_ROOT"/}"
    local work="$CASS_DIR/mvn" partial="$CASS_DIR/lib.partial"
    rm -rf -- "$work" "$partial"
    mkdir -p -- "$work"
    # Run Maven on a copy of the pom, so nothing (e.g. target/) lands in scripts/.
    cp -- "$pom" "$work/pom.xml"
    if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$partial" >"$CASS_DIR/mvn.log" 2>&1; then
        show_log_tail "$CASS_DIR/mvn.log"
        die "cassandra: Maven download failed (log: $CASS_DIR/mvn.log)"
    fi
    compgen -G "$partial/cassandra-all-*.jar" >/dev/null \
        || die "cassandra: Maven finished but cassandra-all-*.jar is missing from $partial"
    rm -rf -- "$CASS_LIB" "$work"
    mv -- "$partial" "$CASS_LIB"
    printf '%s\n' "$want" >"$CASS_MARKER"
    log "cassandra: $(find "$CASS_LIB" -name '*.jar' | wc -l) jars installed"
}

# Render conf/: cassandra.yaml (with absolute data paths) and logback.xml.
cassandra_configure() {
    mkdir -p -- "$CASS_CONF/triggers" "$CASS_DATA" "$CASS_TMP" "$CASS_LOGDIR"
    local tpl
    tpl=$(<"$SUPPORT_DIR/cassandra.yaml")
    # Quoted replacement: no special meaning for '&' or '\' in the path.
    printf '%s\n' "${tpl//@CASSANDRA_DATA_DIR@/"$CASS_DATA"}" >"$CASS_CONF/cassandra.yaml"
    cp -- "$SUPPORT_DIR/logback.xml" "$CASS_CONF/logback.xml"
}

# Build the java command line into the array CASS_CMD.
cassandra_command() {
    local opts=() line jamm
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%[[:space:]]#*}                       # no trailing comments
        line=${line%"${line##*[![:space:]]}"}             # no trailing blanks
        [[ $line == -* ]] && opts+=("$line")
    done <"$SUPPORT_DIR/cassandra-jvm.options"

    jamm=$(compgen -G "$CASS_LIB/jamm-*.jar" | head -n1 || true)
    [[ -n $jamm ]] || die "cassandra: jamm-*.jar not found in $CASS_LIB"

    CASS_CMD=(
        "$JAVA"
        -Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP"
        "${opts[@]}"
        # jamm measures object sizes (memtables); bin/cassandra.in.sh adds it too.
        -javaagent:"$jamm"
        -XX:ErrorFile="$CASS_LOGDIR/hs_err_%p.log"
        -Djava.io.tmpdir="$CASS_TMP"             # JNA unpacks here: must allow exec
        -Djna.tmpdir="$CASS_TMP"
        -Dcassandra.config="file://$CASS_CONF/cassandra.yaml"
        -Dlogback.configurationFile="$CASS_CONF/logback.xml"
        -Dcassandra.storagedir="$CASS_DATA"
        -Dcassandra.logdir="$CASS_LOGDIR"
        -Dcassandra.triggers_dir="$CASS_CONF/triggers"
        -Dcassandra-foreground=yes
        -cp "$CASS_CONF:$CASS_LIB/*"
        "$CASSANDRA_MAIN"
    )
}

# Start Cassandra if it is not running. Does not wait.
cassandra_start() {
    local pid
    if pid=$(cassandra_pid); then
        CASS_JUST_STARTED=0
        return 0
    fi
    # Never run two nodes at once: refuse if anything holds our ports or if
    # another CassandraDaemon is running on this machine.
    local port
    for port in "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_JMX_PORT"; do
        if port_open "$port"; then
            die "cassandra: port $HOST:$port is already in use by a process this script did not start; refusing to start a second node"
        fi
    done
    if pgrep -f "$CASSANDRA_MAIN" >/dev/null 2>&1; then
        die "cassandra: another CassandraDaemon is running (pid(s) $(pgrep -f "$CASSANDRA_MAIN" | tr '\n' ' ')); refusing to start a second node"
    fi

    cassandra_install
    cassandra_configure
    cassandra_command
    now >"$CASS_STARTED"
    spawn "$CASS_PID" "$CASS_LOG" "${CASS_CMD[@]}"
    CASS_JUST_STARTED=1
    log "cassandra: started pid $(<"$CASS_PID"), waiting for CQL on $HOST:$CASSANDRA_PORT (up to ${CASSANDRA_BOOT_TIMEOUT}s)"
}

# Wait until CQL answers; on failure print the log tail, stop the node, exit 1.
cassandra_wait() {
    local deadline=$((SECONDS + CASSANDRA_BOOT_TIMEOUT)) pid
    while :; do
        if ! pid=$(cassandra_pid); then
            show_log_tail "$CASS_LOG" 60
            die "cassandra: the java process exited before CQL came up (log: $CASS_LOG)"
        fi
        cql_ready && break
        if ((SECONDS >= deadline)); then
            show_log_tail "$CASS_LOG" 60
            stop_pid cassandra "$CASS_PID" "$CASS_PATTERN" || true
            die "cassandra: CQL did not answer on $HOST:$CASSANDRA_PORT within ${CASSANDRA_BOOT_TIMEOUT}s (log: $CASS_LOG)"
        fi
        sleep 0.5
    done
    if ((CASS_JUST_STARTED)); then
        local boot
        boot=$(elapsed "$(<"$CASS_STARTED")" "$(now)")
        printf '%s\n' "$boot" >"$CASS_DIR/boot_seconds"
        printf '%-10s up       pid %-8s %s:%s  (started, CQL answered after %ss)\n' \
            cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$boot"
    else
        printf '%-10s up       pid %-8s %s:%s  (already running)\n' \
            cassandra "$pid" "$HOST" "$CASSANDRA_PORT"
    fi
}

cassandra_stop() {
    stop_pid cassandra "$CASS_PID" "$CASS_PATTERN"
    # So that an immediate `start cassandra` finds its ports free.
    ((STOPPED)) || return 0
    local port i
    for port in "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT" "$CASSANDRA_JMX_PORT"; do
        for ((i = 0; i < 100; i++)); do
            port_open "$port" || break
            sleep 0.1
        done
    done
}

cassandra_status() {
    local pid
    if pid=$(cassandra_pid); then
        if cql_ready; then
            printf '%-10s up       pid %-8s %s:%s\n' cassandra "$pid" "$HOST" "$CASSANDRA_PORT"
            return 0
        fi
        printf '%-10s down     pid %-8s %s:%s  (process running, CQL not answering yet)\n' \
            cassandra "$pid" "$HOST" "$CASSANDRA_PORT"
        return 1
    fi
    if cql_ready; then
        printf '%-10s up       pid %-8s %s:%s  (external: not started by this script)\n' \
            cassandra - "$HOST" "$CASSANDRA_PORT"
        return 0
    fi
    printf '%-10s down     pid %-8s %s:%s\n' cassandra - "$HOST" "$CASSANDRA_PORT"
    return 1
}

# ==========================================================================
# Redis
# ==========================================================================

REDIS_LOG="$REDIS_DIR/redis.log"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_PATTERN="redis-server"     # redis rewrites its process title; keep it loose

redis_pid() { live_pid "$REDIS_PID" "$REDIS_PATTERN"; }

redis_ready() {
    [[ $(timeout 3 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# Start Redis unless ours is running. A Redis we did not start that already
# answers on the port is accepted as-is (and never stopped by `down`).
redis_start() {
    REDIS_EXTERNAL=0
    REDIS_JUST_STARTED=0
    redis_pid >/dev/null && return 0
    if port_open "$REDIS_PORT"; then
        if redis_ready; then
            REDIS_EXTERNAL=1
            return 0
        fi
        die "redis: port $HOST:$REDIS_PORT is in use by something that is not Redis"
    fi
    mkdir -p -- "$REDIS_DIR/data"
    spawn "$REDIS_PID" "$REDIS_LOG" redis-server \
        --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
        --daemonize no --save "" --appendonly no \
        --dir "$REDIS_DIR/data" --logfile ""
    REDIS_JUST_STARTED=1
}

redis_wait() {
    local deadline=$((SECONDS + SIMPLE_BOOT_TIMEOUT)) pid
    if ((REDIS_EXTERNAL)); then
        printf '%-10s up       pid %-8s %s:%s  (external: not started by this script, left alone)\n' \
            redis - "$HOST" "$REDIS_PORT"
        return 0
    fi
    while :; do
        pid=$(redis_pid) || { show_log_tail "$REDIS_LOG"; die "redis: redis-server exited (log: $REDIS_LOG)"; }
        redis_ready && break
        if ((SECONDS >= deadline)); then
            show_log_tail "$REDIS_LOG"
            die "redis: no PONG on $HOST:$REDIS_PORT within ${SIMPLE_BOOT_TIMEOUT}s (log: $REDIS_LOG)"
        fi
        sleep 0.2
    done
    printf '%-10s up       pid %-8s %s:%s  (%s)\n' redis "$pid" "$HOST" "$REDIS_PORT" \
        "$( ((REDIS_JUST_STARTED)) && echo started || echo 'already running')"
}

redis_stop() { stop_pid redis "$REDIS_PID" "$REDIS_PATTERN"; }

redis_status() {
    local pid
    if pid=$(redis_pid); then
        redis_ready && { printf '%-10s up       pid %-8s %s:%s\n' redis "$pid" "$HOST" "$REDIS_PORT"; return 0; }
        printf '%-10s down     pid %-8s %s:%s  (process running, no PONG)\n' redis "$pid" "$HOST" "$REDIS_PORT"
        return 1
    fi
    if command -v redis-cli >/dev/null && redis_ready; then
        printf '%-10s up       pid %-8s %s:%s  (external: not started by this script)\n' redis - "$HOST" "$REDIS_PORT"
        return 0
    fi
    printf '%-10s down     pid %-8s %s:%s\n' redis - "$HOST" "$REDIS_PORT"
    return 1
}

# ==========================================================================
# Prometheus
# ==========================================================================

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
    local deadline=$((SECONDS + SIMPLE_BOOT_TIMEOUT)) pid note
    while :; do
        pid=$(prometheus_pid) || { show_log_tail "$PROM_LOG"; die "prometheus: process exited (log: $PROM_LOG)"; }
        prometheus_ready && break
        if ((SECONDS >= deadline)); then
            show_log_tail "$PROM_LOG"
            die "prometheus: /-/ready did not answer on $HOST:$PROMETHEUS_PORT within ${SIMPLE_BOOT_TIMEOUT}s (log: $PROM_LOG)"
        fi
        sleep 0.2
    done
    if ((PROM_JUST_STARTED)); then note=started
    elif ((PROM_RELOADED)); then note="already running, config reloaded"
    else note="already running"
    fi
    [[ -f $PROM_RULES_FILE ]] && note+=", rules: ${PROM_RULES_FILE#"$REPO_ROOT"/}" || note+=", no rules file"
    printf '%-10s up       pid %-8s %s:%s  (%s)\n' prometheus "$pid" "$HOST" "$PROMETHEUS_PORT" "$note"
}

prometheus_stop() { stop_pid prometheus "$PROM_PID" "$PROM_PATTERN"; }

prometheus_status() {
    local pid
    if pid=$(prometheus_pid); then
        prometheus_ready && { printf '%-10s up       pid %-8s %s:%s\n' prometheus "$pid" "$HOST" "$PROMETHEUS_PORT"; return 0; }
        printf '%-10s down     pid %-8s %s:%s  (process running, not ready)\n' prometheus "$pid" "$HOST" "$PROMETHEUS_PORT"
        return 1
    fi
    if prometheus_ready; then
        printf '%-10s up       pid %-8s %s:%s  (external: not started by this script)\n' prometheus - "$HOST" "$PROMETHEUS_PORT"
        return 0
    fi
    printf '%-10s down     pid %-8s %s:%s\n' prometheus - "$HOST" "$PROMETHEUS_PORT"
    return 1
}

# ==========================================================================
# Commands
# ==========================================================================

check_service() {
    local svc
    for svc in "${SERVICES[@]}"; do [[ $1 == "$svc" ]] && return 0; done
    die "unknown service '$1' (expected one of: ${SERVICES[*]})"
}

# Start the given services and wait for them. Cassandra (slowest) is spawned
# first and waited for last, so the others come up while it boots.
start_services() {
    mkdir -p -- "$STACK_DIR"
    ensure_packages_for "$@"
    local svc
    for svc in "$@"; do "${svc}_start"; done
    # Wait in the order redis, prometheus, cassandra.
    for svc in redis prometheus cassandra; do
        [[ " $* " == *" $svc "* ]] && "${svc}_wait"
    done
    return 0
}

cmd_up()     { start_services "${SERVICES[@]}"; }

cmd_down() {
    # Reverse order of dependencies: nothing here depends on anything else,
    # but stop the metrics scraper first.
    prometheus_stop
    redis_stop
    cassandra_stop
}

cmd_status() {
    local rc=0 svc
    for svc in "${SERVICES[@]}"; do "${svc}_status" || rc=1; done
    return "$rc"
}

usage() {
    sed -n '2,/^$/ s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# The committed files this script needs next to it.
check_support_files() {
    local f
    for f in cassandra-pom.xml cassandra.yaml cassandra-jvm.options logback.xml prometheus.yml; do
        [[ -f $SUPPORT_DIR/$f ]] || die "missing support file $SUPPORT_DIR/$f"
    done
}

# Serialise commands that start or stop things (two concurrent `up`s must not
# start two Cassandra nodes). `status` does not take the lock.
take_lock() {
    mkdir -p -- "$STACK_DIR"
    exec 9>"$STACK_DIR/.lock"
    flock -w 600 9 || die "another scripts/stack.sh is still running (lock $STACK_DIR/.lock)"
}

main() {
    local cmd=${1:-}
    check_support_files
    [[ $cmd == status ]] || take_lock
    case $cmd in
        up)     [[ $# -eq 1 ]] || usage; cmd_up ;;
        down)   [[ $# -eq 1 ]] || usage; cmd_down ;;
        status) [[ $# -eq 1 ]] || usage; cmd_status ;;
        start)  [[ $# -eq 2 ]] || usage; check_service "$2"; start_services "$2" ;;
        stop)   [[ $# -eq 2 ]] || usage; check_service "$2"; "${2}_stop" ;;
        restart)
            [[ $# -eq 2 ]] || usage; check_service "$2"
            "${2}_stop"; start_services "$2" ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
