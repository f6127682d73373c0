# shellcheck shell=bash
#
# chatsvc of scripts/stack.sh (sourced by it): the reference chat service (src/bin/chatsvc) as three
# processes, on keyspace chatsvc and Redis prefix chatsvc:
#   api      127.0.0.1:8088   POST/GET /api/v1/channels/{id}/messages, /admin/faults
#   gateway  127.0.0.1:8089   /ws, /admin/faults
#   worker   127.0.0.1:8090   health and metrics only (it takes the ingest queue)
# It needs Cassandra (plain mode) and Redis answering, so scripts/stack.sh starts it after them;
# `start chatsvc` alone fails with a hint when they do not answer. The binary is built with
# `cargo build --locked --bin chatsvc` (the debug profile that `cargo test` shares; set
# CHATSVC_PROFILE=release for a release build) unless it is newer than src/, Cargo.toml and
# Cargo.lock. CHATSVC_MODE (default buffered; or direct) is the api's --mode.

CHATSVC_DIR="$STACK_DIR/chatsvc"
CHATSVC_ROLES=(api gateway worker)
CHATSVC_MODE=${CHATSVC_MODE:-buffered}
CHATSVC_PROFILE=${CHATSVC_PROFILE:-debug}
CHATSVC_BOOT_TIMEOUT=${CHATSVC_BOOT_TIMEOUT:-60}   # connect, create the schema, prepare
CHATSVC_ROLE=                                     # the role the helpers below look at

chatsvc_port() {
    case $1 in
        api) echo 8088 ;;
        gateway) echo 8089 ;;
        worker) echo 8090 ;;
    esac
}

# The Debian packages chatsvc needs whose commands are missing (cargo is not one: see chatsvc_build).
chatsvc_packages() {
    command -v curl >/dev/null || echo curl
}

