# shellcheck shell=bash
#
# Shared helpers of scripts/stack.sh (sourced by it; it sets HOST, REPO_ROOT, STACK_DIR,
# STOP_TIMEOUT and SIMPLE_BOOT_TIMEOUT first): logging, ports, pid files, starting, waiting for and
# stopping a service, and installing Debian packages (apt-get update once per run). The services
# are in the other files of scripts/stack/, one per service.

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

# wait_ready NAME PID_FN READY_FN LOG FAILURE: poll every 0.2 s, for at most
# SIMPLE_BOOT_TIMEOUT seconds, until READY_FN succeeds while PID_FN still finds
# the process; then READY_PID holds its pid. If the process exits, or the time
# runs out ("NAME: FAILURE within Ns"), show the log's tail and exit 1.
READY_PID=
wait_ready() {
    local name=$1 pid_fn=$2 ready_fn=$3 log_file=$4 failure=$5
    local deadline=$((SECONDS + SIMPLE_BOOT_TIMEOUT))
    while :; do
        # shellcheck disable=SC2034  # read by the services' <svc>_wait
        READY_PID=$("$pid_fn") || { show_log_tail "$log_file"; die "$name: the process exited (log: $log_file)"; }
        "$ready_fn" && return 0
        if ((SECONDS >= deadline)); then
            show_log_tail "$log_file"
            die "$name: $failure within ${SIMPLE_BOOT_TIMEOUT}s (log: $log_file)"
        fi
        sleep 0.2
    done
}

# status_line NAME up|down PID PORT [NOTE]: one line of `status`, `up` and `start`:
#   redis           up       pid 1234     127.0.0.1:6379  (started)
status_line() {
    printf '%-15s %-8s pid %-8s %s:%s' "$1" "$2" "$3" "$HOST" "$4"
    if [[ -n ${5:-} ]]; then printf '  (%s)' "$5"; fi
    printf '\n'
}

# service_status NAME PORT PID_FN READY_FN EXTERNAL_FN UP_NOTE NOT_READY_NOTE EXTERNAL_NOTE
# The `status` of a service: ours (PID_FN finds it) and READY_FN succeeds: up;
# ours and it does not: down; not ours but EXTERNAL_FN succeeds: up, external;
# else down. Returns 0 when up.
service_status() {
    local name=$1 port=$2 pid
    if pid=$("$3"); then
        if "$4"; then status_line "$name" up "$pid" "$port" "$6"; return 0; fi
        status_line "$name" down "$pid" "$port" "$7"
        return 1
    fi
    if "$5"; then
        status_line "$name" up - "$port" "$8"
        return 0
    fi
    status_line "$name" down - "$port"
    return 1
}

# external_on_port NAME PORT READY_FN WHAT: true if something this script did
# not start holds PORT and READY_FN succeeds (it is then used as it is); false
# if the port is free; exits if something that is not WHAT holds it.
external_on_port() {
    port_open "$2" || return 1
    "$3" && return 0
    die "$1: port $HOST:$2 is in use by something that is not $4"
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
    # shellcheck disable=SC2034  # read by cassandra_stop
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

# Install the Debian packages providing the commands the given services need:
# each service's <svc>_packages prints its missing ones, installed here in one apt-get run.
ensure_packages_for() {
    local missing=() svc
    for svc in "$@"; do
        mapfile -t -O "${#missing[@]}" missing < <("${svc//-/_}_packages")
    done
    command -v setsid >/dev/null || missing+=(util-linux)
    if needs_tls "$@"; then
        command -v openssl >/dev/null || missing+=(openssl)
    fi
    # de-duplicate
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        apt_install "${missing[@]}"
    fi
    # Java for Cassandra, and for keytool (the PKCS#12 truststore) whenever
    # the TLS material may have to be made.
    for svc in "$@"; do
        [[ $svc == cassandra ]] && ensure_java
    done
    if needs_tls "$@"; then ensure_java; fi
    return 0
}

# True if starting the given services needs the TLS material in .stack/tls.
needs_tls() {
    [[ " $* " == *" redis-tls "* ]] && return 0
    [[ " $* " == *" cassandra "* && $CASS_MODE == secure ]]
}

