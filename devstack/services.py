"""PostgreSQL, Redis, the MLflow tracking server and Prometheus, run natively.

For tests, CI and a one-machine stack without Docker: the Debian packages
`postgresql`, `redis-server` and `prometheus`, and MLflow from the venv.

    python -m devstack.services up      # start what is not running, wait for each
    python -m devstack.services down    # stop what `up` started
    python -m devstack.services status

State lives under var/services/ (FILMREC_SERVICES_DIR). `up` is idempotent and
writes two env files: services.env (DATABASE_URL, REDIS_URL, MLFLOW_TRACKING_URI,
for the platform) and test-services.env (FILMREC_TEST_*, for the integration tests).
Ports: FILMREC_PG_PORT (5432), FILMREC_REDIS_PORT (6379), FILMREC_MLFLOW_PORT (5000),
FILMREC_PROMETHEUS_PORT (9090). The passwords are fixed development passwords:
these instances listen on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import REPO
from devstack.processes import (
    HOST,
    DaemonError,
    port_open,
    read_pid,
    spawn_daemon,
    stop_pid,
    wait_ready,
)
from devstack.settings import dev_settings

if TYPE_CHECKING:
    import psycopg

# (database, owner) pairs, as docker/postgres/initdb.d creates them for Compose.
DATABASES = (("filmrec", "filmrec"), ("mlflow", "mlflow"), ("airflow", "airflow"))


class ServiceError(DaemonError):
    pass


def wait_until(
    check: Callable[[], bool], *, what: str, timeout: float = 60.0, log: Path | None = None
) -> None:
    wait_ready(check, what=what, timeout=timeout, log=log, error=ServiceError, interval=0.2)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


def _stop_pid(pid_file: Path, *, timeout: float = 20.0) -> bool:
    """Stop the process group we started (recorded in `pid_file`); True if one was running."""
    pid = read_pid(pid_file)
    if pid is not None:
        stop_pid(pid, timeout=timeout)  # started with start_new_session: pgid == pid
    pid_file.unlink(missing_ok=True)
    return pid is not None


# --- PostgreSQL -----------------------------------------------------------------


def postgres_bin(name: str) -> str:
    """initdb/pg_ctl: Debian keeps them out of PATH, under /usr/lib/postgresql/<v>/bin."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if found:
        return found
    raise ServiceError(f"`{name}` not found: apt-get install -y postgresql")


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parts[-3]
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _as_postgres_user(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root, a developer usually not.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in `data_dir`, on 127.0.0.1:`port` (socket in the data dir)."""

    data_dir: Path
    port: int

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, *, user: str, password: str, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{user}:{password}@{HOST}:{self.port}/{database}"

    def _admin_connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        import psycopg

        # Through the Unix socket in the data dir, where initdb set trust for the superuser.
        return psycopg.connect(
            host=str(self.data_dir), port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _chown_postgres(self.data_dir)
        self.data_dir.chmod(0o700)
        subprocess.run(
            _as_postgres_user(
                [
                    postgres_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def running(self) -> bool:
        return port_open(self.port) and (self.data_dir / "postmaster.pid").exists()

    def start(self, *, timeout: float = 60.0) -> None:
        self.init()
        if self.running():
            return
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken by another process; set FILMREC_PG_PORT")
        self.log.touch()
        _chown_postgres(self.log)
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.data_dir} -c fsync=off"
        subprocess.run(
            _as_postgres_user(
                [
                    postgres_bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

        def accepts() -> bool:
            with self._admin_connect() as connection:
                connection.execute("SELECT 1")
            return True

        wait_until(accepts, what=f"PostgreSQL on port {self.port}", timeout=timeout, log=self.log)

    def stop(self, *, mode: str = "fast") -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        subprocess.run(
            _as_postgres_user([postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        return True

    def ensure_database(self, database: str, owner: str, password: str, *, createdb: bool = False) -> None:
        """Create (or update) a login role and a database it owns; idempotent."""
        from psycopg import sql

        with self._admin_connect() as connection:
            exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            connection.execute(
                sql.SQL(
                    verb + " ROLE {} WITH LOGIN PASSWORD {} " + ("CREATEDB" if createdb else "NOCREATEDB")
                ).format(sql.Identifier(owner), sql.Literal(password))
            )
            if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(owner)
                    )
                )


# --- Redis ----------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server without persistence (a cache) on 127.0.0.1:`port`."""

    work_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.work_dir / f"redis-{self.port}.pid"

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None and port_open(self.port)

    def start(self, *, timeout: float = 20.0) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken by another process; set FILMREC_REDIS_PORT")
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError("`redis-server` not found: apt-get install -y redis-server")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = self.work_dir / f"redis-{self.port}.log"
        spawn_daemon(
            [
                binary,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.work_dir),
                "--maxmemory",
                "256mb",
                "--maxmemory-policy",
                "allkeys-lru",
            ],
            log=log,
            pid_file=self.pid_file,
        )
        import redis

        wait_until(
            lambda: bool(redis.Redis(host=HOST, port=self.port, socket_timeout=1).ping()),
            what=f"Redis on port {self.port}",
            timeout=timeout,
            log=log,
        )

    def stop(self) -> bool:
        return _stop_pid(self.pid_file, timeout=10)


