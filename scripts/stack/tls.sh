# shellcheck shell=bash
#
# Test TLS material of scripts/stack.sh (sourced by it): the test CA, server and client
# certificates and the PKCS#12 stores in .stack/tls, made when a secure service (redis-tls,
# cassandra secure) starts and they are missing or expiring. See the header of scripts/stack.sh.

TLS_DIR="$STACK_DIR/tls"                 # test CA, certificates, keys, stores
TLS_CNF="$SUPPORT_DIR/tls.cnf"
TLS_STORE_PASSWORD=chatload-test         # test-only; also in .stack/tls/store-password
TLS_DAYS=825

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
    # shellcheck disable=SC2034  # read by cassandra_start and redis_tls_start
    TLS_REGENERATED=1
    log "tls: test CA, server/client certificates and PKCS#12 stores written to ${TLS_DIR#"$REPO_ROOT"/} ($(elapsed "$t0" "$(now)")s)"
}
