#!/usr/bin/env bash
# The official image's dispatch, reduced to what the Compose file uses: a command that
# is a program (bash, python, airflow, ...) runs as given; anything else is an airflow
# subcommand (`command: scheduler` runs `airflow scheduler`).
set -euo pipefail
if [[ $# -eq 0 ]]; then
    exec airflow version
fi
if [[ "$1" == bash || "$1" == sh || "$1" == python || "$1" == python3 || "$1" == airflow ]] \
    || [[ "$1" == /* ]]; then
    exec "$@"
fi
exec airflow "$@"
