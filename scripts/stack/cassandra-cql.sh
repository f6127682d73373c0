# shellcheck shell=bash
#
# CQL probes of the local Cassandra (sourced by scripts/stack.sh): does the node answer CQL, plain
# or over TLS, and does a login as the default superuser succeed (secure mode).

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