# --- MLflow tracking server -----------------------------------------------------


@dataclass
class MlflowServer:
    """`mlflow server` with a PostgreSQL backend store and served artifacts (as in Compose)."""

    work_dir: Path
    port: int
    backend_store_uri: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.work_dir / "mlflow.pid"

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None and http_ok(f"{self.url}/health")

    def start(self, *, timeout: float = 180.0) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken by another process; set FILMREC_MLFLOW_PORT")
        artifacts = self.work_dir / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        log = self.work_dir / "mlflow.log"
        env = os.environ | {
            # Read by `mlflow server`; keeps the password off the command line.
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "MLFLOW_SERVER_ALLOWED_HOSTS": f"localhost,localhost:*,{HOST},{HOST}:*",
        }
        spawn_daemon(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--serve-artifacts",
                "--artifacts-destination",
                str(artifacts),
                "--host",
                HOST,
                "--port",
                str(self.port),
                # Two cores on CI; one worker is plenty for tests.
                "--workers",
                "1",
            ],
            log=log,
            pid_file=self.pid_file,
            env=env,
        )
        # The first start migrates the backend schema: that takes a while.
        wait_until(lambda: http_ok(f"{self.url}/health"), what="MLflow server", timeout=timeout, log=log)

    def stop(self) -> bool:
        return _stop_pid(self.pid_file)


# --- Prometheus -----------------------------------------------------------------


