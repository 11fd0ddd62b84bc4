#!/usr/bin/env bash
# The whole platform natively, on the Compose ports (no Docker):
#   scripts/stack.sh up|down|status|env|bootstrap [--users N]|submit JOB [ARGS...]
# See devstack/stack.py; state, pids and logs under var/stack/.
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
exec "${PYTHON:-.venv/bin/python}" -m devstack.stack "$@"
