# shellcheck shell=bash
#
# Redis of scripts/stack.sh (sourced by it): Debian's redis-server on 127.0.0.1:6379 (redis), and a
# second one with TLS and ACLs only on 127.0.0.1:6380 (redis-tls).

REDIS_PORT=6379
REDIS_DIR="$STACK_DIR/redis"
REDIS_LOG="$REDIS_DIR/redis.log"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_PATTERN="redis-server"     # redis rewrites its process title; keep it loose

# The Debian packages Redis needs whose commands are missing.
redis_packages() {
    command -v redis-server >/dev/null || echo redis-server
    command -v redis-cli >/dev/null || echo redis-tools
}

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
    if external_on_port redis "$REDIS_PORT" redis_ready Redis; then
        REDIS_EXTERNAL=1
        return 0
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
        status_line redis up - "$REDIS_PORT" "external: not started by this script, left alone"
        return 0
    fi
    wait_ready redis redis_pid redis_ready "$REDIS_LOG" "no PONG on $HOST:$REDIS_PORT"
    status_line redis up "$READY_PID" "$REDIS_PORT" \
        "$( ((REDIS_JUST_STARTED)) && echo started || echo 'already running')"
}

redis_stop() { stop_pid redis "$REDIS_PID" "$REDIS_PATTERN"; }

# A Redis this script did not start answers on the port.
redis_external() { command -v redis-cli >/dev/null && redis_ready; }

redis_status() {
    service_status redis "$REDIS_PORT" redis_pid redis_ready redis_external "" \
        "process running, no PONG" "external: not started by this script"
}

# ==========================================================================
# Redis with TLS and ACLs (redis-tls)
# ==========================================================================

REDIS_TLS_PORT=6380
REDIS_TLS_DIR="$STACK_DIR/redis-tls"
REDIS_TLS_USER=chatload
REDIS_TLS_PASSWORD=chatload-redis-test   # test-only; also in .stack/tls/redis-password

REDIS_TLS_LOG="$REDIS_TLS_DIR/redis-tls.log"
REDIS_TLS_PID="$REDIS_TLS_DIR/redis-tls.pid"
REDIS_TLS_PATTERN="redis-server"     # see REDIS_PATTERN; the pid file tells the two apart

redis_tls_packages() { redis_packages; }

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
    if external_on_port redis-tls "$REDIS_TLS_PORT" redis_tls_ready "our TLS Redis"; then
        REDIS_TLS_EXTERNAL=1
        return 0
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
        status_line redis-tls up - "$REDIS_TLS_PORT" "TLS + ACL; external: not started by this script, left alone"
        return 0
    fi
    wait_ready redis-tls redis_tls_pid redis_tls_ready "$REDIS_TLS_LOG" \
        "no PONG over TLS as $REDIS_TLS_USER on $HOST:$REDIS_TLS_PORT"
    status_line redis-tls up "$READY_PID" "$REDIS_TLS_PORT" \
        "TLS + ACL user $REDIS_TLS_USER; $( ((REDIS_TLS_JUST_STARTED)) && echo started || echo 'already running')"
}

redis_tls_stop() { stop_pid redis-tls "$REDIS_TLS_PID" "$REDIS_TLS_PATTERN"; }

# A TLS Redis this script did not start answers on the port as ours would.
redis_tls_external() { command -v redis-cli >/dev/null && [[ -s $TLS_DIR/ca.pem ]] && redis_tls_ready; }

redis_tls_status() {
    service_status redis-tls "$REDIS_TLS_PORT" redis_tls_pid redis_tls_ready redis_tls_external \
        "TLS + ACL user $REDIS_TLS_USER" "process running, no PONG over TLS" \
        "TLS + ACL; external: not started by this script"
}
