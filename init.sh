#!/usr/bin/env bash
# Bring up the filmrec platform with Docker Compose, from scratch or again.
#
#   ./init.sh               check prerequisites, create .env, build, start, verify
#   ./init.sh --no-start    only prepare .env and the directories
#
# Idempotent: an existing .env is never overwritten (only its empty secrets are
# filled in), existing directories are kept, and `docker compose up -d` only
# (re)creates what changed. Windows: init.ps1 does the same.
set -euo pipefail

readonly MIN_COMPOSE_VERSION="2.20.0"
readonly MIN_MEMORY_GIB=8
readonly WAIT_SECONDS=300
# Secrets in .env that must not stay empty; AIRFLOW_FERNET_KEY has its own format.
readonly SECRET_KEYS=(
    POSTGRES_PASSWORD APP_DB_PASSWORD MLFLOW_DB_PASSWORD AIRFLOW_DB_PASSWORD
    AIRFLOW_ADMIN_PASSWORD AIRFLOW_SECRET_KEY AIRFLOW_JWT_SECRET AIRFLOW_FERNET_KEY
    GRAFANA_ADMIN_PASSWORD FILMREC_API_KEYS
)

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT_DIR
cd "$ROOT_DIR"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# True when version $1 >= version $2 (dotted numbers).
version_at_least() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

check_docker() {
    command -v docker > /dev/null 2>&1 || die "docker is not installed: https://docs.docker.com/engine/install/"
    docker info > /dev/null 2>&1 || die "the Docker daemon is not reachable (is it running, and may $(id -un) use it?)"
    local docker_version compose_version
    docker_version="$(docker version --format '{{.Server.Version}}' 2> /dev/null || echo unknown)"
    compose_version="$(docker compose version --short 2> /dev/null || true)"
    [[ -n "$compose_version" ]] || die "Docker Compose v2 is missing ('docker compose'); install the compose plugin"
    compose_version="${compose_version#v}"
    version_at_least "$compose_version" "$MIN_COMPOSE_VERSION" \
        || die "Docker Compose $compose_version is too old: $MIN_COMPOSE_VERSION or newer is needed"
    log "Docker $docker_version, Compose $compose_version"
}

check_memory() {
    local kib=""
    if [[ -r /proc/meminfo ]]; then
        kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
    elif command -v sysctl > /dev/null 2>&1; then # macOS: total memory, in bytes
        kib="$(($(sysctl -n hw.memsize 2> /dev/null || echo 0) / 1024))"
    fi
    if [[ -z "$kib" || "$kib" -eq 0 ]]; then
        warn "could not determine the free memory; the platform needs about ${MIN_MEMORY_GIB} GiB"
        return
    fi
    local gib=$((kib / 1024 / 1024))
    if ((gib < MIN_MEMORY_GIB)); then
        warn "only ${gib} GiB of memory available; the platform needs about ${MIN_MEMORY_GIB} GiB" \
            "(lower SPARK_WORKER_MEMORY in .env, or give Docker more memory)"
    else
        log "${gib} GiB of memory available"
    fi
}

random_hex() {
    if command -v openssl > /dev/null 2>&1; then
        openssl rand -hex 24
    else
        python3 -c 'import secrets; print(secrets.token_hex(24))'
    fi
}

# A Fernet key is 32 random bytes in URL-safe base64.
random_fernet_key() {
    if command -v openssl > /dev/null 2>&1; then
        openssl rand -base64 32 | tr '+/' '-_'
    else
        python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
    fi
}

# Hex SHA-256 of stdin (what FILMREC_API_KEYS stores instead of the key).
sha256_hex() {
    if command -v sha256sum > /dev/null 2>&1; then
        sha256sum | cut -d' ' -f1
    elif command -v shasum > /dev/null 2>&1; then
        shasum -a 256 | cut -d' ' -f1
    else
        python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'
    fi
}

# An API key named admin: its hash goes to .env, the key itself to var/api-key (mode
# 600, git-ignored), for the client that sends it in X-API-Key.
generate_api_key() {
    local key
    key="$(random_hex)"
    mkdir -p var
    (umask 077 && printf '%s\n' "$key" > var/api-key)
    set_env_value FILMREC_API_KEYS "admin:$(printf '%s' "$key" | sha256_hex)"
}

# Print the value of KEY in .env (empty when missing).
env_value() {
    sed -n "s/^$1=//p" .env | tail -n 1
}

# Set KEY=VALUE in .env, replacing an existing line or appending one.
set_env_value() {
    local key="$1" value="$2" tmp
    tmp="$(mktemp "${ROOT_DIR}/.env.XXXXXX")"
    if grep -q "^${key}=" .env; then
        # awk, not sed: generated values may contain characters special to sed.
        awk -v key="$key" -v value="$value" 'index($0, key "=") == 1 { print key "=" value; next } { print }' \
            .env > "$tmp"
    else
        cat .env > "$tmp"
        printf '%s=%s\n' "$key" "$value" >> "$tmp"
    fi
    chmod 600 "$tmp"
    mv "$tmp" .env
}

