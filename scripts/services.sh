#!/usr/bin/env bash
# Start/stop PostgreSQL, Redis, the MLflow server and Prometheus natively (no Docker).
#   scripts/services.sh up|down|status|env
# See devstack/services.py; state under var/services/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m devstack.services "$@"
