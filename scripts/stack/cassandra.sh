# shellcheck shell=bash
#
# Cassandra of scripts/stack.sh (sourced by it): Apache Cassandra from Maven Central's jars, one
# node on 127.0.0.1:9042, plain or secure mode. The CQL probes are in cassandra-cql.sh.

CASSANDRA_PORT=9042
CASSANDRA_STORAGE_PORT=7011              # must match scripts/stack/cassandra.yaml
CASSANDRA_JMX_PORT=7199                  # must match scripts/stack/cassandra-jvm.options
CASSANDRA_HEAP=${CASSANDRA_HEAP:-1G}
CASSANDRA_BOOT_TIMEOUT=${CASSANDRA_BOOT_TIMEOUT:-180}
CASSANDRA_MAIN=org.apache.cassandra.service.CassandraDaemon
CASS_DIR="$STACK_DIR/cassandra"

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

# The Debian packages Cassandra needs whose commands are missing (Java: ensure_java).
cassandra_packages() {
    command -v mvn >/dev/null || echo maven
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
            status_line cassandra up "$pid" "$CASSANDRA_PORT" \
                "$note; started, CQL over TLS after $(elapsed "$started" "$cql_at")s, login as cassandra after ${boot}s"
        else
            status_line cassandra up "$pid" "$CASSANDRA_PORT" "started, CQL answered after ${boot}s"
        fi
    else
        status_line cassandra up "$pid" "$CASSANDRA_PORT" "$note; already running"
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

# CQL answers in the mode our running node was started in.
cassandra_ready() { cql_ready "$(cassandra_running_mode)"; }

cassandra_status() {
    local note
    note=$(cassandra_mode_note "$(cassandra_running_mode)")
    service_status cassandra "$CASSANDRA_PORT" cassandra_pid cassandra_ready cql_ready "$note" \
        "$note; process running, CQL not answering yet" "external: not started by this script"
}
