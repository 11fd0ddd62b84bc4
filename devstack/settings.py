"""The development tooling's own settings: ports, directories and sizes of the native stack.

The product's `filmrec.config.Settings` is the only reader of the environment for the
product; this is the one for the tooling (the names are those of .env.example where
Compose has the same knob).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack import REPO


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", env_ignore_empty=True)

    # scripts/services.sh: PostgreSQL, Redis, MLflow, Prometheus.
    services_dir: Path = Field(default=REPO / "var" / "services", alias="FILMREC_SERVICES_DIR")
    pg_port: int = Field(default=5432, alias="FILMREC_PG_PORT")
    redis_port: int = Field(default=6379, alias="FILMREC_REDIS_PORT")
    mlflow_port: int = Field(default=5000, alias="FILMREC_MLFLOW_PORT")
    prometheus_port: int = Field(default=9090, alias="FILMREC_PROMETHEUS_PORT")

    # scripts/stack.sh: the whole platform on the Compose host ports.
    stack_dir: Path = Field(default=REPO / "var" / "stack", alias="FILMREC_STACK_DIR")
    lakehouse: Path = Field(default=REPO / "lakehouse", alias="LAKEHOUSE_PATH")
    var_dir: Path = Field(default=REPO / "var", alias="FILMREC_VAR_DIR")
    zookeeper_port: int = Field(default=2181, alias="ZOOKEEPER_PORT")
    kafka_port: int = Field(default=9092, alias="KAFKA_PORT")
    spark_master_port: int = Field(default=7077, alias="SPARK_MASTER_PORT")
    spark_master_webui_port: int = Field(default=8081, alias="SPARK_MASTER_WEBUI_PORT")
    spark_worker_webui_port: int = Field(default=8082, alias="SPARK_WORKER_WEBUI_PORT")
    airflow_port: int = Field(default=8080, alias="AIRFLOW_PORT")
    api_port: int = Field(default=8000, alias="API_PORT")
    worker_cores: int = Field(default=2, ge=1, alias="SPARK_WORKER_CORES")
    worker_memory: str = Field(default="4g", alias="SPARK_WORKER_MEMORY")
    stream_cores: int = Field(default=1, ge=1, alias="RATINGS_STREAM_CORES")
    model_poll_seconds: str = Field(default="5", alias="MODEL_POLL_SECONDS")

    # Load generators and proxies the bench builds with Go (bench/go_tools.py).
    tools_dir: Path = Field(default=REPO / "var" / "tools", alias="FILMREC_TOOLS_DIR")

    # The JVM the broker runs on (else `java` on PATH).
    java_home: Path | None = Field(default=None, alias="JAVA_HOME")


def dev_settings() -> DevSettings:
    """Read now, not cached: tests and scripts may set a variable just before."""
    return DevSettings()
