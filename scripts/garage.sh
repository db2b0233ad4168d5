#!/usr/bin/env bash
# A throwaway Garage (S3-compatible object store) for the test suite: `start` runs one node
# (or GARAGE_NODES=3 nodes with replication factor 3, for scale-out tests) on free loopback
# ports with its data in a temporary directory, assigns and applies the cluster layout, and
# creates the bucket `berth-test` with a key that may read, write and own it. The variables
# the tests read are written to $STATE/env (also printed):
#
#   BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   BERTH_TEST_S3_BUCKET=berth-test
#   BERTH_TEST_S3_ACCESS_KEY=GK...
#   BERTH_TEST_S3_SECRET_KEY=...
#   BERTH_TEST_S3_REGION=garage
#
#   bash scripts/garage.sh start     # then: set -a; . /tmp/berth-garage/env; set +a
#   bash scripts/garage.sh stop
#   bash scripts/garage.sh install   # only builds Garage when it is missing
#
# Garage is installed with `cargo install garage` when it is neither on PATH nor in
# ~/.cargo/bin (about ten minutes on two cores, with a lean feature set and build profile).
# STATE (default /tmp/berth-garage) holds each node's config, data, log and pid.
set -euo pipefail

STATE=${BERTH_GARAGE_STATE:-/tmp/berth-garage}
NODES=${GARAGE_NODES:-1}
BUCKET=${BERTH_GARAGE_BUCKET:-berth-test}
REGION=garage
GARAGE_VERSION=2.5.0

case "$NODES" in
    1 | 3) ;;
    *)
        echo "garage.sh: GARAGE_NODES must be 1 or 3" >&2
        exit 2
        ;;
esac

find_garage() {
    if command -v garage >/dev/null 2>&1; then
        command -v garage
    elif [ -x "$HOME/.cargo/bin/garage" ]; then
        echo "$HOME/.cargo/bin/garage"
    fi
}

install_garage() {
    echo "garage.sh: installing garage $GARAGE_VERSION with cargo (takes several minutes)" >&2
    # Without LTO, with little optimisation and no debug info, the build fits two cores in
    # about ten minutes; a test server needs no more.
    CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
        CARGO_PROFILE_RELEASE_DEBUG=0 \
        CARGO_PROFILE_RELEASE_STRIP=true \
        cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features \
        --features bundled-libs,lmdb >&2
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

random_hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

# Runs the garage CLI against node $1.
cli() {
    local node=$1
    shift
    "$GARAGE" -c "$STATE/node$node/garage.toml" "$@"
}

# Waits (bounded) until `garage status` answers on node $1.
wait_for_node() {
    local node=$1
    for _ in $(seq 1 120); do
        if cli "$node" status >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$(cat "$STATE/node$node/pid")" 2>/dev/null; then
            echo "garage.sh: node $node exited; its log:" >&2
            tail -n 30 "$STATE/node$node/garage.log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "garage.sh: node $node did not answer within 60 s; its log:" >&2
    tail -n 30 "$STATE/node$node/garage.log" >&2
    return 1
}

write_config() {
    local node=$1 rpc_port=$2 s3_port=$3 admin_port=$4 secret=$5 dir="$STATE/node$1"
    mkdir -p "$dir/meta" "$dir/data"
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = $NODES
# Disposable test data: no fsync, so the suite is not bound by the disk.
metadata_fsync = false
data_fsync = false

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "$REGION"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(random_hex 24)"
EOF
    chmod 600 "$dir/garage.toml"
}

start() {
    GARAGE=$(find_garage)
    if [ -z "$GARAGE" ]; then
        install_garage
        GARAGE=$(find_garage)
    fi
    if [ -f "$STATE/env" ]; then
        echo "garage.sh: already running ($STATE); stop it first" >&2
        exit 1
    fi
    mkdir -p "$STATE"
    chmod 700 "$STATE"
    local secret first_s3_port="" node
    secret=$(random_hex 32)
    for node in $(seq 1 "$NODES"); do
        local rpc_port s3_port admin_port
        rpc_port=$(free_port)
        s3_port=$(free_port)
        admin_port=$(free_port)
        [ -n "$first_s3_port" ] || first_s3_port=$s3_port
        echo "$rpc_port" >"$STATE/node$node.rpc_port"
        echo "$s3_port" >"$STATE/node$node.s3_port"
        write_config "$node" "$rpc_port" "$s3_port" "$admin_port" "$secret"
        setsid "$GARAGE" -c "$STATE/node$node/garage.toml" server \
            >"$STATE/node$node/garage.log" 2>&1 </dev/null &
        echo $! >"$STATE/node$node/pid"
    done
    for node in $(seq 1 "$NODES"); do
        wait_for_node "$node"
    done
    # Every other node joins the first.
    for node in $(seq 2 "$NODES"); do
        local id
        id=$(cli "$node" node id -q)
        cli 1 node connect "$id" >/dev/null
    done
    for node in $(seq 1 "$NODES"); do
        local id
        id=$(cli "$node" node id -q)
        cli 1 layout assign -z "zone$node" -c 1G "${id%%@*}" >/dev/null
    done
    cli 1 layout apply --version 1 >/dev/null
    # The layout takes a moment to reach every node; creating the bucket succeeds once it has.
    local created=""
    for _ in $(seq 1 60); do
        if cli 1 bucket create "$BUCKET" >/dev/null 2>&1; then
            created=yes
            break
        fi
        sleep 0.5
    done
    if [ -z "$created" ]; then
        echo "garage.sh: cannot create bucket $BUCKET:" >&2
        cli 1 bucket create "$BUCKET" >&2 || true
        exit 1
    fi
    local key_id key_secret
    key_id="GK$(random_hex 12)"
    key_secret=$(random_hex 32)
    cli 1 key import --yes -n "$BUCKET" "$key_id" "$key_secret" >/dev/null
    cli 1 bucket allow --read --write --owner "$BUCKET" --key "$key_id" >/dev/null
    {
        echo "BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$first_s3_port"
        echo "BERTH_TEST_S3_BUCKET=$BUCKET"
        echo "BERTH_TEST_S3_ACCESS_KEY=$key_id"
        echo "BERTH_TEST_S3_SECRET_KEY=$key_secret"
        echo "BERTH_TEST_S3_REGION=$REGION"
    } >"$STATE/env.tmp"
    chmod 600 "$STATE/env.tmp"
    mv "$STATE/env.tmp" "$STATE/env"
    cat "$STATE/env"
}

stop() {
    local pidfile pid
    for pidfile in "$STATE"/node*/pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$STATE"
}

case "${1:-}" in
    install) [ -n "$(find_garage)" ] || install_garage ;;
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: [GARAGE_NODES=1|3] $0 install|start|stop" >&2
        exit 2
        ;;
esac
