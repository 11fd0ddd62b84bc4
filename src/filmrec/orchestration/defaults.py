"""Task defaults shared by every DAG: retries with exponential backoff and timeouts.

Plain values, no Airflow import, so the DAG files stay cheap to parse and the policy
is unit-tested in one place.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

OWNER = "filmrec"
# Multiplier between retries: 1 min, 2 min, 4 min ... capped below. Transient
# failures here (a broker restart, MLflow busy, a JVM that lost a race for memory)
# clear in minutes; a fixed short delay would just fail again.
BACKOFF_MULTIPLIER = 2.0
RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(minutes=15)

# Execution timeouts, generous for a 2-core machine and small enough that a hung JVM
# does not hold the only Spark slot for a whole day.
QUICK_TASK_TIMEOUT = timedelta(minutes=5)
SPARK_TASK_TIMEOUT = timedelta(minutes=30)
TRAINING_TIMEOUT = timedelta(hours=2)


def default_args(*, retries: int = 2, execution_timeout: timedelta = QUICK_TASK_TIMEOUT) -> dict[str, Any]:
    """`default_args` for a DAG; tasks that run Spark override `execution_timeout`."""
    return {
        "owner": OWNER,
        "depends_on_past": False,
        "retries": retries,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": BACKOFF_MULTIPLIER,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": execution_timeout,
    }
