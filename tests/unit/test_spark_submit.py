"""The spark-submit specification: which Python the driver and the executors run, and
where the jars are."""

from __future__ import annotations

import sys
from pathlib import Path

from filmrec.orchestration.spark_submit import SparkSubmitSpec

SPEC = SparkSubmitSpec(job="train", application=Path("train.py"), jars=(), driver_memory="1g")


def test_executors_run_the_submitting_python_by_default() -> None:
    assert SPEC.python_env() == {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


def test_executors_run_pyspark_python_where_the_workers_have_their_own() -> None:
    # Compose: the driver is in the Airflow image, the executors in the Spark image.
    env = SPEC.python_env("python3")
    assert env == {"PYSPARK_PYTHON": "python3", "PYSPARK_DRIVER_PYTHON": sys.executable}


def test_the_jars_directory_is_not_read_from_the_name_spark_scripts_rewrite(monkeypatch) -> None:
    # spark-class sets SPARK_JARS_DIR=$SPARK_HOME/jars for its own use, in the driver's environment.
    from filmrec.config import Settings

    monkeypatch.setenv("SPARK_JARS_DIR", "/opt/pyspark/jars")
    monkeypatch.setenv("FILMREC_JARS_DIR", "/opt/spark-jars")
    assert Settings(_env_file=None).jars_dir == Path("/opt/spark-jars")
