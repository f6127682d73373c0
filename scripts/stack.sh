#!/usr/bin/env bash
#
# Local test stack for chatload, without Docker, on loopback only:
#
#   cassandra   Apache Cassandra 5.0.9 (jars from Maven Central)   127.0.0.1:9042
#   redis       Debian's redis-server                               127.0.0.1:6379
#   redis-tls   Debian's redis-server, TLS + ACL only (see below)   127.0.0.1:6380
#   prometheus  Debian's prometheus                                 127.0.0.1:9090
#   chatsvc     the reference chat service (src/bin/chatsvc), three  127.0.0.1:8088 api
#               processes, started once Cassandra and Redis answer   127.0.0.1:8089 gateway
#                                                                    127.0.0.1:8090 worker
#
# Usage:
#   scripts/stack.sh up                 install what is missing, start what is not
#                                       running, wait until everything answers;
#                                       Cassandra always ends up in plain mode
#                                       (a secure one is restarted plain)
#   scripts/stack.sh status             one line per service; non-zero if any is down
#   scripts/stack.sh down               stop what this script started
#   scripts/stack.sh start   <service>  install + start + wait for one service
#                                       (`start chatsvc` needs Cassandra and Redis
#                                       answering already; it fails with a hint if not)
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
#   CHATSVC_MODE             chatsvc's --mode: buffered (default; api -> queue ->
#                            worker) or direct (the api writes Cassandra itself)
#   CHATSVC_PROFILE          cargo profile chatsvc is built with: debug (default,
#                            the one `cargo test` shares) or release
#   CHATSVC_BOOT_TIMEOUT     seconds to wait for each chatsvc /readyz (default 60)

# Layout: this file holds the commands and what all services share; the rest is
# in scripts/stack/ (sourced below), next to the committed configs it renders:
#   lib.sh            helpers: logging, ports, pid files, spawn, wait, stop, apt
#   tls.sh            the test TLS material in .stack/tls
#   cassandra.sh      cassandra (cassandra-cql.sh: its CQL probes)
#   redis.sh          redis and redis-tls
#   prometheus.sh     prometheus
#   chatsvc.sh        chatsvc (api, gateway, worker; built with cargo)
# Each service <svc> (redis-tls: redis_tls) has <svc>_packages (the Debian
# packages it needs that are missing), <svc>_start (install what it needs from
# elsewhere, spawn it; cassandra_install fetches the jars), <svc>_wait,
# <svc>_stop and <svc>_status.

# --------------------------------------------------------------------------
# Locations and constants
# --------------------------------------------------------------------------

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
SUPPORT_DIR="$SCRIPT_DIR/stack"          # committed configs and the service scripts
STACK_DIR="$REPO_ROOT/.stack"            # all runtime state (git-ignored)

HOST=127.0.0.1
SERVICES=(cassandra redis redis-tls prometheus chatsvc)

STOP_TIMEOUT=${STOP_TIMEOUT:-60}
SIMPLE_BOOT_TIMEOUT=30                   # redis and prometheus

# shellcheck source=SCRIPTDIR/stack/lib.sh
source "$SUPPORT_DIR/lib.sh"
# shellcheck source=SCRIPTDIR/stack/tls.sh
source "$SUPPORT_DIR/tls.sh"
# shellcheck source=SCRIPTDIR/stack/cassandra.sh
source "$SUPPORT_DIR/cassandra.sh"
# shellcheck source=SCRIPTDIR/stack/cassandra-cql.sh
source "$SUPPORT_DIR/cassandra-cql.sh"
# shellcheck source=SCRIPTDIR/stack/redis.sh
source "$SUPPORT_DIR/redis.sh"
# shellcheck source=SCRIPTDIR/stack/prometheus.sh
source "$SUPPORT_DIR/prometheus.sh"
# shellcheck source=SCRIPTDIR/stack/chatsvc.sh
source "$SUPPORT_DIR/chatsvc.sh"

# ==========================================================================
# Commands
# ==========================================================================

check_service() {
    local svc
    for svc in "${SERVICES[@]}"; do [[ $1 == "$svc" ]] && return 0; done
    die "unknown service '$1' (expected one of: ${SERVICES[*]})"
}

# Start the given services and wait for them. Cassandra (slowest) is spawned
# first and waited for last, so the others come up while it boots; chatsvc,
# which needs Cassandra and Redis, is started once they answer.
# (Service redis-tls has functions redis_tls_start etc.)
start_services() {
    mkdir -p -- "$STACK_DIR"
    ensure_packages_for "$@"
    local svc
    for svc in "$@"; do [[ $svc == chatsvc ]] || "${svc//-/_}_start"; done
    # Wait in the order redis, redis-tls, prometheus, cassandra.
    for svc in redis redis-tls prometheus cassandra; do
        [[ " $* " == *" $svc "* ]] && "${svc//-/_}_wait"
    done
    if [[ " $* " == *" chatsvc "* ]]; then
        chatsvc_start
        chatsvc_wait
    fi
    return 0
}

cmd_up()     { start_services "${SERVICES[@]}"; }

cmd_down() {
    # Reverse order of dependencies: chatsvc uses Cassandra and Redis; stop
    # the metrics scraper next.
    chatsvc_stop
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
