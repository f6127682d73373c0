#!/usr/bin/env bash
#
# Local test stack for chatload, without Docker, on loopback only:
#
#   cassandra   Apache Cassandra 5.0.9 (jars from Maven Central)   127.0.0.1:9042
#   redis       Debian's redis-server                               127.0.0.1:6379
#   redis-tls   Debian's redis-server, TLS + ACL only (see below)   127.0.0.1:6380
#   prometheus  Debian's prometheus                                 127.0.0.1:9090
#
# Usage:
#   scripts/stack.sh up                 install what is missing, start what is not
#                                       running, wait until everything answers;
#                                       Cassandra always ends up in plain mode
#                                       (a secure one is restarted plain)
#   scripts/stack.sh status             one line per service; non-zero if any is down
#   scripts/stack.sh down               stop what this script started
#   scripts/stack.sh start   <service>  install + start + wait for one service
#   scripts/stack.sh stop    <service>  stop one service (if this script started it)
#   scripts/stack.sh restart <service>  stop + start one service
#   scripts/stack.sh start   cassandra secure
#   scripts/stack.sh restart cassandra secure
#                                       the same single node (same data, same ports)
#                                       in secure mode: PasswordAuthenticator (default
#                                       superuser cassandra/cassandra) and TLS-only CQL
#                                       on 9042 with a required client certificate.
#                                       `start|restart cassandra [plain]` and `up`
#                                       give plain mode (no auth, no TLS); the mode is
#                                       kept in .stack/cassandra/mode, `status` shows it.
#
# Test TLS material, made when a secure service (redis-tls, cassandra secure)
# starts and it is missing; a complete set is never overwritten (an incomplete
# or expiring one is replaced whole, and running secure services restarted;
# delete .stack/tls/ to get a new set). Test-only, as are the passwords:
#   .stack/tls/ca.pem, ca.key             test CA (X.509 v3, CA:TRUE)
#   .stack/tls/server.pem, server.key     server cert, SAN IP:127.0.0.1 + DNS:localhost
#   .stack/tls/client.pem, client.key     client cert (clientAuth) from the test CA
#   .stack/tls/other-ca.pem (+ .key)      an unrelated CA, for negative tests
#   .stack/tls/other-client.pem (+ .key)  a client cert from that unrelated CA
#   .stack/tls/keystore.p12               PKCS#12: server key + cert (Cassandra)
#   .stack/tls/truststore.p12             PKCS#12: the test CA (Cassandra)
#   .stack/tls/store-password             password of both stores (chatload-test)
#   .stack/tls/redis-password             redis-tls password of user chatload
#                                         (chatload-redis-test)
# Keys are unencrypted PKCS#8 PEM (RSA 2048), certificates SHA-256, 825 days.
# The password files hold just the password (no trailing newline).
#
# redis-tls: no plain port; TLS on 6380 with server.pem, client certificates
# optional (verified against ca.pem when sent); user `default` is off, the only
# user is `chatload` (password above) with `~chatload:* &chatload:* +@all -@admin`.
#
# All state (jars, config, data, logs, pid files) lives under .stack/ at the
# repository root. Every command is idempotent.
#
# Environment overrides:
#   CASSANDRA_HEAP           JVM heap for Cassandra (default 1G)
#   CASSANDRA_BOOT_TIMEOUT   seconds to wait for CQL (default 180; in secure mode
#                            also for the login as cassandra/cassandra)
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
SERVICES=(cassandra redis redis-tls prometheus)

CASSANDRA_PORT=9042
CASSANDRA_STORAGE_PORT=7011              # must match scripts/stack/cassandra.yaml
CASSANDRA_JMX_PORT=7199                  # must match scripts/stack/cassandra-jvm.options
CASSANDRA_HEAP=${CASSANDRA_HEAP:-1G}
CASSANDRA_BOOT_TIMEOUT=${CASSANDRA_BOOT_TIMEOUT:-180}
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon
CASS_DIR="$STACK_DIR/cassandra"

