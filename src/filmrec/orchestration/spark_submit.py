"""The one spark-submit specification of a filmrec job, for every way a job is submitted.

The Airflow operator (operators.py) maps it onto SparkSubmitOperator; the native
stack (devstack/stack.py) and the continuous ingestion service turn it into a
command line. Both therefore submit a job with the same script, jars, memory and
Python, and a difference between them can only be a parameter.

* the jars go on --jars: `build_spark` puts them on spark.jars, but in a driver that
  spark-submit already started, spark.jars added by the session builder never reach
  the driver's class path (delta.DefaultSource is not found);
* in client mode the driver JVM starts before the session builder runs, so its
  memory must be given to spark-submit (the builder's setting would be ignored);
* the driver runs the Python of the submitting process (filmrec installed); the executors
  run PYSPARK_PYTHON where it is set (a worker image has its own interpreter), else the same.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filmrec.config import Settings
from filmrec.lakehouse.jars import ALL_JARS

IMAGE_SPARK_JOBS = Path("/opt/filmrec/spark/jobs")


def spark_jobs_dir(settings: Settings) -> Path:
    """spark/jobs: FILMREC_SPARK_JOBS_DIR, else ./spark/jobs (a checkout), else the image's."""
    if settings.spark_jobs_dir is not None:
        return settings.spark_jobs_dir
    local = Path("spark/jobs").resolve()
    return local if local.is_dir() else IMAGE_SPARK_JOBS


@dataclass(frozen=True)
class SparkSubmitSpec:
    """What to submit: the job script and everything spark-submit must be told."""

    job: str
    application: Path
    jars: tuple[Path, ...]
    driver_memory: str
    executor_memory: str | None = None
    total_executor_cores: int | None = None
    conf: Mapping[str, str] = field(default_factory=dict)
    application_args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"filmrec-{self.job.replace('_', '-')}"

    def python_env(self, executor_python: str | None = None) -> dict[str, str]:
        """The Python of driver and executors.

        The driver is this process's interpreter, where filmrec is installed. The executors
        run on the workers, whose interpreter may sit elsewhere (Compose: the Spark image's,
        not the Airflow image's), so PYSPARK_PYTHON (`executor_python`) wins when set.
        """
        return {"PYSPARK_PYTHON": executor_python or sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}

    def command(self, *, master: str, spark_submit: str | None = None) -> list[str]:
        """The spark-submit command line (client deploy mode)."""
        executable = spark_submit or str(Path(sys.executable).parent / "spark-submit")
        command = [executable, "--master", master, "--deploy-mode", "client", "--name", self.name]
        command += [
            "--jars",
            ",".join(str(path) for path in self.jars),
            "--driver-memory",
            self.driver_memory,
        ]
        if self.executor_memory:
            command += ["--executor-memory", self.executor_memory]
        if self.total_executor_cores:
            command += ["--total-executor-cores", str(self.total_executor_cores)]
        for key, value in self.conf.items():
            command += ["--conf", f"{key}={value}"]
        return [*command, str(self.application), *self.application_args]


def spark_submit_spec(
    settings: Settings,
    job: str,
    application_args: Sequence[str] = (),
    *,
    executor_memory: str | None = None,
    total_executor_cores: int | None = None,
    conf: Mapping[str, str] | None = None,
) -> SparkSubmitSpec:
    """The spec of spark/jobs/<job>.py; raises FileNotFoundError for an unknown job."""
    application = spark_jobs_dir(settings) / f"{job}.py"
    if not application.is_file():
        raise FileNotFoundError(f"spark job {application} does not exist (set FILMREC_SPARK_JOBS_DIR)")
    return SparkSubmitSpec(
        job=job,
        application=application,
        jars=tuple(settings.jars_dir / jar.filename for jar in ALL_JARS),
        driver_memory=settings.spark_driver_memory,
        executor_memory=executor_memory,
        total_executor_cores=total_executor_cores,
        conf=dict(conf or {}),
        application_args=tuple(application_args),
    )
