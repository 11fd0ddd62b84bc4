"""A throwaway Airflow installation on this machine, for tests and the benchmark.

Everything lives under one directory: AIRFLOW_HOME with a SQLite metadata database,
the lakehouse, the MLflow store and the serving SQLite database. DAGs run with
`airflow dags test` (in-process executor) against local Spark through the real
`spark_default` connection, so the path is the production one except for the
executor and the master URL.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import REPO

# Service URLs that must not leak in from a developer's shell or .env: the run uses
# the embedded defaults (SQLite, local MLflow, in-process cache) unless told otherwise.
_SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "KAFKA_BOOTSTRAP_SERVERS", "API_URL")


@dataclass
class DagRunOutcome:
    dag_id: str
    run_id: str | None
    state: str | None
    task_states: dict[str, str | None]
    seconds: float
    returncode: int
    log_path: Path

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class LocalAirflow:
    """An AIRFLOW_HOME under `root` that runs this repository's DAGs."""

    root: Path
    spark_master: str = "local[2]"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "airflow-home"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
        bin_dir = str(Path(sys.executable).parent)  # airflow and spark-submit live here
        env |= {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "airflow" / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "airflow" / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # The master comes from the connection, as in production.
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": self.spark_master}),
            "FILMREC_VAR_DIR": str(self.root / "var"),
            "LAKEHOUSE_PATH": str(self.root / "lakehouse"),
            # The jars are big and immutable: reuse the repository's cache.
            "FILMREC_JARS_DIR": env.get("FILMREC_JARS_DIR", str(REPO / "var" / "jars")),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DRIVER_MEMORY": env.get("SPARK_DRIVER_MEMORY", "2g"),
            "FILMREC_SPARK_JOBS_DIR": str(REPO / "spark" / "jobs"),
            "PYTHONUNBUFFERED": "1",
        }
        return env | self.extra_env

    def airflow(self, *args: str, log_path: Path | None = None, timeout: float = 3600) -> int:
        """Run the airflow CLI; output goes to `log_path` (or is discarded)."""
        command = [str(Path(sys.executable).parent / "airflow"), *args]
        self.root.mkdir(parents=True, exist_ok=True)
        # cwd is the root so that no repository .env reaches pydantic-settings.
        with log_path.open("w") if log_path is not None else open(os.devnull, "w") as log:
            return subprocess.run(
                command,
                env=self.env(),
                cwd=self.root,
                timeout=timeout,
                check=False,
                stdout=log,
                stderr=subprocess.STDOUT,
            ).returncode

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.root / "airflow-db-migrate.log"
        if self.airflow("db", "migrate", log_path=log) != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{log.read_text()[-3000:]}")

    def dags_test(
        self, dag_id: str, conf: dict[str, Any] | None = None, *, timeout: float = 3600
    ) -> DagRunOutcome:
        """`airflow dags test dag_id` and the states its tasks ended in."""
        args = ["dags", "test", dag_id]
        if conf:
            args[2:2] = ["-c", json.dumps(conf)]
        log_path = self.root / f"{dag_id}-{time.strftime('%H%M%S')}-{time.monotonic_ns()}.log"
        started = time.perf_counter()
        returncode = self.airflow(*args, log_path=log_path, timeout=timeout)
        seconds = time.perf_counter() - started
        run_id, state, task_states = self._last_run(dag_id)
        return DagRunOutcome(dag_id, run_id, state, task_states, seconds, returncode, log_path)

    def _last_run(self, dag_id: str) -> tuple[str | None, str | None, dict[str, str | None]]:
        # Read straight from the SQLite metadata database: each `airflow` CLI call
        # costs seconds of imports, and these two tables are stable across releases.
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
            if row is None:
                return None, None, {}
            states = dict(
                db.execute(
                    "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                    (dag_id, row[0]),
                ).fetchall()
            )
        return row[0], row[1], states
