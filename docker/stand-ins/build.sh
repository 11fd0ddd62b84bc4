#!/usr/bin/env bash
# Build the stand-in images (docs/compose.md, "Stand-in images") in the private engine
# and tag them with the names docker-compose.yml and the Dockerfiles use, so that both
# run unchanged on a machine that cannot pull. Idempotent: an image that exists is kept
# (FILMREC_STAND_INS_REBUILD=1 rebuilds all).
#
#   FILMREC_PRIVATE_ENGINE=1 docker/stand-ins/build.sh     (scripts/compose.sh runs it)
#
# Everything comes from Debian's archive and Maven Central: the base is a debootstrap
# of Debian 12 imported as filmrec-stand-in/debian:bookworm, carrying this machine's
# extra CA certificates (/usr/local/share/ca-certificates) so that pip and apt inside
# builds trust what the machine trusts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${REPO}/docker/stand-ins"
BASE_IMAGE=filmrec-stand-in/debian:bookworm
WORK="${FILMREC_ENGINE_DIR:-${HOME}/.cache/filmrec/private-engine}/stand-ins"
MIRROR="${FILMREC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# stand-in folder, build target ("-": none), the official image it stands in for.
readonly STAND_INS=(
    "python - python:3.11.13-slim-bookworm"
    "temurin-jre - eclipse-temurin:17.0.16_8-jre-jammy"
    "airflow - apache/airflow:3.3.2-python3.11"
    "postgres - postgres:16.10-bookworm"
    "redis - redis:7.4.5-alpine"
    "kafka zookeeper confluentinc/cp-zookeeper:7.9.2"
    "kafka kafka confluentinc/cp-kafka:7.9.2"
    "prometheus - prom/prometheus:v3.5.0"
    "nginx - nginx:1.28.0-alpine"
)

log() { printf '==> [stand-ins] %s\n' "$*" >&2; }
die() {
    printf 'ERROR: [stand-ins] %s\n' "$*" >&2
    exit 1
}

[[ "${FILMREC_PRIVATE_ENGINE:-}" == 1 ]] \
    || die "stand-ins are for the private engine only (scripts/compose.sh builds them there)"

have_image() {
    [[ "${FILMREC_STAND_INS_REBUILD:-0}" != 1 ]] && docker image inspect "$1" > /dev/null 2>&1
}

build_base() {
    have_image "$BASE_IMAGE" && return 0
    local root="${WORK}/bookworm"
    log "debootstrap Debian 12 for ${BASE_IMAGE} (about a minute)"
    rm -rf "$root"
    mkdir -p "$WORK"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" \
        > "${WORK}/debootstrap.log" 2>&1 || die "debootstrap failed: see ${WORK}/debootstrap.log"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "${root}/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates > /dev/null
    fi
    rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/archives/*.deb
    tar -C "$root" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["bash"]' - "$BASE_IMAGE" > /dev/null
    rm -rf "$root"
}

# The Kafka and ZooKeeper jars, fetched (and checksummed) by the dev broker's fetcher.
kafka_jars() {
    local python="${PYTHON:-${REPO}/.venv/bin/python}"
    [[ -x "$python" ]] || python=python3
    (cd "$REPO" && "$python" -m devstack.broker fetch > /dev/null) || die "could not fetch the Kafka jars"
    echo "${REPO}/var/kafka/libs"
}

build_stand_in() {
    local folder="$1" target="$2" official="$3"
    have_image "$official" && return 0
    local shown="docker/stand-ins/${folder}"
    [[ "$target" != - ]] && shown+=" (target ${target})"
    log "${official} <- ${shown}"
    local args=(--label filmrec.stand-in=true --label "filmrec.stands-in-for=${official}" -t "$official")
    [[ "$target" != - ]] && args+=(--target "$target")
    [[ "$folder" == kafka ]] && args+=(--build-context "jars=$(kafka_jars)")
    docker build --quiet "${args[@]}" "${HERE}/${folder}" > /dev/null
}

main() {
    build_base
    local entry
    for entry in "${STAND_INS[@]}"; do
        # shellcheck disable=SC2086  # three words
        build_stand_in $entry
    done
    log "stand-ins ready: $(printf '%s\n' "${STAND_INS[@]}" | awk '{print $3}' | tr '\n' ' ')"
}

main "$@"
