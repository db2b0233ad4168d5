#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite: `start` initialises a cluster in a temporary
# directory, runs it on a free loopback port (socket in the same directory), creates the role
# and database `berth`, and writes the connection URI to $STATE/uri (also printed);
# `stop` shuts it down and removes the directory. Run as root, the server runs as the
# `postgres` user (PostgreSQL refuses to run as root).
#
#   bash scripts/postgres.sh start    # prints postgresql://berth:...@127.0.0.1:PORT/berth
#   bash scripts/postgres.sh stop
#
# STATE (default /tmp/berth-postgres) holds the cluster, its log and the uri file.
set -euo pipefail

STATE=${BERTH_PG_STATE:-/tmp/berth-postgres}
PGBIN=${PGBIN:-}
if [ -z "$PGBIN" ]; then
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$OWNER" -- "$@"
    else
        "$@"
    fi
}

start() {
    if [ ! -x "$PGBIN/initdb" ]; then
        echo "postgres.sh: installing postgresql" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    if [ -f "$STATE/uri" ]; then
        echo "postgres.sh: already running ($STATE); stop it first" >&2
        exit 1
    fi
    OWNER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        OWNER=postgres
        id "$OWNER" >/dev/null 2>&1 || useradd --system --no-create-home "$OWNER"
    fi
    mkdir -p "$STATE"
    chown "$OWNER" "$STATE"
    chmod 700 "$STATE"
    local port password
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    echo "$password" >"$STATE/pwfile"
    chown "$OWNER" "$STATE/pwfile"
    as_owner "$PGBIN/initdb" -D "$STATE/data" -U postgres --auth=scram-sha-256 \
        --pwfile="$STATE/pwfile" --encoding=UTF8 --locale=C.UTF-8 >"$STATE/initdb.log"
    rm -f "$STATE/pwfile"
    # Fast and disposable: no fsync, no synchronous commit; many test databases at once.
    as_owner "$PGBIN/pg_ctl" -D "$STATE/data" -l "$STATE/server.log" -w -t 60 start \
        -o "-p $port -k $STATE -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" >/dev/null
    echo "$port" >"$STATE/port"
    PGPASSWORD=$password "$PGBIN/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE berth LOGIN CREATEDB PASSWORD '$password'" \
        -c "CREATE DATABASE berth OWNER berth"
    echo "postgresql://berth:$password@127.0.0.1:$port/berth" >"$STATE/uri"
    chmod 600 "$STATE/uri"
    cat "$STATE/uri"
}

stop() {
    if [ -d "$STATE/data" ]; then
        OWNER=$(stat -c %U "$STATE/data")
        as_owner "$PGBIN/pg_ctl" -D "$STATE/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