@dataclass
class PrometheusServer:
    work_dir: Path
    port: int
    config_file: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.work_dir / f"prometheus-{self.port}.pid"

    def running(self) -> bool:
        return read_pid(self.pid_file) is not None and http_ok(f"{self.url}/-/ready")

    def start(self, *, timeout: float = 60.0) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise ServiceError(f"port {self.port} is taken by another process; set FILMREC_PROMETHEUS_PORT")
        binary = shutil.which("prometheus")
        if binary is None:
            raise ServiceError("`prometheus` not found: apt-get install -y prometheus")
        data = self.work_dir / f"prometheus-{self.port}-data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.work_dir / f"prometheus-{self.port}.log"
        spawn_daemon(
            [
                binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address={HOST}:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            log=log,
            pid_file=self.pid_file,
        )
        wait_until(lambda: http_ok(f"{self.url}/-/ready"), what="Prometheus", timeout=timeout, log=log)

    def stop(self) -> bool:
        return _stop_pid(self.pid_file)


# --- The stack ------------------------------------------------------------------


@dataclass
class Stack:
    root: Path
    pg_port: int
    redis_port: int
    mlflow_port: int
    prometheus_port: int

    @classmethod
    def from_env(cls) -> Stack:
        settings = dev_settings()
        root = settings.services_dir.resolve()
        return cls(
            root=root,
            pg_port=settings.pg_port,
            redis_port=settings.redis_port,
            mlflow_port=settings.mlflow_port,
            prometheus_port=settings.prometheus_port,
        )

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.root / "pg", self.pg_port)

    @property
    def redis(self) -> RedisServer:
        return RedisServer(self.root / "redis", self.redis_port)

    @property
    def mlflow(self) -> MlflowServer:
        return MlflowServer(
            self.root / "mlflow",
            self.mlflow_port,
            self.postgres.url(user="mlflow", password="mlflow", database="mlflow"),
        )

    @property
    def prometheus(self) -> PrometheusServer:
        return PrometheusServer(self.root / "prometheus", self.prometheus_port, self._prometheus_config_file)

    @property
    def _prometheus_config_file(self) -> Path:
        """prometheus/prometheus.native.yml, or its copy for another port (_write_prometheus_config)."""
        if self.prometheus_port == 9090:
            return REPO / "prometheus" / "prometheus.native.yml"
        return self.root / "prometheus" / "prometheus.yml"

    def _write_prometheus_config(self) -> None:
        """For a port other than 9090: the native config with that port, beside alerts.yml."""
        target = self._prometheus_config_file
        if self.prometheus_port == 9090:
            return
        source = REPO / "prometheus" / "prometheus.native.yml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "prometheus" / "alerts.yml", target.parent / "alerts.yml")
        target.write_text(source.read_text().replace(f"{HOST}:9090", f"{HOST}:{self.prometheus_port}"))

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.postgres.url(user="filmrec", password="filmrec", database="filmrec"),
            "REDIS_URL": self.redis.url,
            "MLFLOW_TRACKING_URI": self.mlflow.url,
            "PROMETHEUS_URL": self.prometheus.url,
        }

    def up(self) -> dict[str, str]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the postgres user must reach its data dir below
        postgres = self.postgres
        postgres.start()
        for database, owner in DATABASES:
            # The app role may create databases: tests migrate throwaway ones.
            postgres.ensure_database(database, owner, owner, createdb=owner == "filmrec")
        print(f"postgresql  {HOST}:{self.pg_port}  ({postgres.data_dir})", flush=True)
        self.redis.start()
        print(f"redis       {self.redis.url}", flush=True)
        self.mlflow.start()
        print(f"mlflow      {self.mlflow.url}", flush=True)
        self._write_prometheus_config()  # once, before the start (not on every .prometheus)
        self.prometheus.start()
        print(f"prometheus  {self.prometheus.url}", flush=True)
        env = self.env()
        _write_env(self.root / "services.env", env)
        _write_env(
            self.root / "test-services.env",
            {
                "FILMREC_TEST_DATABASE_URL": env["DATABASE_URL"],
                "FILMREC_TEST_REDIS_URL": env["REDIS_URL"],
                "FILMREC_TEST_MLFLOW_URI": env["MLFLOW_TRACKING_URI"],
                "FILMREC_TEST_PROMETHEUS_URL": env["PROMETHEUS_URL"],
            },
        )
        print(f"env files   {self.root / 'services.env'}, {self.root / 'test-services.env'}", flush=True)
        return env

    def down(self) -> None:
        # Reverse order: the MLflow server holds PostgreSQL connections.
        for name, stop in (
            ("prometheus", self.prometheus.stop),
            ("mlflow", self.mlflow.stop),
            ("redis", self.redis.stop),
            ("postgresql", self.postgres.stop),
        ):
            print(f"{name:<11} {'stopped' if stop() else 'not running'}", flush=True)

    def status(self) -> dict[str, bool]:
        return {
            "postgresql": self.postgres.running(),
            "redis": self.redis.running(),
            "mlflow": self.mlflow.running(),
            "prometheus": self.prometheus.running(),
        }


def _write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"export {key}={value}\n" for key, value in values.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    args = parser.parse_args(argv)
    stack = Stack.from_env()
    try:
        if args.action == "up":
            stack.up()
        elif args.action == "down":
            stack.down()
        elif args.action == "env":
            print("".join(f"export {key}={value}\n" for key, value in stack.env().items()), end="")
        else:
            states = stack.status()
            for name, running in states.items():
                print(f"{name:<11} {'running' if running else 'stopped'}")
            return 0 if all(states.values()) else 1
    except (ServiceError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        print(f"error: {error} {detail.decode(errors='replace') if detail else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
