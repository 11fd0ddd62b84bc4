#!/usr/bin/env bash
# `docker compose ARGS...` against the engine in use (docs/compose.md):
# - the machine's Docker, as it is, when it runs and is recent enough (Docker 24+,
#   Compose v2.20+);
# - otherwise the private engine (scripts/private-engine.sh: a current dockerd in a
#   Debian 13 root, never the system's), with the stand-in images (docker/stand-ins)
#   tagged under the names docker-compose.yml uses, and without Grafana, which has no
#   stand-in (docker/stand-ins/compose.stand-ins.yml).
#
#   scripts/compose.sh ps                 any docker compose command
#   scripts/compose.sh --run ./init.sh    run a program with `docker` meaning that engine
#   scripts/compose.sh --engine           print which engine is in use (system|private)
#   scripts/compose.sh --stop-engine      stop the private engine, if it runs
#
# FILMREC_ENGINE=system|private forces the choice.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
readonly MIN_DOCKER=24.0.0 MIN_COMPOSE=2.20.0

version_at_least() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]; }

system_engine_usable() {
    command -v docker > /dev/null 2>&1 || return 1
    local server compose
    server="$(docker version --format '{{.Server.Version}}' 2> /dev/null)" || return 1
    compose="$(docker compose version --short 2> /dev/null)" || return 1
    version_at_least "${server%%[-+]*}" "$MIN_DOCKER" && version_at_least "${compose#v}" "$MIN_COMPOSE"
}

choose_engine() {
    case "${FILMREC_ENGINE:-}" in
        system | private) echo "$FILMREC_ENGINE" ;;
        "") if system_engine_usable; then echo system; else echo private; fi ;;
        *)
            echo "FILMREC_ENGINE must be system or private, not ${FILMREC_ENGINE}" >&2
            exit 2
            ;;
    esac
}

# Start the private engine, build the stand-ins, and put its `docker` first on PATH.
use_private_engine() {
    scripts/private-engine.sh up
    PATH="$(scripts/private-engine.sh bin):${PATH}"
    export PATH FILMREC_PRIVATE_ENGINE=1
    docker/stand-ins/build.sh
    # Grafana has no stand-in: the run leaves it out, and test-connections.py says why.
    export COMPOSE_FILE="docker-compose.yml:docker/stand-ins/compose.stand-ins.yml"
    export FILMREC_NOT_STARTED="grafana=no Grafana image on this machine (no registry and no Debian package, see docs/compose.md)"
}

case "${1:-}" in
    --engine)
        choose_engine
        exit 0
        ;;
    --stop-engine)
        [[ -x scripts/private-engine.sh ]] && scripts/private-engine.sh down
        exit 0
        ;;
esac

engine="$(choose_engine)"
[[ "$engine" == private ]] && use_private_engine
if [[ "${1:-}" == --run ]]; then
    shift
    exec "$@"
fi
exec docker compose "$@"