prepare_env() {
    local created=0
    if [[ -f .env ]]; then
        log ".env exists: keeping it (only empty secrets are filled in)"
    else
        [[ -f .env.example ]] || die ".env.example is missing"
        cp .env.example .env
        chmod 600 .env
        created=1
        log "created .env from .env.example"
    fi
    local key
    for key in "${SECRET_KEYS[@]}"; do
        if [[ -z "$(env_value "$key")" ]]; then
            if [[ "$key" == AIRFLOW_FERNET_KEY ]]; then
                set_env_value "$key" "$(random_fernet_key)"
            elif [[ "$key" == FILMREC_API_KEYS ]]; then
                generate_api_key
                log "the API key for X-API-Key (writes) is in var/api-key"
            else
                set_env_value "$key" "$(random_hex)"
            fi
            log "generated $key"
        fi
    done
    # Services this run leaves out on purpose (scripts/compose.sh sets it where an image
    # cannot be had), kept in .env so that test-connections.py reports them as such.
    set_env_value FILMREC_NOT_STARTED "${FILMREC_NOT_STARTED:-}"
    # The containers that share ./lakehouse with you run as your uid; root keeps the
    # images' default (50000), since the images never run as uid 0.
    if ((created)) || [[ -z "$(env_value AIRFLOW_UID)" ]]; then
        local uid
        uid="$(id -u)"
        if [[ "$uid" -eq 0 ]]; then
            uid=50000
        fi
        set_env_value AIRFLOW_UID "$uid"
    fi
}

prepare_directories() {
    local uid dir
    uid="$(env_value AIRFLOW_UID)"
    for dir in lakehouse airflow/logs airflow/dags airflow/plugins airflow/config; do
        mkdir -p "$dir"
    done
    # Owned by AIRFLOW_UID, group 0, group-writable: the containers run as ${AIRFLOW_UID}:0.
    for dir in lakehouse airflow/logs; do
        if [[ "$(id -u)" -eq 0 ]]; then
            chown -R "${uid}:0" "$dir"
            chmod -R g+rwX "$dir"
        elif [[ "$(stat -c %u "$dir" 2> /dev/null || stat -f %u "$dir")" == "$uid" ]]; then
            chmod -R g+rwX "$dir"
        else
            warn "$dir is not owned by uid $uid; run: sudo chown -R ${uid}:0 $dir"
        fi
    done
    log "directories ready (owner uid ${uid})"
}

wait_for_healthy() {
    local deadline=$((SECONDS + WAIT_SECONDS)) pending
    log "waiting up to ${WAIT_SECONDS}s for the services to be healthy"
    while true; do
        # Services still starting or unhealthy; one-shot jobs that exited are done.
        pending="$(docker compose ps --format '{{.Service}} {{.State}} {{.Health}}' \
            | awk '$2 == "running" && $3 != "healthy" { print $1 }' | tr '\n' ' ')"
        if [[ -z "${pending// /}" ]]; then
            log "all running services are healthy"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            warn "still not healthy after ${WAIT_SECONDS}s: ${pending}(see: docker compose logs <service>)"
            return 1
        fi
        sleep 5
    done
}

# Print the value of KEY ($1) in .env, or the default ($2) when it is empty.
env_or_default() {
    local value
    value="$(env_value "$1")"
    printf '%s' "${value:-$2}"
}

print_urls() {
    local host
    host="$(env_or_default BIND_ADDRESS localhost)"
    if [[ "$host" == 0.0.0.0 ]]; then
        host=localhost
    fi
    cat << EOF

filmrec is up:
  API (docs)        http://${host}:$(env_or_default API_PORT 8000)/docs
  Airflow           http://${host}:$(env_or_default AIRFLOW_PORT 8080)   (user $(env_or_default AIRFLOW_ADMIN_USER admin), password AIRFLOW_ADMIN_PASSWORD in .env)
  MLflow            http://${host}:$(env_or_default MLFLOW_PORT 5000)
  Spark master      http://${host}:$(env_or_default SPARK_MASTER_WEBUI_PORT 8081)
  Spark worker      http://${host}:$(env_or_default SPARK_WORKER_WEBUI_PORT 8082)
  Prometheus        http://${host}:$(env_or_default PROMETHEUS_PORT 9090)
  Grafana           http://${host}:$(env_or_default GRAFANA_PORT 3000)   (user $(env_or_default GRAFANA_ADMIN_USER admin), password GRAFANA_ADMIN_PASSWORD in .env)
  Kafka UI          http://${host}:$(env_or_default KAFKA_UI_PORT 8090)   (optional: docker compose --profile ui up -d)
EOF
}

main() {
    local start=1
    case "${1:-}" in
        "") ;;
        --no-start) start=0 ;;
        -h | --help)
            sed -n '2,9p' "$0"
            return 0
            ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac

    if ((start)); then
        check_docker
        check_memory
    fi
    prepare_env
    prepare_directories
    if ((start == 0)); then
        log "prepared; start with: docker compose up -d --build"
        return 0
    fi
    log "building images"
    docker compose build
    log "starting the platform"
    docker compose up -d
    local healthy=0
    wait_for_healthy || healthy=1
    # The checks need only the standard library. A fresh platform has no model yet:
    # they report that as its own state (make compose-bootstrap gives it one).
    log "checking every service at the protocol level"
    python3 test-connections.py --wait "$WAIT_SECONDS" || healthy=1
    print_urls
    return "$healthy"
}

main "$@"
