#!/usr/bin/env bash
# Creates one database and one owner role per consumer (the app, MLflow, Airflow).
#
# The postgres image runs this once, at first start with an empty data directory.
# It is idempotent, so it can also be re-run to apply changed passwords:
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-filmrec-databases.sh
# Names and passwords come from the environment set in docker-compose.yml.
set -euo pipefail

create_database() {
    local db="$1" user="$2" password="$3"
    if [[ -z "$db" || -z "$user" || -z "$password" ]]; then
        echo "create_database: database, user and password must all be set" >&2
        exit 1
    fi
    # psql variables (:'name') quote the values, so passwords need no escaping;
    # \gexec runs the generated statement only when the WHERE clause holds.
    psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        -v db="$db" -v user="$user" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'password')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')
\gexec
SQL
    echo "database ${db} ready (owner ${user})"
}

create_database "${APP_DB_NAME:-filmrec}" "${APP_DB_USER:-filmrec}" "${APP_DB_PASSWORD:?}"
create_database "${MLFLOW_DB_NAME:-mlflow}" "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_PASSWORD:?}"
create_database "${AIRFLOW_DB_NAME:-airflow}" "${AIRFLOW_DB_USER:-airflow}" "${AIRFLOW_DB_PASSWORD:?}"
