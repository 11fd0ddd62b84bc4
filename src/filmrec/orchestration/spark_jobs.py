"""Helpers for the spark-submit entry points in spark/jobs/.

Those scripts run in a driver that spark-submit started, with the master chosen by
Airflow's `spark_default` connection. They hand results back to Airflow as a small
JSON file at a path given on the command line, so XCom carries a path, not data.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filmrec.config import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from filmrec.training.params import SearchSpace

log = logging.getLogger(__name__)


def submitted_master() -> str | None:
    """The master spark-submit was given (--master), or None outside spark-submit.

    `build_spark` sets the master from SPARK_MASTER_URL on the session builder, and
    builder options override spark-submit's; reading the JVM's system property first
    lets the Airflow connection decide where the job runs.
    """
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    assert jvm is not None
    master = jvm.java.lang.System.getProperty("spark.master")
    return str(master) if master else None


def submitted_spark(app_name: str, settings: Settings | None = None) -> SparkSession:
    """The job's Spark session (Delta, checkpoints) on the master spark-submit chose."""
    from filmrec.lakehouse.spark_session import build_spark

    settings = settings or get_settings()
    master = submitted_master()
    if master:
        settings = settings.model_copy(update={"spark_master": master})
    log.info("spark master: %s", settings.spark_master)
    return build_spark(app_name=app_name, settings=settings)


def parse_search(
    spec: str | dict[str, Any], *, trials: int | None = None, seconds: float | None = None
) -> SearchSpace:
    """A search by name (`default`, `quick`) or as a JSON SearchSpace, with an optional
    budget (0 or None: the search's own).

    `airflow dags trigger als_training -c '{"trials": 30}'` re-trains with a longer
    search; `-c '{"search": {"families": ["ease"]}}'` searches EASE alone.
    """
    from pydantic import ValidationError

    from filmrec.training.params import SEARCHES, SearchSpace

    if isinstance(spec, str):
        text = spec.strip()
        if text in SEARCHES:
            return SEARCHES[text].with_budget(trials=trials or None, seconds=seconds or None)
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"search must be one of {sorted(SEARCHES)} or a JSON object, not {text!r}"
            ) from error
        if isinstance(spec, str):
            return parse_search(spec, trials=trials, seconds=seconds)
    if not isinstance(spec, dict):
        raise ValueError(f"search must be one of {sorted(SEARCHES)} or a JSON object, not {spec!r}")
    try:
        return SearchSpace.model_validate(spec).with_budget(trials=trials or None, seconds=seconds or None)
    except ValidationError as error:
        raise ValueError(f"not a valid search: {error}") from error


def write_result(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write the job's JSON result atomically: a retry never reads half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    partial.replace(target)
    log.info("result written to %s", target)
    return target


def job_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser every job starts from: its docstring and --result-path."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--result-path", required=True, help="where to write the JSON result")
    return parser


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("py4j", "mlflow", "alembic", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