REDIS_PORT=6379
REDIS_DIR="$STACK_DIR/redis"

REDIS_TLS_PORT=6380
REDIS_TLS_DIR="$STACK_DIR/redis-tls"
REDIS_TLS_USER=chatload
REDIS_TLS_PASSWORD=chatload-redis-test   # test-only; also in .stack/tls/redis-password

PROMETHEUS_PORT=9090
PROM_DIR="$STACK_DIR/prometheus"
PROM_RULES_FILE="$REPO_ROOT/deploy/prometheus/rules/chatload-rules.yml"

TLS_DIR="$STACK_DIR/tls"                 # test CA, certificates, keys, stores
TLS_CNF="$SUPPORT_DIR/tls.cnf"
TLS_STORE_PASSWORD=chatload-test         # test-only; also in .stack/tls/store-password
TLS_DAYS=825

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

# wait_ready NAME PID_FN READY_FN LOG FAILURE: poll every 0.2 s, for at most
# SIMPLE_BOOT_TIMEOUT seconds, until READY_FN succeeds while PID_FN still finds
# the process; then READY_PID holds its pid. If the process exits, or the time
# runs out ("NAME: FAILURE within Ns"), show the log's tail and exit 1.
READY_PID=
wait_ready() {
    local name=$1 pid_fn=$2 ready_fn=$3 log_file=$4 failure=$5
    local deadline=$((SECONDS + SIMPLE_BOOT_TIMEOUT))
    while :; do
        READY_PID=$("$pid_fn") || { show_log_tail "$log_file"; die "$name: the process exited (log: $log_file)"; }
        "$ready_fn" && return 0
        if ((SECONDS >= deadline)); then
            show_log_tail "$log_file"
            die "$name: $failure within ${SIMPLE_BOOT_TIMEOUT}s (log: $log_file)"
        fi
        sleep 0.2
    done
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
            redis|redis-tls)
                command -v redis-server >/dev/null || missing+=(redis-server)
                command -v redis-cli >/dev/null || missing+=(redis-tools) ;;
            prometheus)
                command -v prometheus >/dev/null || missing+=(prometheus)
                command -v promtool >/dev/null || missing+=(prometheus)
                command -v curl >/dev/null || missing+=(curl) ;;
        esac
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

# ==========================================================================
# Test TLS material (.stack/tls)
# ==========================================================================

# Everything in .stack/tls; made together, so they always belong together.
TLS_FILES=(ca.pem ca.key server.pem server.key client.pem client.key
           other-ca.pem other-ca.key other-client.pem other-client.key
           keystore.p12 truststore.p12 store-password redis-password)
TLS_CERTS=(ca.pem server.pem client.pem other-ca.pem other-client.pem)
TLS_REGENERATED=0     # set to 1 once this run has made new material

# True if all of .stack/tls is there and no certificate expires within a day.
tls_complete() {
    local f
    for f in "${TLS_FILES[@]}"; do
        [[ -s $TLS_DIR/$f ]] || return 1
    done
    for f in "${TLS_CERTS[@]}"; do
        openssl x509 -noout -checkend 86400 -in "$TLS_DIR/$f" >/dev/null 2>&1 || return 1
    done
}

# tls_key <dir> <name>: an unencrypted RSA 2048 key, PKCS#8 PEM, in <dir>/<name>.key.
tls_key() {
    openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1/$2.key"
    chmod 600 -- "$1/$2.key"
}

# A random positive 128-bit serial number.
tls_serial() { printf '0x7%s' "$(openssl rand -hex 15)"; }

# tls_ca <dir> <name> <common name>: a self-signed CA certificate <name>.pem.
tls_ca() {
    tls_key "$1" "$2"
    openssl req -x509 -new -config "$TLS_CNF" -extensions ca_ext \
        -key "$1/$2.key" -subj "/O=chatload test/CN=$3" \
        -set_serial "$(tls_serial)" -days "$TLS_DAYS" -sha256 -out "$1/$2.pem"
}

