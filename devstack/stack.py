"""The whole Compose platform run natively on one machine, on the same ports (no Docker).

    python -m devstack.stack up        # start what is not running, wait for each
    python -m devstack.stack up --streaming   # and the continuous ingestion job
    python -m devstack.stack status
    python -m devstack.stack bootstrap [--users 100]   # load + train on the cluster
    python -m devstack.stack submit train_als --search quick
    python -m devstack.stack down      # stop only what `up` started

| service                 | from                         | port(s)           |
|-------------------------|------------------------------|-------------------|
| PostgreSQL, Redis,      | Debian packages (native_services) | 5432, 6379, 9090 |
| Prometheus              |                              |                   |
| MLflow server           | PyPI (native_services)       | 5000              |
| ZooKeeper, Kafka        | Maven Central jars (streaming.broker) | 2181, 9092 |
| Spark master + worker   | the pyspark distribution     | 7077, 8081, 8082  |
| Airflow api-server,     | PyPI, the project venv       | 8080              |
| scheduler, dag-processor,|                             |                   |
| triggerer               |                              |                   |
| the API                 | `python main.py` (api/), API_WORKERS processes | 8000 |
| ratings-stream (opt-in) | spark-submit of spark/jobs/ingest_ratings.py --continuous | none |

Grafana has no package here; it is the one service of Compose this stack lacks.
ratings-stream is opt-in here as in Compose (`--profile streaming` there,
`--streaming` here): one ingestion mode per deployment at a time, the checkpoint
lock enforces it, and while it runs the ratings_ingestion DAG's runs are skipped.

`up` is idempotent: a service of ours that runs is left alone, and so is any service
that already answers healthily on its port (CI's `scripts/services.sh up` and Kafka
broker, another developer's instance), which is then *reused*, never stopped. State,
pid files and logs live under var/stack/ (FILMREC_STACK_DIR); `up` writes
var/stack/stack.env (the platform's URLs) and var/stack/connections.env (ports and
development passwords for test-connections.py). Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import REPO
from devstack import services as native_services
from devstack.processes import HOST, log_tail, port_open, read_pid, spawn_daemon, wait_ready
from devstack.services import ServiceError, http_ok
from devstack.settings import dev_settings

if TYPE_CHECKING:
    from devstack.broker import BrokerLayout
    from devstack.local_airflow import LocalAirflow
    from filmrec.config import Settings

BUNDLED_DATA = REPO / "data" / "ml-latest-small"
# Every job's executors (the worker offers worker_memory: room for two at once).
EXECUTOR_MEMORY = "2g"
SPARK_JOBS = REPO / "spark" / "jobs"
SPARK_CONFIG = REPO / "spark" / "config"
API_ENTRY_DIR = REPO / "api"  # api/main.py, the API container's entry point
AIRFLOW_CONFIG_FILE = REPO / "airflow" / "config" / "airflow.cfg"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# Where docker-compose.yml mounts the shared var volume (FILMREC_VAR_DIR there).
COMPOSE_VAR_DIR = "/opt/filmrec/var"


class StackError(RuntimeError):
    """A service could not be started or a job failed; the message says why."""


def spark_defaults(path: Path) -> dict[str, str]:
    """The properties of a spark-defaults.conf: `key value` lines, # comments."""
    properties = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            properties[key] = value.strip()
    return properties


