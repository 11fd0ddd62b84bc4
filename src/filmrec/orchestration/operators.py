"""The one custom operator: spark-submit of a filmrec job in spark/jobs/.

SparkSubmitOperator with the platform's conventions filled in at run time, not at
parse time (nothing here touches the network or the JVM while a DAG file loads):

* script, jars, driver memory and Python come from the one SparkSubmitSpec
  (spark_submit.py) that the native stack submits with too;
* `spark-submit` is found even when Airflow runs from a virtualenv that was not
  activated: pyspark installs it beside the Python interpreter.

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
        from filmrec.orchestration.spark_submit import spark_submit_spec

        settings = get_settings()
        cached_jars(settings.jars_dir)  # fetched once per machine (baked into the image); a no-op after
        spec = spark_submit_spec(settings, self.job)  # the operator passes its own application_args
        self.application = str(spec.application)
        self.jars = ",".join(str(path) for path in spec.jars)
        self._driver_memory = self._driver_memory or spec.driver_memory
        if shutil.which("spark-submit") is None:
            # Writing PATH for the child spark-submit, not reading configuration.
            os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        self.env_vars = (
            spec.python_env(settings.pyspark_python)
            | {"SPARK_LOCAL_IP": settings.spark_local_ip}
            | dict(self.env_vars or {})
        )
        super().execute(context)


def from_xcom(task_id: str, key: str) -> str:
    """A template for one field of a task's returned dict (rendered at run time)."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')['{key}'] }}}}"
