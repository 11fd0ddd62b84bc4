#!/usr/bin/env bash
# The official postgres entrypoint's contract, for the stand-in (see the Dockerfile).
set -euo pipefail

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [[ "$(id -u)" -eq 0 ]]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    user="${POSTGRES_USER:-postgres}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb --username="$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" > /dev/null
    rm -f "$pwfile"
    printf "host all all all scram-sha-256\n" >> "$PGDATA/pg_hba.conf"
    # Init scripts run against a server on the socket only, as in the official image.
    as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start > /dev/null
    export PGUSER="$user" PGHOST=/var/run/postgresql
    if [[ -n "${POSTGRES_DB:-}" && "${POSTGRES_DB}" != postgres ]]; then
        as_postgres psql -v ON_ERROR_STOP=1 --dbname postgres -c "CREATE DATABASE \"${POSTGRES_DB}\"" > /dev/null
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) echo "running $script"; as_postgres bash "$script" ;;
            *.sql) echo "running $script"; as_postgres psql -v ON_ERROR_STOP=1 --dbname "${POSTGRES_DB:-postgres}" -f "$script" ;;
            *) ;;
        esac
    done
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    unset PGUSER PGHOST
    echo "PostgreSQL init process complete; ready for start up."
fi

if [[ "${1:-}" == postgres ]]; then
    shift
    exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
