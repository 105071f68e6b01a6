#!/usr/bin/env bash
# Installs (Debian package) and starts a throwaway PostgreSQL server on 127.0.0.1 for the
# tests marked `postgres`, then prints the URL the tests read from STAGETUNE_TEST_POSTGRES_URL.
# Usage: postgres_env=$(bash .ci/postgres.sh) && eval "$postgres_env"
# (not `eval "$(...)"`: eval of a failed start's empty output succeeds)
set -euo pipefail
PORT=${STAGETUNE_PG_PORT:-54329}
DATA=${STAGETUNE_PG_DATA:-/tmp/stagetune-pg}
PASSWORD=stagetune-ci

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")

if [[ -f $DATA/postmaster.pid ]]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
fi
rm -rf "$DATA"
mkdir -p "$DATA"
chown postgres:postgres "$DATA"
printf '%s\n' "$PASSWORD" >"$DATA.pw"
chown postgres:postgres "$DATA.pw"
runuser -u postgres -- "$BIN/initdb" -D "$DATA" -U postgres --auth=scram-sha-256 \
    --pwfile="$DATA.pw" >&2
rm -f "$DATA.pw"
runuser -u postgres -- "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2
echo "export STAGETUNE_TEST_POSTGRES_URL=postgresql://postgres:$PASSWORD@127.0.0.1:$PORT/postgres"