# tls_leaf <dir> <name> <ca name> <extensions section of tls.cnf> <common name>:
# a certificate <name>.pem signed by <ca name>.pem.
tls_leaf() {
    tls_key "$1" "$2"
    openssl req -new -config "$TLS_CNF" -key "$1/$2.key" \
        -subj "/O=chatload test/CN=$5" -out "$1/$2.csr"
    openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.pem" -CAkey "$1/$3.key" \
        -set_serial "$(tls_serial)" -days "$TLS_DAYS" -sha256 \
        -extfile "$TLS_CNF" -extensions "$4" -out "$1/$2.pem"
    rm -f -- "$1/$2.csr"
}

# Make the whole set in <dir> and check it (run in a subshell with `set -e`).
tls_generate() {
    local dir=$1 keytool pw=$TLS_STORE_PASSWORD
    keytool="${JAVA%/*}/keytool"
    [[ -x $keytool ]] || keytool=$(command -v keytool) || { echo "keytool not found next to $JAVA"; return 1; }

    tls_ca "$dir" ca "chatload test CA"
    tls_leaf "$dir" server ca server_ext localhost
    tls_leaf "$dir" client ca client_ext "chatload test client"
    tls_ca "$dir" other-ca "chatload unrelated test CA"
    tls_leaf "$dir" other-client other-ca client_ext "chatload unrelated test client"

    # Cassandra: server key + chain in a PKCS#12 keystore; the CA in a PKCS#12
    # truststore. The truststore comes from keytool: Java ignores certificates
    # in a PKCS#12 file unless they carry its trusted-certificate attribute,
    # which OpenSSL 3.0 cannot write.
    openssl pkcs12 -export -name server -in "$dir/server.pem" -inkey "$dir/server.key" \
        -certfile "$dir/ca.pem" -passout "pass:$pw" -out "$dir/keystore.p12"
    "$keytool" -importcert -noprompt -alias chatload-test-ca -file "$dir/ca.pem" \
        -storetype PKCS12 -keystore "$dir/truststore.p12" -storepass "$pw"
    printf '%s' "$pw" >"$dir/store-password"
    printf '%s' "$REDIS_TLS_PASSWORD" >"$dir/redis-password"

    # Checks: the chains verify for their purpose (and the server cert for
    # 127.0.0.1 and localhost), the unrelated CA verifies none of them, and
    # Java reads both stores (a key entry and a trusted-certificate entry).
    openssl verify -x509_strict -purpose sslserver -verify_ip 127.0.0.1 \
        -CAfile "$dir/ca.pem" "$dir/server.pem"
    openssl verify -x509_strict -purpose sslserver -verify_hostname localhost \
        -CAfile "$dir/ca.pem" "$dir/server.pem"
    openssl verify -x509_strict -purpose sslclient -CAfile "$dir/ca.pem" "$dir/client.pem"
    openssl verify -x509_strict -purpose sslclient -CAfile "$dir/other-ca.pem" "$dir/other-client.pem"
    local f
    for f in server client; do
        if openssl verify -CAfile "$dir/other-ca.pem" "$dir/$f.pem"; then
            echo "other-ca.pem verifies $f.pem, which the test CA signed"
            return 1
        fi
    done
    "$keytool" -list -storetype PKCS12 -keystore "$dir/keystore.p12" -storepass "$pw" \
        | grep -q PrivateKeyEntry || { echo "keystore.p12: no PrivateKeyEntry"; return 1; }
    "$keytool" -list -storetype PKCS12 -keystore "$dir/truststore.p12" -storepass "$pw" \
        | grep -q trustedCertEntry || { echo "truststore.p12: no trustedCertEntry"; return 1; }
}

