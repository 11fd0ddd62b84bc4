#!/usr/bin/env bash
# The official redis entrypoint's contract, for the stand-in (see the Dockerfile).
set -euo pipefail
if [[ "${1:-}" == -* ]]; then
    set -- redis-server "$@"
fi
if [[ "${1:-}" == redis-server ]]; then
    # Debian's server binds 127.0.0.1 and runs protected by default; the official
    # image listens on every address of the container.
    shift
    set -- redis-server --bind 0.0.0.0 --protected-mode no "$@"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown -R redis:redis /data
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
