#!/usr/bin/env bash
# Serve /etc/nginx/conf.d without the upstream `resolve` parameter (see the Dockerfile).
set -euo pipefail
mkdir -p /run/filmrec-nginx/conf.d
for conf in /etc/nginx/conf.d/*.conf; do
    [[ -e "$conf" ]] || continue
    sed -E 's/[[:space:]]resolve([[:space:];])/\1/' "$conf" > "/run/filmrec-nginx/conf.d/$(basename "$conf")"
done
exec "$@"