# Make the test TLS material in .stack/tls unless it is complete. Never
# overwrites a complete set; an incomplete or expiring one is replaced whole.
ensure_tls() {
    tls_complete && return 0
    local partial="$STACK_DIR/tls.partial" log="$STACK_DIR/tls.log" t0
    t0=$(now)
    if [[ -d $TLS_DIR ]]; then
        log "tls: ${TLS_DIR#"$REPO_ROOT"/} is incomplete or expiring; making a new set"
    fi
    rm -rf -- "$partial"
    mkdir -p -- "$partial"
    # In the background, so that `set -e` applies inside (it does not in a
    # subshell whose status an `if` tests).
    (tls_generate "$partial") >"$log" 2>&1 &
    if ! wait "$!"; then
        show_log_tail "$log"
        rm -rf -- "$partial"
        die "tls: could not make the test TLS material (log: $log)"
    fi
    rm -rf -- "$TLS_DIR"
    mv -- "$partial" "$TLS_DIR"
    TLS_REGENERATED=1
    log "tls: test CA, server/client certificates and PKCS#12 stores written to ${TLS_DIR#"$REPO_ROOT"/} ($(elapsed "$t0" "$(now)")s)"
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
CASS_MODE_FILE="$CASS_DIR/mode"           # plain|secure: how our running node was started
CASS_MODE=plain                           # the mode asked for (main sets it)

cassandra_pid() {
    local pid
    pid=$(live_pid "$CASS_PID" "$CASS_PATTERN") || return 1
    # ...and it really is the Cassandra daemon.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CASSANDRA_MAIN" || return 1
    printf '%s\n' "$pid"
}

# The mode our running node was started in (plain if it predates the mode file).
cassandra_running_mode() {
    local mode
    mode=$(cat -- "$CASS_MODE_FILE" 2>/dev/null) || mode=plain
    [[ $mode == secure ]] && echo secure || echo plain
}

cassandra_mode_note() {
    [[ $1 == secure ]] && echo "secure: TLS + PasswordAuthenticator" || echo "plain: no TLS, no auth"
}

# cql_ready [plain|secure]
# Send a CQL OPTIONS request (protocol v4 header, opcode 0x05, empty body) and
# check that the reply is a v4 response (0x84) with opcode SUPPORTED (0x06).
# In secure mode over TLS, with the test client certificate.
cql_ready() {
    if [[ ${1:-plain} == secure ]]; then
        cql_tls_probe options
        return
    fi
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x04\x00\x00\x00\x05\x00\x00\x00\x00" >&3
        hdr=$(head -c 9 <&3 | od -An -tx1 | tr -d " \n")
        [[ ${hdr:0:2} == 84 && ${hdr:8:2} == 06 ]]
    ' "$HOST" "$CASSANDRA_PORT" 2>/dev/null
}

# True once the secure node accepts a login as the default superuser
# cassandra/cassandra (so the role exists and its password works).
cql_login_ready() { cql_tls_probe login; }

# cql_tls_probe options|login
# Talk CQL (protocol v4) to the secure node through `openssl s_client`, which
# verifies the server certificate against the test CA (and for 127.0.0.1) and
# presents the test client certificate. Requests and responses go one at a time
# through a coprocess; responses are read byte-exactly with dd.
#   options: OPTIONS                      -> SUPPORTED (0x06)
#   login:   STARTUP {CQL_VERSION: 3.0.0} -> AUTHENTICATE (0x03), then
#            AUTH_RESPONSE with SASL PLAIN "\0cassandra\0cassandra" -> AUTH_SUCCESS (0x10)
#            (a missing role or a wrong password gives ERROR, 0x00)
cql_tls_probe() {
    # shellcheck disable=SC2016  # expanded by the inner bash, on purpose
    timeout 10 bash -c '
        what=$1 host=$2 port=$3 tls=$4
        coproc TLS {
            exec openssl s_client -quiet -verify_return_error -verify_ip "$host" \
                -CAfile "$tls/ca.pem" -cert "$tls/client.pem" -key "$tls/client.key" \
                -connect "$host:$port" 2>/dev/null
        }
        trap "kill $TLS_PID 2>/dev/null" EXIT
        # (copies: coprocess descriptors are not usable in subshells)
        exec 3<&"${TLS[0]}" 4>&"${TLS[1]}"
        # Read one response frame; true if it is a v4 response with opcode $1.
        reply() {
            local hdr
            hdr=$(dd bs=1 count=9 status=none <&3 | od -An -tx1 | tr -d " \n")
            [[ ${#hdr} == 18 && ${hdr:0:2} == 84 && ${hdr:8:2} == "$1" ]] || return 1
            dd bs=1 count=$((16#${hdr:10:8})) status=none <&3 >/dev/null
        }
        case $what in
            options)
                printf "\x04\x00\x00\x01\x05\x00\x00\x00\x00" >&4
                reply 06 ;;
            login)
                printf "\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0" >&4
                reply 03 || exit 1
                printf "\x04\x00\x00\x02\x0f\x00\x00\x00\x18\x00\x00\x00\x14\x00cassandra\x00cassandra" >&4
                reply 10 ;;
            *) exit 2 ;;
        esac
    ' cql_tls_probe "$1" "$HOST" "$CASSANDRA_PORT" "$TLS_DIR" 2>/dev/null
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

# yaml_overlay <base file> <overlay file>
# Print the base YAML without the top-level keys (and their indented blocks)
# that the overlay defines, then the overlay.
yaml_overlay() {
    awk '
        NR == FNR {
            if (match($0, /^[A-Za-z_][A-Za-z0-9_]*:/)) drop[substr($0, 1, RLENGTH - 1)] = 1
            next
        }
        /^[A-Za-z_][A-Za-z0-9_]*:/ { skip = (substr($0, 1, index($0, ":") - 1) in drop) }
        /^#/ { skip = 0 }
        !skip
    ' "$2" "$1"
    printf '\n# ===== %s (secure mode) =====\n' "${2##*/}"
    cat -- "$2"
}

# Render conf/: cassandra.yaml (with absolute data paths; in secure mode with
# scripts/stack/cassandra-secure.yaml laid over it) and logback.xml.
cassandra_configure() {
    mkdir -p -- "$CASS_CONF/triggers" "$CASS_DATA" "$CASS_TMP" "$CASS_LOGDIR"
    local tpl out="$CASS_CONF/cassandra.yaml"
    tpl=$(<"$SUPPORT_DIR/cassandra.yaml")
    # Quoted replacement: no special meaning for '&' or '\' in the path.
    printf '%s\n' "${tpl//@CASSANDRA_DATA_DIR@/"$CASS_DATA"}" >"$out"
    if [[ $CASS_MODE == secure ]]; then
        tpl=$(<"$SUPPORT_DIR/cassandra-secure.yaml")
        tpl=${tpl//@TLS_DIR@/"$TLS_DIR"}
        printf '%s\n' "${tpl//@TLS_STORE_PASSWORD@/"$TLS_STORE_PASSWORD"}" >"$CASS_CONF/cassandra-secure.yaml"
        yaml_overlay "$out" "$CASS_CONF/cassandra-secure.yaml" >"$out.new"
        mv -- "$out.new" "$out"
        [[ $(grep -c '^authenticator: PasswordAuthenticator$' "$out") == 1 ]] \
            || die "cassandra: rendering the secure-mode $out went wrong (authenticator)"
    fi
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
    )
    if [[ $CASS_MODE == secure ]]; then
        # Create the default superuser cassandra/cassandra at once (default: 10 s later).
        CASS_CMD+=(-Dcassandra.superuser_setup_delay_ms=0)
    fi
    CASS_CMD+=(
        -cp "$CASS_CONF:$CASS_LIB/*"
        "$CASSANDRA_MAIN"
    )
}

# Start Cassandra in $CASS_MODE unless it is running in that mode already
# (running in the other mode: stop it first). Does not wait.
cassandra_start() {
    local pid running
    [[ $CASS_MODE == secure ]] && ensure_tls
    if pid=$(cassandra_pid); then
        running=$(cassandra_running_mode)
        if [[ $running != "$CASS_MODE" ]]; then
            log "cassandra: running in $running mode; restarting it in $CASS_MODE mode"
            cassandra_stop
        elif [[ $running == secure ]] && ((TLS_REGENERATED)); then
            log "cassandra: the TLS material was just remade; restarting it"
            cassandra_stop
        else
            CASS_JUST_STARTED=0
            return 0
        fi
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
    printf '%s\n' "$CASS_MODE" >"$CASS_MODE_FILE"
    spawn "$CASS_PID" "$CASS_LOG" "${CASS_CMD[@]}"
    CASS_JUST_STARTED=1
    if [[ $CASS_MODE == secure ]]; then
        log "cassandra: started pid $(<"$CASS_PID") in secure mode, waiting for CQL over TLS on $HOST:$CASSANDRA_PORT and a login as cassandra (up to ${CASSANDRA_BOOT_TIMEOUT}s)"
    else
        log "cassandra: started pid $(<"$CASS_PID"), waiting for CQL on $HOST:$CASSANDRA_PORT (up to ${CASSANDRA_BOOT_TIMEOUT}s)"
    fi
}

# Wait until CQL answers (secure mode: over TLS, and a login as cassandra
# succeeds); on failure print the log tail, stop the node, exit 1.
cassandra_wait() {
    local deadline=$((SECONDS + CASSANDRA_BOOT_TIMEOUT)) pid cql_at="" what
    local note
    note=$(cassandra_mode_note "$CASS_MODE")
    while :; do
        if ! pid=$(cassandra_pid); then
            show_log_tail "$CASS_LOG" 60
            die "cassandra: the java process exited before CQL came up (log: $CASS_LOG)"
        fi
        if [[ -n $cql_at ]] || cql_ready "$CASS_MODE"; then
            [[ -n $cql_at ]] || cql_at=$(now)
            [[ $CASS_MODE == plain ]] && break
            cql_login_ready && break
        fi
        if ((SECONDS >= deadline)); then
            show_log_tail "$CASS_LOG" 60
            stop_pid cassandra "$CASS_PID" "$CASS_PATTERN" || true
            if [[ -z $cql_at ]]; then
                what="CQL did not answer$([[ $CASS_MODE == secure ]] && echo ' over TLS')"
            else
                what="CQL answered over TLS, but logging in as cassandra/cassandra kept failing"
            fi
            die "cassandra: $what on $HOST:$CASSANDRA_PORT within ${CASSANDRA_BOOT_TIMEOUT}s (log: $CASS_LOG)"
        fi
        sleep 0.5
    done
    if ((CASS_JUST_STARTED)); then
        local boot started
        started=$(<"$CASS_STARTED")
        boot=$(elapsed "$started" "$(now)")
        printf '%s\n' "$boot" >"$CASS_DIR/boot_seconds"
        if [[ $CASS_MODE == secure ]]; then
            printf '%-10s up       pid %-8s %s:%s  (%s; started, CQL over TLS after %ss, login as cassandra after %ss)\n' \
                cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$note" "$(elapsed "$started" "$cql_at")" "$boot"
        else
            printf '%-10s up       pid %-8s %s:%s  (started, CQL answered after %ss)\n' \
                cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$boot"
        fi
    else
        printf '%-10s up       pid %-8s %s:%s  (%s; already running)\n' \
            cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$note"
    fi
}

cassandra_stop() {
    stop_pid cassandra "$CASS_PID" "$CASS_PATTERN"
    rm -f -- "$CASS_MODE_FILE"
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
    local pid mode note
    if pid=$(cassandra_pid); then
        mode=$(cassandra_running_mode)
        note=$(cassandra_mode_note "$mode")
        if cql_ready "$mode"; then
            printf '%-10s up       pid %-8s %s:%s  (%s)\n' cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$note"
            return 0
        fi
        printf '%-10s down     pid %-8s %s:%s  (%s; process running, CQL not answering yet)\n' \
            cassandra "$pid" "$HOST" "$CASSANDRA_PORT" "$note"
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
    if ((REDIS_EXTERNAL)); then
        printf '%-10s up       pid %-8s %s:%s  (external: not started by this script, left alone)\n' \
            redis - "$HOST" "$REDIS_PORT"
        return 0
    fi
    wait_ready redis redis_pid redis_ready "$REDIS_LOG" "no PONG on $HOST:$REDIS_PORT"
    printf '%-10s up       pid %-8s %s:%s  (%s)\n' redis "$READY_PID" "$HOST" "$REDIS_PORT" \
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
# Redis with TLS and ACLs (redis-tls)
# ==========================================================================

REDIS_TLS_LOG="$REDIS_TLS_DIR/redis-tls.log"
REDIS_TLS_PID="$REDIS_TLS_DIR/redis-tls.pid"
REDIS_TLS_PATTERN="redis-server"     # see REDIS_PATTERN; the pid file tells the two apart

redis_tls_pid() { live_pid "$REDIS_TLS_PID" "$REDIS_TLS_PATTERN"; }

# PONG over TLS (server certificate checked against the test CA, no client
# certificate) after logging in as the chatload user.
redis_tls_ready() {
    [[ $(timeout 3 redis-cli --tls --cacert "$TLS_DIR/ca.pem" -h "$HOST" -p "$REDIS_TLS_PORT" \
        --user "$REDIS_TLS_USER" --pass "$REDIS_TLS_PASSWORD" --no-auth-warning ping 2>/dev/null) == PONG ]]
}

# Start redis-tls unless ours is running (restart it if the TLS material was
# just remade). Like redis, accepts one it did not start that answers as ours would.
redis_tls_start() {
    REDIS_TLS_EXTERNAL=0
    REDIS_TLS_JUST_STARTED=0
    ensure_tls
    if redis_tls_pid >/dev/null; then
        ((TLS_REGENERATED)) || return 0
        log "redis-tls: the TLS material was just remade; restarting it"
        redis_tls_stop
    fi
    if port_open "$REDIS_TLS_PORT"; then
        if redis_tls_ready; then
            REDIS_TLS_EXTERNAL=1
            return 0
        fi
        die "redis-tls: port $HOST:$REDIS_TLS_PORT is in use by something that is not our TLS Redis"
    fi
    mkdir -p -- "$REDIS_TLS_DIR/data"
    # No plain-text port; TLS with client certificates optional (verified
    # against the test CA when a client sends one). ACL: `default` disabled,
    # one user with a password, limited to chatload:* keys and channels and
    # no @admin commands.
    spawn "$REDIS_TLS_PID" "$REDIS_TLS_LOG" redis-server \
        --bind "$HOST" --port 0 --protected-mode yes \
        --tls-port "$REDIS_TLS_PORT" \
        --tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server.key" \
        --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients optional \
        --daemonize no --save "" --appendonly no \
        --dir "$REDIS_TLS_DIR/data" --logfile "" \
        --user default off \
        --user "$REDIS_TLS_USER" on ">$REDIS_TLS_PASSWORD" '~chatload:*' '&chatload:*' '+@all' '-@admin'
    REDIS_TLS_JUST_STARTED=1
}

redis_tls_wait() {
    if ((REDIS_TLS_EXTERNAL)); then
        printf '%-10s up       pid %-8s %s:%s  (TLS + ACL; external: not started by this script, left alone)\n' \
            redis-tls - "$HOST" "$REDIS_TLS_PORT"
        return 0
    fi
    wait_ready redis-tls redis_tls_pid redis_tls_ready "$REDIS_TLS_LOG" \
        "no PONG over TLS as $REDIS_TLS_USER on $HOST:$REDIS_TLS_PORT"
    printf '%-10s up       pid %-8s %s:%s  (TLS + ACL user %s; %s)\n' redis-tls "$READY_PID" "$HOST" "$REDIS_TLS_PORT" \
        "$REDIS_TLS_USER" "$( ((REDIS_TLS_JUST_STARTED)) && echo started || echo 'already running')"
}

redis_tls_stop() { stop_pid redis-tls "$REDIS_TLS_PID" "$REDIS_TLS_PATTERN"; }

redis_tls_status() {
    local pid
    if pid=$(redis_tls_pid); then
        redis_tls_ready && { printf '%-10s up       pid %-8s %s:%s  (TLS + ACL user %s)\n' redis-tls "$pid" "$HOST" "$REDIS_TLS_PORT" "$REDIS_TLS_USER"; return 0; }
        printf '%-10s down     pid %-8s %s:%s  (process running, no PONG over TLS)\n' redis-tls "$pid" "$HOST" "$REDIS_TLS_PORT"
        return 1
    fi
    if command -v redis-cli >/dev/null && [[ -s $TLS_DIR/ca.pem ]] && redis_tls_ready; then
        printf '%-10s up       pid %-8s %s:%s  (TLS + ACL; external: not started by this script)\n' redis-tls - "$HOST" "$REDIS_TLS_PORT"
        return 0
    fi
    printf '%-10s down     pid %-8s %s:%s\n' redis-tls - "$HOST" "$REDIS_TLS_PORT"
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
    local note
    wait_ready prometheus prometheus_pid prometheus_ready "$PROM_LOG" \
        "/-/ready did not answer on $HOST:$PROMETHEUS_PORT"
    if ((PROM_JUST_STARTED)); then note=started
    elif ((PROM_RELOADED)); then note="already running, config reloaded"
    else note="already running"
    fi
    [[ -f $PROM_RULES_FILE ]] && note+=", rules: ${PROM_RULES_FILE#"$REPO_ROOT"/}" || note+=", no rules file"
    printf '%-10s up       pid %-8s %s:%s  (%s)\n' prometheus "$READY_PID" "$HOST" "$PROMETHEUS_PORT" "$note"
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
# (Service redis-tls has functions redis_tls_start etc.)
start_services() {
    mkdir -p -- "$STACK_DIR"
    ensure_packages_for "$@"
    local svc
    for svc in "$@"; do "${svc//-/_}_start"; done
    # Wait in the order redis, redis-tls, prometheus, cassandra.
    for svc in redis redis-tls prometheus cassandra; do
        [[ " $* " == *" $svc "* ]] && "${svc//-/_}_wait"
    done
    return 0
}

cmd_up()     { start_services "${SERVICES[@]}"; }

cmd_down() {
    # Reverse order of dependencies: nothing here depends on anything else,
    # but stop the metrics scraper first.
    prometheus_stop
    redis_tls_stop
    redis_stop
    cassandra_stop
}

cmd_status() {
    local rc=0 svc
    for svc in "${SERVICES[@]}"; do "${svc//-/_}_status" || rc=1; done
    return "$rc"
}

usage() {
    sed -n '2,/^$/ s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

# The committed files this script needs next to it.
check_support_files() {
    local f
    for f in cassandra-pom.xml cassandra.yaml cassandra-secure.yaml cassandra-jvm.options \
             logback.xml prometheus.yml tls.cnf; do
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
        start|restart)
            # `start|restart cassandra secure` (or `... cassandra plain`)
            if [[ $# -eq 3 && $2 == cassandra && $3 =~ ^(plain|secure)$ ]]; then
                CASS_MODE=$3
            else
                [[ $# -eq 2 ]] || usage
            fi
            check_service "$2"
            [[ $cmd == restart ]] && "${2//-/_}_stop"
            start_services "$2" ;;
        stop)   [[ $# -eq 2 ]] || usage; check_service "$2"; "${2//-/_}_stop" ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
