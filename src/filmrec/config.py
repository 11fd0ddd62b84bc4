"""Platform configuration: one pydantic-settings object, read from the environment.

Every external service has an embedded default that is used when its URL is unset,
so the same code path runs on one machine and on the Compose platform.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Settings where an empty value means "off", not "unset" (every other empty variable is
# ignored): an empty FILMREC_DEMO_API_KEY disables the demo key, an empty
# FILMREC_READ_RATE_LIMIT the read limit.
_EMPTY_MEANS_OFF = frozenset({"demo_api_key", "read_rate_limit"})


class _EmptyMeansOffEnv(EnvSettingsSource):
    """The environment, empty values kept, for the _EMPTY_MEANS_OFF fields only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in _EMPTY_MEANS_OFF:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _EmptyMeansOffDotEnv(DotEnvSettingsSource):
    """.env, empty values kept, for the _EMPTY_MEANS_OFF fields only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in _EMPTY_MEANS_OFF:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        # The base class also copies .env's unknown keys when extra is allowed; only
        # the fields asked for are wanted here.
        wanted = _EMPTY_MEANS_OFF | {self.settings_cls.model_fields[name].alias for name in _EMPTY_MEANS_OFF}
        return {key: value for key, value in super().__call__().items() if key in wanted}


class Settings(BaseSettings):
    """All settings, by environment variable name (case-insensitive)."""

    # An empty variable (`API_URL=` in a .env) means "not set", not an empty value.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Local state: SQLite files, the local MLflow store, Spark checkpoints, cached jars.
    var_dir: Path = Field(default=Path("var"), alias="FILMREC_VAR_DIR")
    lakehouse_path: Path = Field(default=Path("lakehouse"), alias="LAKEHOUSE_PATH")

    # External services: None means "use the embedded default".
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    # The online state and the rate-limit windows (unset: REDIS_URL). A Redis of their
    # own, with `noeviction`, keeps cache pressure from evicting live ratings and
    # windows; the recommendation cache stays on REDIS_URL, which may evict.
    redis_state_url: str | None = Field(default=None, alias="REDIS_STATE_URL")
    mlflow_tracking_uri: str | None = Field(default=None, alias="MLFLOW_TRACKING_URI")
    kafka_bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")

    # The metadata database (PostgreSQL; metadata/engine.py, migrate.py). A statement
    # that runs or waits longer than this is cancelled by the server (0: no limit);
    # TCP keepalives (idle, then every interval, given up after count unanswered
    # probes) drop a connection whose peer vanished without closing it.
    database_statement_timeout_seconds: float = Field(
        default=30.0, ge=0, alias="DATABASE_STATEMENT_TIMEOUT_SECONDS"
    )
    database_keepalive_idle_seconds: int = Field(default=30, ge=1, alias="DATABASE_KEEPALIVE_IDLE_SECONDS")
    database_keepalive_interval_seconds: int = Field(
        default=10, ge=1, alias="DATABASE_KEEPALIVE_INTERVAL_SECONDS"
    )
    database_keepalive_count: int = Field(default=3, ge=1, alias="DATABASE_KEEPALIVE_COUNT")
    # How long a process waits for another one's migration (the advisory lock) before
    # it fails with MigrationLockTimeoutError.
    migration_lock_timeout_seconds: float = Field(default=120.0, gt=0, alias="MIGRATION_LOCK_TIMEOUT_SECONDS")

    # Kafka contract.
    kafka_topic: str = Field(default="ratings", alias="KAFKA_RATINGS_TOPIC")
    kafka_partitions: int = Field(default=3, ge=1, alias="KAFKA_RATINGS_PARTITIONS")
    # Continuous Kafka -> Delta ingestion (`--continuous`): seconds between micro-batches.
    # Each batch costs a few Delta commits, so this trades freshness for small files.
    ingest_trigger_seconds: int = Field(default=30, ge=1, alias="INGEST_TRIGGER_SECONDS")

    # When a rating can have been made (ingestion/contract.py RatedAtRule, for the API,
    # Kafka and CSV alike): not before the floor (MovieLens starts in 1995), at most this
    # many seconds ahead of the clock of the process that checks it. "The latest rating
    # wins" compares these times, so a rating dated in the future would win for ever.
    rated_at_floor: AwareDatetime = Field(
        default=datetime(1995, 1, 1, tzinfo=UTC), alias="FILMREC_RATED_AT_FLOOR"
    )
    rated_at_max_future_seconds: int = Field(default=300, ge=0, alias="FILMREC_RATED_AT_MAX_FUTURE_SECONDS")

    # Spark.
    spark_master: str = Field(default="local[*]", alias="SPARK_MASTER_URL")
    spark_driver_memory: str = Field(default="4g", alias="SPARK_DRIVER_MEMORY")
    # Not SPARK_JARS_DIR: Spark's launch scripts (spark-class) assign that name to
    # $SPARK_HOME/jars, so an exported one reaches the driver rewritten, and the jars
    # would be fetched into pyspark's own directory at every run.
    spark_jars_dir: Path | None = Field(default=None, alias="FILMREC_JARS_DIR")
    spark_checkpoint_dir: Path | None = Field(default=None, alias="SPARK_CHECKPOINT_DIR")

    # Where the platform's files are (a checkout: ./spark/jobs, ./data/ml-latest-small;
    # the images mount them under /opt/filmrec). None: looked up from the working directory.
    spark_jobs_dir: Path | None = Field(default=None, alias="FILMREC_SPARK_JOBS_DIR")
    movielens_dir: Path | None = Field(default=None, alias="FILMREC_MOVIELENS_DIR")
    # Spark binds its driver here; the one-machine default avoids a host name lookup.
    spark_local_ip: str = Field(default="127.0.0.1", alias="SPARK_LOCAL_IP")
    # The Python of Spark's workers (None: the driver's own interpreter).
    pyspark_python: str | None = Field(default=None, alias="PYSPARK_PYTHON")
    # Threads of the native BLAS inside Spark's JVM: 1, because every core already runs
    # a task (OpenBLAS's own threads on top made a rank-128 ALS fit 3x slower).
    openblas_num_threads: int = Field(default=1, ge=1, alias="OPENBLAS_NUM_THREADS")

    # Training: the search (`default` or `quick`) and its budget per model family
    # (trials, or seconds; unset: the search's own), unless a DAG run says otherwise.
    training_search: str = Field(default="default", alias="FILMREC_TRAINING_SEARCH")
    training_trials: int | None = Field(default=None, ge=1, alias="FILMREC_TRAINING_TRIALS")
    training_search_seconds: float | None = Field(default=None, gt=0, alias="FILMREC_TRAINING_SEARCH_SECONDS")
    # EASE's solve needs 16·n² bytes on the driver for n movies: above this many movies
    # the job skips EASE with a logged reason (20 000 movies: 6 GiB).
    ease_max_items: int = Field(default=20_000, ge=1, alias="FILMREC_EASE_MAX_ITEMS")
    # The API whose model swap `notify_api` waits for (unset: the API's own poll is enough).
    api_url: str | None = Field(default=None, alias="API_URL")

    # MLflow.
    # The platform's one model, whichever family (ALS or EASE) the search chose: the
    # family is each version's `model_family` tag. Registries made under the former
    # name `filmrec-als`: `python -m filmrec registry migrate` (docs/operations.md).
    mlflow_experiment: str = Field(default="filmrec", alias="MLFLOW_EXPERIMENT_NAME")
    model_name: str = Field(default="filmrec", alias="MODEL_NAME")
    champion_alias: str = Field(default="champion", alias="MODEL_ALIAS")

    # Serving.
    api_host: str = Field(default="127.0.0.1", alias="API_HOST")
    api_port: int = Field(default=8000, ge=1, le=65535, alias="API_PORT")
    model_poll_seconds: float = Field(default=30.0, gt=0, alias="MODEL_POLL_SECONDS")
    cache_ttl_seconds: int = Field(default=3600, ge=1, alias="CACHE_TTL_SECONDS")
    dependency_timeout_seconds: float = Field(default=0.5, gt=0, alias="DEPENDENCY_TIMEOUT_SECONDS")

    # Recommendation cache (Redis when REDIS_URL is set). A cache lookup must cost far
    # less than computing the list, so Redis gets a short timeout of its own; after a
    # failure it is left alone for CACHE_RETRY_SECONDS, then probed again.
    cache_enabled: bool = Field(default=True, alias="CACHE_ENABLED")
    redis_timeout_seconds: float = Field(default=0.2, gt=0, alias="REDIS_TIMEOUT_SECONDS")
    cache_retry_seconds: float = Field(default=2.0, gt=0, alias="CACHE_RETRY_SECONDS")
    cache_warm_on_swap: bool = Field(default=True, alias="CACHE_WARM_ON_SWAP")
    cache_warm_k: int = Field(default=10, ge=1, le=100, alias="CACHE_WARM_K")
    # Threads per process that do the cache lookup and the scoring of recommendation
    # requests (title lookups wait on the database and use the shared pool). Scoring
    # holds the GIL: more threads only queue on it (measured: 16 connections, 1 thread
    # ~2.6x the throughput of 40, see README). Scale out with processes (--workers).
    scoring_threads: int = Field(default=1, ge=1, le=64, alias="SCORING_THREADS")
    # In front of the cache, each process keeps this many response bodies for this
    # long (serving/hit_cache.py): a hit there costs no thread hop and no Redis round
    # trip for the list. Short, because its entries are not invalidated, only aged
    # out; 0 turns it off.
    hit_cache_entries: int = Field(default=20_000, ge=0, alias="HIT_CACHE_ENTRIES")
    hit_cache_ttl_seconds: float = Field(default=5.0, ge=0, alias="HIT_CACHE_TTL_SECONDS")
    # Worker processes of `filmrec serve`, the image and the native stack (uvicorn
    # workers). Each polls the registry and consumes the ratings topic itself, so
    # more than one needs the shared online state in Redis (serving/server.py).
    api_workers: int = Field(default=1, ge=1, le=32, alias="API_WORKERS")
    # The real-time loop: the API consumes the ratings topic (when Kafka is configured)
    # and folds each user's ratings that the model lacks into their vector. A user's
    # online ratings live this long after their latest one (longer than the retrain
    # interval: the next model normally contains them first), in Redis when set.
    online_state_enabled: bool = Field(default=True, alias="ONLINE_STATE_ENABLED")
    online_state_ttl_seconds: int = Field(default=86_400, ge=60, alias="ONLINE_STATE_TTL_SECONDS")
    # The API's MLflow calls (alias polls, model downloads): fail fast, the poller retries.
    mlflow_request_timeout_seconds: float = Field(default=10.0, gt=0, alias="MLFLOW_REQUEST_TIMEOUT_SECONDS")

    # Security (serving/api_keys.py, rate_limit.py, request_limits.py; threat model in
    # CONNECTIONS.md). Keys are stored hashed: `name:sha256-hex` entries, comma
    # separated, several at once so a key can be rotated (`python -m filmrec api-key new`).
    api_keys: str | None = Field(default=None, alias="FILMREC_API_KEYS")
    # With no key configured, the embedded default accepts exactly this key; ignored as
    # soon as FILMREC_API_KEYS is set, disabled when set empty.
    demo_api_key: str = Field(default="demo", alias="FILMREC_DEMO_API_KEY")
    # The demo key is public: an API that accepts it on an address other hosts can reach
    # lets anyone write ratings. It refuses to start so (serving/api_keys.py) unless this
    # says it is meant (a throwaway demo inside a private network).
    allow_demo_key_on_network: bool = Field(default=False, alias="FILMREC_ALLOW_DEMO_KEY_ON_NETWORK")
    # Reads (recommendations, movies, model) are open unless this asks for a key too.
    api_keys_for_reads: bool = Field(default=False, alias="FILMREC_API_KEYS_FOR_READS")
    # Per key, for writes: "<count>/<second|minute|hour|day>" (the limits library's
    # notation); shared by every replica through Redis when REDIS_URL is set.
    rate_limit: str = Field(default="60/minute", alias="FILMREC_RATE_LIMIT")
    rate_limit_strategy: Literal["moving-window", "fixed-window"] = Field(
        default="moving-window", alias="FILMREC_RATE_LIMIT_STRATEGY"
    )
    # Per client, for reads (recommendations, movies, model): the client is the API key's
    # name when the request sends a valid key, else its address (behind a proxy, the
    # forwarded one: FILMREC_FORWARDED_ALLOW_IPS). The same notation and the same
    # storage as writes; empty turns it off.
    read_rate_limit: str = Field(default="600/minute", alias="FILMREC_READ_RATE_LIMIT")
    # The addresses whose X-Forwarded-For / X-Forwarded-Proto uvicorn believes (comma
    # separated addresses or networks, `*` for any): the proxy in front of the API only.
    # Anyone else could name any address and so get a fresh read budget per request.
    forwarded_allow_ips: str = Field(default="127.0.0.1", alias="FILMREC_FORWARDED_ALLOW_IPS")
    # Request bodies above this answer 413 before any parsing (a rating is ~150 bytes).
    max_body_bytes: int = Field(default=16_384, ge=256, alias="FILMREC_MAX_BODY_BYTES")
    # Browser origins allowed to call the API (comma separated); empty: no CORS headers.
    cors_origins: str | None = Field(default=None, alias="FILMREC_CORS_ORIGINS")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = getattr(dotenv_settings, "env_file", None)
        return (
            init_settings,
            _EmptyMeansOffEnv(settings_cls, env_ignore_empty=False),
            env_settings,
            _EmptyMeansOffDotEnv(settings_cls, env_file=env_file, env_ignore_empty=False),
            dotenv_settings,
            file_secret_settings,
        )

    @property
    def rated_at_max_future_skew(self) -> timedelta:
        return timedelta(seconds=self.rated_at_max_future_seconds)

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in (self.cors_origins or "").split(",") if origin.strip()]

    @field_validator(
        "var_dir",
        "lakehouse_path",
        "spark_jars_dir",
        "spark_checkpoint_dir",
        "spark_jobs_dir",
        "movielens_dir",
    )
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Spark, MLflow and SQLite all need absolute paths: they may run in another cwd.
        return value.expanduser().resolve() if value is not None else None

    @property
    def jars_dir(self) -> Path:
        return self.spark_jars_dir or self.var_dir / "jars"

    @property
    def checkpoint_dir(self) -> Path:
        return self.spark_checkpoint_dir or self.var_dir / "spark-checkpoints"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'filmrec.db'}"

    @property
    def effective_redis_state_url(self) -> str | None:
        """Where the online state and the rate-limit windows live (None: in each process)."""
        return self.redis_state_url or self.redis_url

    @property
    def effective_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.var_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where a new experiment stores artifacts; None lets a tracking server decide."""
        if self.mlflow_tracking_uri:
            return None
        return (self.var_dir / "mlartifacts").as_uri()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import)."""
    return Settings()
