"""The one custom operator: spark-submit of a filmrec job in spark/jobs/.

SparkSubmitOperator with the platform's conventions filled in at run time, not at
parse time (nothing here touches the network or the JVM while a DAG file loads):

* the job script is resolved in spark/jobs (repository or image layout);
* the Delta and Kafka jars go on --jars. `build_spark` puts them on spark.jars,
  but in a driver that spark-submit already started, spark.jars added by the
  session builder never reach the driver's class path (delta.DefaultSource is not
  found), so they must be on the command line;
* `spark-submit` is found even when Airflow runs from a virtualenv that was not
  activated: pyspark installs it beside the Python interpreter;
* the driver runs the same Python as Airflow unless PYSPARK_PYTHON says otherwise.

The master comes from the `spark_default` connection (local[*] or spark://...).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

SPARK_CONN_ID = "spark_default"


class FilmrecSparkSubmitOperator(SparkSubmitOperator):
    """spark-submit spark/jobs/<job>.py on the `spark_default` connection."""

    def __init__(
        self,
        *,
        job: str,
        application_args: Sequence[str] = (),
        conn_id: str = SPARK_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            application=f"{job}.py",
            application_args=list(application_args),
            conn_id=conn_id,
            name=f"filmrec-{job.replace('_', '-')}",
            **kwargs,
        )
        self.job = job

    def execute(self, context: Any) -> None:
        from filmrec.config import get_settings
        from filmrec.lakehouse.jars import cached_jars
        from filmrec.orchestration.tasks import spark_jobs_dir

        settings = get_settings()
        application = spark_jobs_dir() / f"{self.job}.py"
        if not application.is_file():
            raise FileNotFoundError(f"spark job {application} does not exist (set FILMREC_SPARK_JOBS_DIR)")
        self.application = str(application)
        # Fetched once per machine (and baked into the Airflow image); a no-op afterwards.
        self.jars = ",".join(str(path) for path in cached_jars(settings.jars_dir))
        # In client mode the driver JVM starts before the session builder runs, so its
        # memory must be given to spark-submit; the builder's setting would be ignored.
        self._driver_memory = self._driver_memory or settings.spark_driver_memory
        interpreter_bin = str(Path(sys.executable).parent)
        if shutil.which("spark-submit") is None:
            os.environ["PATH"] = interpreter_bin + os.pathsep + os.environ.get("PATH", "")
        env = dict(self.env_vars or {})
        env.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", sys.executable))
        env.setdefault("PYSPARK_DRIVER_PYTHON", os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable))
        env.setdefault("SPARK_LOCAL_IP", os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"))
        self.env_vars = env
        super().execute(context)


def from_xcom(task_id: str, key: str) -> str:
    """A template for one field of a task's returned dict (rendered at run time)."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')['{key}'] }}}}"