# Where cargo puts the binary of CHATSVC_PROFILE (CARGO_TARGET_DIR is honoured, relative to the repo).
chatsvc_binary() {
    local target=${CARGO_TARGET_DIR:-target}
    [[ $target == /* ]] || target="$REPO_ROOT/$target"
    printf '%s/%s/chatsvc\n' "$target" "$CHATSVC_PROFILE"
}

# Build the binary unless it is newer than everything it is built from.
chatsvc_build() {
    local bin profile_flag=()
    case $CHATSVC_PROFILE in
        debug) ;;
        release) profile_flag=(--release) ;;
        *) die "chatsvc: CHATSVC_PROFILE must be debug or release, not '$CHATSVC_PROFILE'" ;;
    esac
    bin=$(chatsvc_binary)
    if [[ -x $bin && -z $(find "$REPO_ROOT/src" "$REPO_ROOT/Cargo.toml" "$REPO_ROOT/Cargo.lock" \
        -newer "$bin" -print -quit) ]]; then
        return 0
    fi
    command -v cargo >/dev/null || die "chatsvc: cargo not found (install Rust, see the README)"
    local build=(cargo build --locked "${profile_flag[@]}" --bin chatsvc)
    log "chatsvc: ${build[*]} (log: ${CHATSVC_DIR#"$REPO_ROOT"/}/build.log)"
    if ! (cd -- "$REPO_ROOT" && "${build[@]}") >"$CHATSVC_DIR/build.log" 2>&1; then
        show_log_tail "$CHATSVC_DIR/build.log"
        die "chatsvc: the build failed"
    fi
}

chatsvc_role_pid() { live_pid "$CHATSVC_DIR/$CHATSVC_ROLE.pid" "chatsvc --role $CHATSVC_ROLE"; }

chatsvc_role_ready() {
    curl -fsS --max-time 2 "http://$HOST:$(chatsvc_port "$CHATSVC_ROLE")/readyz" >/dev/null 2>&1
}

# Something answers /healthz on the role's port (for `status`: one this script did not start).
chatsvc_role_external() {
    curl -fsS --max-time 2 "http://$HOST:$(chatsvc_port "$CHATSVC_ROLE")/healthz" >/dev/null 2>&1
}

# Fail with a hint unless Cassandra (plain CQL) and Redis answer.
chatsvc_check_backends() {
    if ! cql_ready plain; then
        if [[ $(cassandra_running_mode) == secure ]] && cassandra_pid >/dev/null; then
            die "chatsvc: Cassandra runs in secure mode, chatsvc needs plain CQL: scripts/stack.sh restart cassandra"
        fi
        die "chatsvc: CQL does not answer on $HOST:$CASSANDRA_PORT: scripts/stack.sh start cassandra (or up) first"
    fi
    redis_ready || die "chatsvc: Redis does not answer on $HOST:$REDIS_PORT: scripts/stack.sh start redis (or up) first"
}

# Start the roles that are not running.
chatsvc_start() {
    CHATSVC_JUST_STARTED=" "
    [[ $CHATSVC_MODE == direct || $CHATSVC_MODE == buffered ]] \
        || die "chatsvc: CHATSVC_MODE must be direct or buffered, not '$CHATSVC_MODE'"
    mkdir -p -- "$CHATSVC_DIR"
    chatsvc_check_backends
    chatsvc_build
    local bin role port admin running
    bin=$(chatsvc_binary)
    for role in "${CHATSVC_ROLES[@]}"; do
        CHATSVC_ROLE=$role
        if chatsvc_role_pid >/dev/null; then
            running=$(cat -- "$CHATSVC_DIR/mode" 2>/dev/null || echo '?')
            [[ $running == "$CHATSVC_MODE" ]] || log "chatsvc: $role runs in mode $running, not $CHATSVC_MODE: scripts/stack.sh restart chatsvc"
            [[ $bin -nt $CHATSVC_DIR/$role.pid ]] && log "chatsvc: $role predates the binary: scripts/stack.sh restart chatsvc"
            continue
        fi
        port=$(chatsvc_port "$role")
        port_open "$port" && die "chatsvc: port $HOST:$port ($role) is in use by a process this script did not start"
        admin=()
        [[ $role == worker ]] || admin=(--admin)
        spawn "$CHATSVC_DIR/$role.pid" "$CHATSVC_DIR/$role.log" "$bin" --role "$role" \
            --mode "$CHATSVC_MODE" --listen "$HOST:$port" \
            --cassandra "$HOST:$CASSANDRA_PORT" --keyspace chatsvc \
            --redis "redis://$HOST:$REDIS_PORT" --prefix chatsvc "${admin[@]}"
        CHATSVC_JUST_STARTED+="$role "
    done
    if [[ $CHATSVC_JUST_STARTED == " api gateway worker " ]]; then
        printf '%s\n' "$CHATSVC_MODE" >"$CHATSVC_DIR/mode"
    fi
}

chatsvc_wait() {
    # shellcheck disable=SC2034  # read by wait_ready (bash's locals are dynamically scoped)
    local role note SIMPLE_BOOT_TIMEOUT=$CHATSVC_BOOT_TIMEOUT
    for role in "${CHATSVC_ROLES[@]}"; do
        CHATSVC_ROLE=$role
        wait_ready "chatsvc $role" chatsvc_role_pid chatsvc_role_ready "$CHATSVC_DIR/$role.log" \
            "/readyz did not answer 200 on $HOST:$(chatsvc_port "$role")"
        note="mode $(cat -- "$CHATSVC_DIR/mode" 2>/dev/null || echo '?'), "
        [[ $CHATSVC_JUST_STARTED == *" $role "* ]] && note+=started || note+="already running"
        status_line "chatsvc-$role" up "$READY_PID" "$(chatsvc_port "$role")" "$note"
    done
}

chatsvc_stop() {
    local role
    for role in "${CHATSVC_ROLES[@]}"; do
        stop_pid "chatsvc $role" "$CHATSVC_DIR/$role.pid" "chatsvc --role $role"
    done
    rm -f -- "$CHATSVC_DIR/mode"
}

chatsvc_status() {
    local role rc=0 note
    note="mode $(cat -- "$CHATSVC_DIR/mode" 2>/dev/null || echo '?')"
    for role in "${CHATSVC_ROLES[@]}"; do
        CHATSVC_ROLE=$role
        service_status "chatsvc-$role" "$(chatsvc_port "$role")" chatsvc_role_pid chatsvc_role_ready \
            chatsvc_role_external "$note" "process running, /readyz not 200" \
            "external: not started by this script" || rc=1
    done
    return "$rc"
}