def render_spark_conf(*, conf_dir: Path, var_dir: Path) -> Path:
    """spark/config/ for this machine: the Compose files with the var volume's path mapped.

    The daemons and every driver started here (spark-submit, Airflow tasks) read it as
    SPARK_CONF_DIR, so the native stack runs the very spark-defaults.conf and
    log4j2.properties the containers get, not a copy that could drift. The local
    directories those defaults name (checkpoints, event logs) are created: Spark
    refuses to start an application whose event log directory is missing.
    """
    conf_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(SPARK_CONFIG.iterdir()):
        text = source.read_text(encoding="utf-8").replace(COMPOSE_VAR_DIR, var_dir.as_posix())
        (conf_dir / source.name).write_text(text, encoding="utf-8")
    for value in spark_defaults(conf_dir / "spark-defaults.conf").values():
        if value.startswith("file://"):
            Path(value.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    return conf_dir


@dataclass(frozen=True)
class Ports:
    """The Compose host ports, under the same variable names as .env.example."""

    zookeeper: int = 2181
    kafka: int = 9092
    spark_master: int = 7077
    spark_master_webui: int = 8081
    spark_worker_webui: int = 8082
    airflow: int = 8080
    api: int = 8000

    @classmethod
    def from_env(cls) -> Ports:
        settings = dev_settings()
        return cls(
            zookeeper=settings.zookeeper_port,
            kafka=settings.kafka_port,
            spark_master=settings.spark_master_port,
            spark_master_webui=settings.spark_master_webui_port,
            spark_worker_webui=settings.spark_worker_webui_port,
            airflow=settings.airflow_port,
            api=settings.api_port,
        )


def http_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def spark_home() -> Path:
    """pyspark's own distribution: bin/spark-class, bin/spark-submit and jars/."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class Daemon:
    """One long-running process of the stack: how to start it and how to tell it is ready."""

    name: str
    port: int | None  # None: no port of its own (it is "ours" by its pid file only)
    command: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    timeout: float
    run_dir: Path
    stop_timeout: float = 30.0  # SIGTERM to the process group, then SIGKILL after this long

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return self.run_dir.parent / "logs" / f"{self.name}.log"

    def ours(self) -> bool:
        return read_pid(self.pid_file) is not None

    def healthy(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:  # a probe that fails in any way means "not ready (yet)"
            return False

    def up(self) -> str:
        """'running' (ours), 'reused' (someone else's, healthy) or 'started'."""
        if self.ours():
            self._wait()
            return "running"
        if self.port is not None and port_open(self.port):
            if self.healthy():
                return "reused"
            raise StackError(f"{self.name}: port {self.port} is taken by a process that is not healthy")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        pid = spawn_daemon(self.command, log=self.log, pid_file=self.pid_file, env=self.env)
        self._wait(pid)
        return "started"

    def _wait(self, pid: int | None = None) -> None:
        pid = pid if pid is not None else read_pid(self.pid_file)
        what = f"{self.name} ({self.log})"
        wait_ready(
            self.ready, what=what, timeout=self.timeout, log=self.log, pid=pid, error=StackError, interval=0.5
        )

    def down(self) -> bool:
        return native_services._stop_pid(self.pid_file, timeout=self.stop_timeout)


@dataclass
class NativeStack:
    root: Path
    ports: Ports
    lakehouse: Path
    var_dir: Path
    worker_cores: int = 2
    worker_memory: str = "4g"  # two jobs' executors at once: the stream's and a batch job's
    stream_cores: int = 1  # executor cores the continuous ingestion job keeps (of worker_cores)
    services: native_services.Stack = field(default_factory=native_services.Stack.from_env)

    @classmethod
    def from_env(cls) -> NativeStack:
        settings = dev_settings()
        return cls(
            root=settings.stack_dir.resolve(),
            ports=Ports.from_env(),
            # Compose bind-mounts ./lakehouse and shares one var volume: the same here.
            lakehouse=settings.lakehouse.resolve(),
            var_dir=settings.var_dir.resolve(),
            worker_cores=settings.worker_cores,
            worker_memory=settings.worker_memory,
            stream_cores=settings.stream_cores,
        )

    # --- addresses and environment ------------------------------------------------

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.ports.spark_master}"

    @property
    def master_json_url(self) -> str:
        return f"http://{HOST}:{self.ports.spark_master_webui}/json/"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    @property
    def airflow_url(self) -> str:
        return f"http://{HOST}:{self.ports.airflow}"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.ports.kafka}"

    def platform_env(self) -> dict[str, str]:
        """What every filmrec process of the stack reads (docker-compose.yml's x-filmrec-env)."""
        return self.services.env() | {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "SPARK_MASTER_URL": self.master_url,
            "LAKEHOUSE_PATH": str(self.lakehouse),
            "FILMREC_VAR_DIR": str(self.var_dir),
            "SPARK_LOCAL_IP": HOST,
            "API_URL": self.api_url,
            "AIRFLOW_URL": self.airflow_url,
        }

    def connections_env(self) -> dict[str, str]:
        """Ports and the development passwords (native_services) for test-connections.py."""
        return {
            "PLATFORM_HOST": HOST,
            "ZOOKEEPER_PORT": str(self.ports.zookeeper),
            "KAFKA_PORT": str(self.ports.kafka),
            "POSTGRES_PORT": str(self.services.pg_port),
            "REDIS_PORT": str(self.services.redis_port),
            "SPARK_MASTER_WEBUI_PORT": str(self.ports.spark_master_webui),
            "MLFLOW_PORT": str(self.services.mlflow_port),
            "AIRFLOW_PORT": str(self.ports.airflow),
            "API_PORT": str(self.ports.api),
            "PROMETHEUS_PORT": str(self.services.prometheus_port),
            # native_services gives each database's owner the owner's name as password.
            "APP_DB_PASSWORD": "filmrec",
            "MLFLOW_DB_PASSWORD": "mlflow",
            "AIRFLOW_DB_PASSWORD": "airflow",
        }

    def _settings(self) -> Settings:
        """Settings of the stack's processes, without any .env of the working directory."""
        from filmrec.config import Settings

        return Settings.model_validate(self.platform_env())

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    # --- Kafka and ZooKeeper --------------------------------------------------------

    def kafka_layout(self) -> BrokerLayout:
        from devstack import broker

        # A state dir of its own, so `down` never stops CI's `broker up` broker in var/kafka.
        return broker.BrokerLayout(
            root=self.root / "kafka",
            libs=broker.default_layout().libs,
            port=self.ports.kafka,
            controller_port=self.ports.kafka + 1,
            zookeeper_port=self.ports.zookeeper,
        )

    def zookeeper_ok(self) -> bool:
        try:
            return "imok" in _four_letter_word(HOST, self.ports.zookeeper, "ruok")
        except OSError:
            return False

    def _kafka_up(self) -> dict[str, str]:
        from devstack import broker
        from filmrec.ingestion.topics import ensure_topic

        layout = self.kafka_layout()
        states: dict[str, str] = {}
        zookeeper_before = broker._running_pid(layout, "zookeeper") is not None
        broker_before = broker._running_pid(layout, "broker") is not None
        try:
            if self.zookeeper_ok() and not zookeeper_before:
                states["zookeeper"] = "reused"
            if broker.serves_metadata(self.bootstrap_servers, 3.0) and not broker_before:
                # A broker (e.g. CI's KRaft one) already serves the port: reuse it, and
                # run ZooKeeper beside it so that the ZooKeeper service exists too.
                states["kafka"] = "reused"
                if "zookeeper" not in states:
                    broker.up_zookeeper(layout)
                    states["zookeeper"] = "running" if zookeeper_before else "started"
            else:
                if "zookeeper" in states:
                    raise StackError(
                        f"a ZooKeeper that is not ours answers on {self.ports.zookeeper} but no Kafka "
                        f"broker on {self.ports.kafka}; stop it or set ZOOKEEPER_PORT"
                    )
                broker.up(layout, broker.Mode.ZOOKEEPER)
                states["zookeeper"] = "running" if zookeeper_before else "started"
                states["kafka"] = "running" if broker_before else "started"
        except broker.BrokerError as error:
            raise StackError(str(error)) from error
        # What Compose's kafka-init does: the ratings topic with the contract's partitions.
        ensure_topic(self._settings())
        return states

    # --- Spark, Airflow, the API ---------------------------------------------------

    def spark_master(self) -> Daemon:
        def ready() -> bool:
            return http_json(self.master_json_url).get("status") == "ALIVE"

        return Daemon(
            "spark-master",
            self.ports.spark_master_webui,
            [
                str(spark_home() / "bin" / "spark-class"),
                "org.apache.spark.deploy.master.Master",
                "--host",
                HOST,
                "--port",
                str(self.ports.spark_master),
                "--webui-port",
                str(self.ports.spark_master_webui),
            ],
            self._spark_env(),
            ready,
            120,
            self.run_dir,
        )

    def spark_worker(self) -> Daemon:
        def ready() -> bool:
            workers = http_json(self.master_json_url).get("workers", [])
            return any(worker.get("state") == "ALIVE" for worker in workers) and http_ok(
                f"http://{HOST}:{self.ports.spark_worker_webui}/json/"
            )

        work_dir = self.root / "spark" / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        return Daemon(
            "spark-worker",
            self.ports.spark_worker_webui,
            [
                str(spark_home() / "bin" / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                HOST,
                "--webui-port",
                str(self.ports.spark_worker_webui),
                "--cores",
                str(self.worker_cores),
                "--memory",
                self.worker_memory,
                "--work-dir",
                str(work_dir),
                self.master_url,
            ],
            self._spark_env(),
            ready,
            120,
            self.run_dir,
        )

    @property
    def spark_conf_dir(self) -> Path:
        """Where `up` and `submit` render spark/config/ for this machine (render_spark_conf)."""
        return self.root / "spark" / "conf"

    def _render_spark_conf(self) -> None:
        render_spark_conf(conf_dir=self.spark_conf_dir, var_dir=self.var_dir)

    def _spark_env(self) -> dict[str, str]:
        return os.environ | {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(self.spark_conf_dir),
            "SPARK_LOCAL_IP": HOST,  # also the address the web UIs bind to
            "SPARK_DAEMON_MEMORY": "512m",
            "PYSPARK_PYTHON": sys.executable,
        }

    def airflow(self) -> LocalAirflow:
        from devstack.local_airflow import LocalAirflow

        airflow_db = self.services.postgres.url(user="airflow", password="airflow", database="airflow")
        extra = self.platform_env() | {
            # The containers' airflow/config/airflow.cfg. What must differ here is set below
            # as AIRFLOW__* variables, which win over the file: the image paths (dags,
            # plugins, logs: LocalAirflow), the auth manager and the 2-core sizing.
            "AIRFLOW_CONFIG": str(AIRFLOW_CONFIG_FILE),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            # Airflow derives an asyncpg URL otherwise; psycopg 3 (installed) is async too.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": airflow_db,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Two cores: at most two task processes (each may be a Spark driver).
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            # No FAB provider in the venv: the simple auth manager, everyone admin (dev only,
            # bound to 127.0.0.1).
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(self.ports.airflow),
            "AIRFLOW__API__WORKERS": "1",
            # The DAG files change rarely here; re-parsing every 30 s costs a core.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
            "SPARK_DRIVER_MEMORY": "1g",
            # The task drivers read spark/config/ as in the Airflow image.
            "SPARK_CONF_DIR": str(self.spark_conf_dir),
            **self._airflow_secrets(),
        }
        return LocalAirflow(self.root / "airflow", spark_master=self.master_url, extra_env=extra)

    def _airflow_secrets(self) -> dict[str, str]:
        """Generated once per stack and kept (restarts must decrypt what they encrypted)."""
        path = self.root / "airflow" / "secrets.json"
        if not path.exists():
            from cryptography.fernet import Fernet

            path.parent.mkdir(parents=True, exist_ok=True)
            values = {
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(24),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(24),
            }
            path.write_text(json.dumps(values))
            path.chmod(0o600)
        return dict(json.loads(path.read_text()))

    def airflow_daemons(self) -> list[Daemon]:
        local = self.airflow()
        env = local.env()
        airflow_bin = str(Path(sys.executable).parent / "airflow")

        def health() -> dict[str, Any]:
            return dict(http_json(f"{self.airflow_url}/api/v2/monitor/health"))

        def component(name: str) -> Callable[[], bool]:
            return lambda: (health().get(name) or {}).get("status") == "healthy"

        def daemon(name: str, args: list[str], ready: Callable[[], bool], port: int | None) -> Daemon:
            return Daemon(name, port, [airflow_bin, *args], env, ready, 240, self.run_dir)

        api = daemon(
            "airflow-api-server",
            ["api-server", "--host", HOST, "--port", str(self.ports.airflow), "--workers", "1"],
            component("metadatabase"),
            self.ports.airflow,
        )
        return [
            api,
            # Scheduler, dag-processor and triggerer have no port of their own: "ours" by pid
            # file, and ready once the api-server reports their heartbeat healthy.
            daemon("airflow-scheduler", ["scheduler"], component("scheduler"), None),
            daemon("airflow-dag-processor", ["dag-processor"], component("dag_processor"), None),
            daemon("airflow-triggerer", ["triggerer"], component("triggerer"), None),
        ]

    def api(self) -> Daemon:
        env = (
            os.environ
            | self.platform_env()
            | {
                "API_HOST": HOST,
                "API_PORT": str(self.ports.api),
                # Pick up a newly promoted champion within seconds, not the default 30.
                "MODEL_POLL_SECONDS": dev_settings().model_poll_seconds,
            }
        )
        # The container's command, `python main.py`, on the same api/main.py: API_WORKERS
        # (from the environment, 1 by default) worker processes, as in the image.
        command = [sys.executable, str(API_ENTRY_DIR / "main.py")]
        return Daemon(
            "api",
            self.ports.api,
            command,
            env,
            lambda: http_ok(f"{self.api_url}/health"),
            120,
            self.run_dir,
        )

    def ratings_stream(self) -> Daemon:
        """Compose's ratings-stream: the ingestion job, continuous, driver here, executors on the worker."""
        from filmrec.ingestion.ingest_status import IngestionMode, check_running
        from filmrec.lakehouse.tables import LakehouseTables

        status_file = LakehouseTables(self.lakehouse).ingestion_status
        command, env = self._spark_submit(
            "ingest_ratings",
            ["--continuous"],
            result_path=self.root / "jobs" / "ratings-stream-last-run.json",
            cores=self.stream_cores,
            # An event log never rolls over for an application that never ends.
            conf={"spark.eventLog.enabled": "false"},
        )
        return Daemon(
            "ratings-stream",
            None,
            command,
            env,
            lambda: check_running(status_file, IngestionMode.CONTINUOUS)[0],
            300,
            self.run_dir,
            # SIGTERM stops the query after the running micro-batch (as Compose's stop_grace_period).
            stop_timeout=120,
        )

    # --- up / down / status ----------------------------------------------------------

    def up(self, *, streaming: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
        """Start every service that is not running; return {service: started|running|reused}.

        With `streaming`, the continuous ingestion job too (Compose's `--profile streaming`).
        A start that fails half-way stops what this call started, then raises: a caller
        that gets no states back has nothing of this call's to stop (a CI run once left a
        broker and Spark running after an Airflow port was taken).
        """
        states: dict[str, str] = {}
        try:
            self._bring_up(states, streaming=streaming, log=log)
        except (StackError, ServiceError):
            started_now = [name for name, value in states.items() if value == "started"]
            if started_now:
                log(f"stopping what this start started: {', '.join(started_now)}")
                self.down(only=started_now, log=log)
            raise
        return states

    def _bring_up(self, states: dict[str, str], *, streaming: bool, log: Callable[[str], None]) -> None:
        """up's steps, each service's state recorded in `states` as soon as it is known."""
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._state()
        started: set[str] = set(state.get("services_started", []))

        states |= self._services_up(started)
        for name in ("postgresql", "redis", "mlflow", "prometheus"):
            log(f"{name:<22} {states[name]}")
        self._save_state({"services_started": sorted(started)})

        for name, value in self._kafka_up().items():
            states[name] = value
            log(f"{name:<22} {value}  ({HOST}:{getattr(self.ports, name)})")

        # Once per `up`, before anything that reads it (daemons, Airflow's drivers).
        self._render_spark_conf()
        for daemon in (self.spark_master(), self.spark_worker()):
            states[daemon.name] = daemon.up()
            log(f"{daemon.name:<22} {states[daemon.name]}  (http://{HOST}:{daemon.port})")

        daemons = self.airflow_daemons()
        if not daemons[0].ours() and not port_open(self.ports.airflow):
            try:
                self.airflow().migrate()  # idempotent; the api-server refuses an unmigrated database
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                raise StackError(str(error)) from error
        for daemon in daemons:
            if daemon.name != "airflow-api-server" and states.get("airflow-api-server") == "reused":
                # Someone else's Airflow: its scheduler, dag-processor and triggerer are theirs too.
                states[daemon.name] = "reused" if daemon.healthy() else "missing"
            else:
                states[daemon.name] = daemon.up()
            log(f"{daemon.name:<22} {states[daemon.name]}")

        api = self.api()
        states["api"] = api.up()
        log(f"{'api':<22} {states['api']}  ({self.api_url})")

        if streaming:
            from filmrec.lakehouse.jars import cached_jars

            # spark/config was rendered above. A run that finds the checkpoint locked
            # exits at once: `up` then fails with the job's log, which names the holder.
            cached_jars(self._settings().jars_dir)
            stream = self.ratings_stream()
            states[stream.name] = stream.up()
            log(f"{stream.name:<22} {states[stream.name]}  (continuous ingestion, log {stream.log})")

        native_services._write_env(self.root / "stack.env", self.platform_env())
        native_services._write_env(self.root / "connections.env", self.connections_env())
        log(f"env files: {self.root / 'stack.env'}, {self.root / 'connections.env'}")

    def _services_up(self, started: set[str]) -> dict[str, str]:
        """PostgreSQL, Redis, MLflow, Prometheus through native_services (var/services)."""
        services = self.services
        ours_before = services.status()
        ports = {
            "postgresql": services.pg_port,
            "redis": services.redis_port,
            "mlflow": services.mlflow_port,
            "prometheus": services.prometheus_port,
        }
        foreign = {name for name, port in ports.items() if port_open(port) and not ours_before[name]}
        if foreign == set(ports):
            # All four answer and none is from var/services: another instance; reuse it.
            return dict.fromkeys(ports, "reused")
        try:
            services.up()  # idempotent; refuses (clearly) a port held by a foreign process
        except (ServiceError, subprocess.CalledProcessError) as error:
            raise StackError(f"native services: {error}") from error
        states = {}
        for name in ports:
            if ours_before[name]:
                states[name] = "running"
            else:
                states[name] = "started"
                started.add(name)
        return states

    def down(self, *, only: Collection[str] | None = None, log: Callable[[str], None] = print) -> None:
        """Stop, in reverse order, what `up` started (or only the names in `only`).

        Reused services are never stopped: they have no pid file of ours, and the
        native services record in state.json whether the stack started them.
        """
        from devstack import broker

        def wanted(name: str) -> bool:
            return only is None or name in only

        daemons = [
            self.ratings_stream(),
            self.api(),
            *reversed(self.airflow_daemons()),
            self.spark_worker(),
            self.spark_master(),
        ]
        for daemon in daemons:
            if wanted(daemon.name):
                log(f"{daemon.name:<22} {'stopped' if daemon.down() else 'not ours / not running'}")
        if wanted("kafka") or wanted("zookeeper"):
            stopped = broker.down(self.kafka_layout())
            log(f"{'kafka, zookeeper':<22} stopped: {', '.join(stopped) if stopped else 'none of ours'}")
        started = {name for name in self._state().get("services_started", []) if wanted(name)}
        services = self.services
        # Reverse order: the MLflow server holds PostgreSQL connections.
        for name, server in (
            ("prometheus", services.prometheus),
            ("mlflow", services.mlflow),
            ("redis", services.redis),
            ("postgresql", services.postgres),
        ):
            if name in started:
                log(f"{name:<22} {'stopped' if server.stop() else 'not running'}")
            elif wanted(name):
                log(f"{name:<22} not started by the stack: left running")
        remaining = set(self._state().get("services_started", [])) - started
        self._save_state({"services_started": sorted(remaining)})

    def status(self) -> dict[str, dict[str, Any]]:
        from devstack import broker

        layout = self.kafka_layout()
        rows: dict[str, dict[str, Any]] = {}
        started = set(self._state().get("services_started", []))
        for name, running in self.services.status().items():
            # Run from var/services, possibly by scripts/services.sh rather than the stack.
            rows[name] = {"running": running, "ours": name in started}
        rows["zookeeper"] = {"ours": broker._running_pid(layout, "zookeeper") is not None}
        rows["kafka"] = {"ours": broker._running_pid(layout, "broker") is not None}
        daemons = (self.spark_master(), self.spark_worker(), *self.airflow_daemons(), self.api())
        for daemon in (*daemons, self.ratings_stream()):
            rows[daemon.name] = {"ours": daemon.ours(), "healthy": daemon.healthy()}
        return rows

    # --- jobs on the cluster ---------------------------------------------------------

    def _spark_submit(
        self,
        job: str,
        args: Sequence[str],
        *,
        result_path: Path,
        cores: int,
        conf: Mapping[str, str] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The command and environment that spark-submit spark/jobs/<job>.py to the master.

        Only builds them (down and status describe the stream's daemon with it): the
        caller renders spark/config and makes sure the jars are there before running.
        """
        from filmrec.orchestration.spark_submit import spark_submit_spec

        # The same spec as the Airflow operator's; the stack's drivers get 1g (2 cores, 24 GiB
        # shared by every daemon), which is the only difference, and a parameter. Executors
        # get 2g, as in Compose: the quick search's EASE Gram ran a 1g executor out of heap.
        settings = self._settings().model_copy(
            update={"spark_jobs_dir": SPARK_JOBS, "spark_driver_memory": "1g"}
        )
        try:
            spec = spark_submit_spec(
                settings,
                job,
                ("--result-path", str(result_path), *args),
                executor_memory=EXECUTOR_MEMORY,
                total_executor_cores=cores,
                conf=conf,
            )
        except FileNotFoundError as error:
            raise StackError(f"no such job: {error}") from error
        command = spec.command(master=self.master_url)
        env = (
            os.environ
            | self.platform_env()
            | {
                "SPARK_HOME": str(spark_home()),
                "SPARK_CONF_DIR": str(self.spark_conf_dir),
                "SPARK_DRIVER_MEMORY": spec.driver_memory,
            }
            | spec.python_env()  # executors run the venv's Python (filmrec installed)
        )
        return command, env

    def submit(
        self,
        job: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
    ) -> dict[str, Any]:
        """spark-submit spark/jobs/<job>.py to the standalone master; return its JSON result.

        Client deploy mode: the driver runs here and the executors on the worker
        (standalone Spark has no cluster deploy mode for Python applications).
        """
        from filmrec.lakehouse.jars import cached_jars

        jobs_dir = self.root / "jobs"
        stamp = f"{job}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        result_path, log_path = jobs_dir / f"{stamp}.json", jobs_dir / f"{stamp}.log"
        command, job_env = self._spark_submit(job, args, result_path=result_path, cores=self.worker_cores)
        job_env |= dict(env or {})
        jobs_dir.mkdir(parents=True, exist_ok=True)
        cached_jars(self._settings().jars_dir)  # fetched once per machine; a no-op afterwards
        self._render_spark_conf()  # the driver reads it; cheap, and current with spark/config/
        with log_path.open("wb") as out:
            try:
                completed = subprocess.run(
                    command,
                    env=job_env,
                    cwd=self.root,  # no repository .env reaches the job: the stack env decides
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise StackError(f"{job} timed out after {timeout:.0f}s; {log_path}") from error
        if completed.returncode != 0 or not result_path.exists():
            raise StackError(
                f"{job} failed (exit {completed.returncode}); {log_path}:\n{log_tail(log_path, 40)}"
            )
        result = dict(json.loads(result_path.read_text()))
        # Where it ran: the standalone scheduler logs the application id the master gave it.
        found = re.search(
            r"Connected to Spark cluster with app ID (\S+)", log_path.read_text(errors="replace")
        )
        result["_app_id"] = found.group(1) if found else None
        result["_log"] = str(log_path)
        return result

    def application(self, app_id: str) -> dict[str, Any] | None:
        """The master's record of an application (running or completed), from its JSON API."""
        state = http_json(self.master_json_url)
        for app in [*state.get("activeapps", []), *state.get("completedapps", [])]:
            if app.get("id") == app_id:
                return dict(app)
        return None

    def bootstrap(
        self, *, users: int | None = None, search: str = "quick", log: Callable[[str], None] = print
    ) -> dict[str, Any]:
        """Load MovieLens (optionally its first `users` users) and train, both on the cluster."""
        data = slice_movielens(self.root / "data" / f"users-{users}", users) if users else BUNDLED_DATA
        loaded = self.submit(
            "load_movielens",
            [
                "--movies",
                str(data / "movies.csv"),
                "--links",
                str(data / "links.csv"),
                "--ratings",
                str(data / "ratings.csv"),
                "--sync-metadata",
            ],
        )
        log(f"loaded: {json.dumps(loaded.get('loads'))}, movies synced: {loaded.get('movies_synced')}")
        trained = self.submit("train_als", ["--search", search])
        log(f"trained: model v{trained.get('model_version')}, promotion: {trained.get('promotion')}")
        return trained


def _four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    import socket

    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(word.encode("ascii"))
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def slice_movielens(target: Path, users: int, source: Path = BUNDLED_DATA) -> Path:
    """The bundled MovieLens with only the ratings of users 1..`users` (a quick cluster run)."""
    target.mkdir(parents=True, exist_ok=True)
    ratings = target / "ratings.csv"
    if not ratings.exists():
        partial = ratings.with_suffix(".part")
        with (source / "ratings.csv").open() as inp, partial.open("w", newline="") as out:
            reader, writer = csv.reader(inp), csv.writer(out)
            writer.writerow(next(reader))
            writer.writerows(row for row in reader if int(row[0]) <= users)
        partial.replace(ratings)
    for name in ("movies.csv", "links.csv"):
        if not (target / name).exists():
            shutil.copy(source / name, target / name)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start every service that is not running")
    up.add_argument(
        "--streaming", action="store_true", help="and the continuous ingestion job (Compose's ratings-stream)"
    )
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="which services run, and whether the stack started them")
    sub.add_parser("env", help="print the platform environment (eval it in a shell)")
    boot = sub.add_parser("bootstrap", help="load MovieLens and train the model on the standalone cluster")
    boot.add_argument("--users", type=int, default=None, help="only the first N users (faster)")
    boot.add_argument(
        "--search", default="quick", help="the training search: default or quick (default quick)"
    )
    submit = sub.add_parser("submit", help="spark-submit one spark/jobs/<job>.py to the master")
    submit.add_argument("job")
    submit.add_argument("job_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    stack = NativeStack.from_env()
    try:
        if args.action == "up":
            stack.up(streaming=args.streaming)
        elif args.action == "down":
            stack.down()
        elif args.action == "env":
            print("".join(f"export {key}={value}\n" for key, value in stack.platform_env().items()), end="")
        elif args.action == "bootstrap":
            stack.bootstrap(users=args.users, search=args.search)
        elif args.action == "submit":
            print(json.dumps(stack.submit(args.job, args.job_args), indent=2, default=str))
        else:
            for name, row in stack.status().items():
                flags = ", ".join(f"{key}={value}" for key, value in row.items())
                print(f"{name:<22} {flags}")
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
