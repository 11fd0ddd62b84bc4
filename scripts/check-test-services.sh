#!/usr/bin/env bash
# Before pytest (make test): one line naming what the integration tests will not find
# and how to start it. Never fails: on a developer machine those tests skip with the
# same reason; under CI=true they fail (tests/conftest.py, require()).
set -uo pipefail
missing=()
[ -n "${FILMREC_TEST_DATABASE_URL:-}" ] || missing+=("PostgreSQL")
[ -n "${FILMREC_TEST_REDIS_URL:-}" ] || missing+=("Redis")
[ -n "${FILMREC_TEST_MLFLOW_URI:-}" ] || missing+=("MLflow server")
[ -n "${FILMREC_TEST_PROMETHEUS_URL:-}" ] || missing+=("Prometheus")
how="scripts/services.sh up && set -a && . var/services/test-services.env && set +a"
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  missing+=("chromium")
  how="$how; sudo apt-get install -y chromium"
fi
if [ "${#missing[@]}" -gt 0 ]; then
  list=$(printf '%s, ' "${missing[@]}")
  echo "make test: ${list%, } not found, their integration tests will skip; to run them: $how (packages: docs/development.md)"
fi
exit 0
