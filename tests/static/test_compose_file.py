"""docker-compose.yml: schema, structure and the environment each service gets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tests.static.static_helpers import (
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    documented_variables,
    env_example,
    filled_env,
    interpolate_string,
    load_compose,
    load_compose_raw,
    referenced_variables,
    service_environment,
    service_mounts,
    variable_references,
)

VOLUMES = {
    "zookeeper-data",
    "zookeeper-log",
    "kafka-data",
    "postgres-data",
    "redis-data",
    "spark-data",
    "mlflow-artifacts",
    "prometheus-data",
    "grafana-data",
}
ONE_SHOT = {"kafka-init", "airflow-init"}
LAKEHOUSE_TARGET = "/opt/filmrec/lakehouse"
SECRETS = {
    "POSTGRES_PASSWORD",
    "APP_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_SECRET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_FERNET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
    "FILMREC_API_KEYS",
}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
SPARK_SERVICES = {"spark-master", "spark-worker"}
# Spark drivers that run as services of their own (long-lived streaming queries).
STREAMING_SERVICES = {"ratings-stream"}

# The settings of src/filmrec/config.py each kind of service needs. Every setting must
# appear in at least one set, so a new setting forces a decision here.
_SHARED = {"LAKEHOUSE_PATH", "FILMREC_VAR_DIR", "MLFLOW_TRACKING_URI", "KAFKA_BOOTSTRAP_SERVERS"}
_MODEL = {"MODEL_NAME", "MODEL_ALIAS", "KAFKA_RATINGS_TOPIC", "KAFKA_RATINGS_PARTITIONS"}
_SPARK = {"SPARK_MASTER_URL", "FILMREC_JARS_DIR", "SPARK_CHECKPOINT_DIR"}
# Whoever validates ratings (the API, CSV loads and the Kafka job in Airflow, the stream).
_RATINGS = {"FILMREC_RATED_AT_FLOOR", "FILMREC_RATED_AT_MAX_FUTURE_SECONDS"}
NEEDED_SETTINGS: dict[str, set[str]] = {
    "api": _SHARED
    | _MODEL
    | _RATINGS
    | {
        "DATABASE_URL",
        "REDIS_URL",
        "API_HOST",
        "API_PORT",
        "MODEL_POLL_SECONDS",
        "CACHE_TTL_SECONDS",
        "DEPENDENCY_TIMEOUT_SECONDS",
        "MLFLOW_REQUEST_TIMEOUT_SECONDS",
        "CACHE_ENABLED",
        "CACHE_RETRY_SECONDS",
        "CACHE_WARM_ON_SWAP",
        "CACHE_WARM_K",
        "REDIS_TIMEOUT_SECONDS",
        "SCORING_THREADS",
        "ONLINE_STATE_ENABLED",
        "ONLINE_STATE_TTL_SECONDS",
        "API_WORKERS",
        "HIT_CACHE_ENTRIES",
        "HIT_CACHE_TTL_SECONDS",
        "FILMREC_API_KEYS",
        "FILMREC_DEMO_API_KEY",
        "FILMREC_ALLOW_DEMO_KEY_ON_NETWORK",
        "FILMREC_API_KEYS_FOR_READS",
        "FILMREC_RATE_LIMIT",
        "FILMREC_RATE_LIMIT_STRATEGY",
        "FILMREC_MAX_BODY_BYTES",
        "FILMREC_CORS_ORIGINS",
        "FILMREC_FORWARDED_ALLOW_IPS",
    },
    **dict.fromkeys(
        AIRFLOW_SERVICES,
        _SHARED
        | _MODEL
        | _SPARK
        | _RATINGS
        | {
            "DATABASE_URL",
            "SPARK_DRIVER_MEMORY",
            "MLFLOW_EXPERIMENT_NAME",
            "API_URL",
            "FILMREC_TRAINING_SEARCH",
            "FILMREC_TRAINING_TRIALS",
            "FILMREC_TRAINING_SEARCH_SECONDS",
            "FILMREC_EASE_MAX_ITEMS",
            "PYSPARK_PYTHON",
            "OPENBLAS_NUM_THREADS",
            "FILMREC_SPARK_JOBS_DIR",
            "FILMREC_MOVIELENS_DIR",
        },
    ),
    **dict.fromkeys(SPARK_SERVICES, _SHARED | _SPARK),
    **dict.fromkeys(
        STREAMING_SERVICES,
        _SHARED
        | _MODEL
        | _SPARK
        | _RATINGS
        | {"SPARK_DRIVER_MEMORY", "INGEST_TRIGGER_SECONDS", "SPARK_LOCAL_IP"},
    ),
}

# Settings whose embedded default is right for every service, so Compose leaves them
# unset on purpose.
DEFAULT_EVERYWHERE = {
    "DATABASE_STATEMENT_TIMEOUT_SECONDS",
    "DATABASE_KEEPALIVE_IDLE_SECONDS",
    "DATABASE_KEEPALIVE_INTERVAL_SECONDS",
    "DATABASE_KEEPALIVE_COUNT",
    "MIGRATION_LOCK_TIMEOUT_SECONDS",
    # Unset, it is REDIS_URL: the Compose platform keeps the state on its one Redis.
    "REDIS_STATE_URL",
    # Reads per client: the embedded 600/minute is the platform's limit too.
    "FILMREC_READ_RATE_LIMIT",
}

# Settings a service gets that may rightly be empty: empty means "off" (no CORS origin;
# the demo key disabled, FILMREC_API_KEYS being required).
MAY_BE_EMPTY = {"FILMREC_CORS_ORIGINS", "FILMREC_DEMO_API_KEY"}

# Container ports of the platform (the same numbers are published on the host).
CONTAINER_PORTS = {
    "zookeeper": {2181},
    "kafka": {9092},
    "postgres": {5432},
    "redis": {6379},
    "spark-master": {7077, 8081},
    "spark-worker": {8082},
    "mlflow": {5000},
    "airflow-apiserver": {8080},
    # The API replicas publish nothing: api-proxy publishes the API's port for all of them.
    "api": set(),
    "api-proxy": {8000},
    "prometheus": {9090},
    "grafana": {3000},
}


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return filled_env(env_example())


@pytest.fixture(scope="module")
def compose(env: dict[str, str]) -> dict[str, Any]:
    return load_compose(env)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def config_aliases() -> set[str]:
    text = (ROOT / "src" / "filmrec" / "config.py").read_text(encoding="utf-8")
    return set(re.findall(r'alias="([A-Z0-9_]+)"', text))


def test_validates_against_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((ROOT / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_every_variable_has_an_entry_in_env_example() -> None:
    used = referenced_variables(load_compose_raw())
    missing = used - documented_variables(ENV_EXAMPLE.read_text(encoding="utf-8"))
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_secrets_are_required_and_not_committed() -> None:
    references = variable_references(load_compose_raw())
    example = env_example()
    for secret in SECRETS:
        operators = {operator for name, operator in references if name == secret}
        assert operators == {":?"}, f"{secret}: use ${{{secret}:?message}} everywhere, found {operators}"
        assert example.get(secret, None) == "", f"{secret} must be empty in .env.example"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_an_unset_secret_stops_compose(env: dict[str, str], secret: str) -> None:
    with pytest.raises(InterpolationError, match=secret):
        load_compose({**env, secret: ""})


def test_env_example_keeps_container_urls_out() -> None:
    # pydantic-settings reads .env on the host too: container host names would break it.
    leaked = {"DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "KAFKA_BOOTSTRAP_SERVERS"} & set(
        env_example()
    )
    assert not leaked, f"{sorted(leaked)} belong in docker-compose.yml, not .env.example"


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "value", "EMPTY": ""}
    assert interpolate_string("${SET:-x} ${EMPTY:-x} ${EMPTY-x} ${UNSET-x} $$SET $SET", env) == (
        "value x  x $SET value"
    )
    assert interpolate_string("${SET:+alt}${EMPTY:+alt}", env) == "alt"
    with pytest.raises(InterpolationError, match="EMPTY: needed"):
        interpolate_string("${EMPTY:?needed}", env)


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert healthcheck.get("test"), f"{name} healthcheck has no test"


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long syntax with conditions"
        for dependency, options in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert options.get("condition") == expected, f"{name} -> {dependency}: use {expected}"


def test_one_shot_jobs_do_not_restart(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name


def test_named_volumes_are_exactly_the_platform_ones(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert set(compose["volumes"]) == VOLUMES
    used = {
        source
        for service in services.values()
        for source, _ in service_mounts(service)
        if source and not source.startswith((".", "/"))
    }
    assert used == VOLUMES, f"undeclared: {used - VOLUMES}, unused: {VOLUMES - used}"


def test_lakehouse_is_mounted_at_one_path_everywhere(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        targets = {
            target for source, target in service_mounts(service) if source.rstrip("/") == "./lakehouse"
        }
        assert targets <= {LAKEHOUSE_TARGET}, f"{name} mounts ./lakehouse at {targets}"
        lakehouse_path = service_environment(service).get("LAKEHOUSE_PATH")
        if lakehouse_path is not None:
            assert lakehouse_path == LAKEHOUSE_TARGET, name
            assert targets == {LAKEHOUSE_TARGET}, f"{name} sets LAKEHOUSE_PATH but does not mount it"
    mounted = {
        name
        for name, service in services.items()
        if LAKEHOUSE_TARGET in dict(service_mounts(service)).values()
    }
    assert {"api", *AIRFLOW_SERVICES, *SPARK_SERVICES, *STREAMING_SERVICES} <= mounted


def test_var_dir_is_shared_where_spark_runs(services: dict[str, dict[str, Any]]) -> None:
    # Checkpoints written by executors are read by drivers: same volume, same path.
    for name in {"api", *AIRFLOW_SERVICES, *SPARK_SERVICES, *STREAMING_SERVICES}:
        environment = service_environment(services[name])
        var_dir = environment["FILMREC_VAR_DIR"]
        assert ("spark-data", var_dir) in service_mounts(services[name]), name
        checkpoint = environment.get("SPARK_CHECKPOINT_DIR")
        if checkpoint is not None:
            assert checkpoint.startswith(var_dir + "/"), name


def test_every_setting_is_assigned_to_a_service() -> None:
    aliases = config_aliases()
    assigned = set().union(*NEEDED_SETTINGS.values()) | DEFAULT_EVERYWHERE
    assert aliases, "no alias found in src/filmrec/config.py"
    assert assigned <= aliases, f"not settings of config.py: {sorted(assigned - aliases)}"
    assert aliases <= assigned, f"decide which services need {sorted(aliases - assigned)}"


@pytest.mark.parametrize("service_name", sorted(NEEDED_SETTINGS))
def test_services_get_the_settings_they_need(services: dict[str, dict[str, Any]], service_name: str) -> None:
    environment = service_environment(services[service_name])
    given = {key for key, value in environment.items() if value or key in MAY_BE_EMPTY}
    missing = NEEDED_SETTINGS[service_name] - given
    assert not missing, f"{service_name} lacks {sorted(missing)}"


def test_service_urls_point_at_compose_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        environment = service_environment(service)
        hosts = {
            urlsplit(environment[key]).hostname
            for key in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI")
            if key in environment
        }
        if "KAFKA_BOOTSTRAP_SERVERS" in environment:
            hosts |= {server.split(":")[0] for server in environment["KAFKA_BOOTSTRAP_SERVERS"].split(",")}
        assert hosts <= set(services), f"{name} points at unknown hosts {hosts - set(services)}"


def test_the_native_stack_runs_the_streaming_service_as_compose_does(
    services: dict[str, dict[str, Any]], env: dict[str, str], tmp_path: Path
) -> None:
    from devstack.stack import SPARK_JOBS, NativeStack, Ports

    stack = NativeStack(
        root=tmp_path / "stack", ports=Ports(), lakehouse=tmp_path / "lakehouse", var_dir=tmp_path
    )
    daemon = stack.ratings_stream()
    native = daemon.command
    compose = [str(part) for part in services["ratings-stream"]["command"]]

    def option(command: list[str], name: str) -> list[str]:
        return [command[i + 1] for i, part in enumerate(command) if part == name]

    def job_args(command: list[str], script: str) -> list[str]:
        args = command[command.index(script) + 1 :]
        at = args.index("--result-path")
        return args[:at] + args[at + 2 :]

    assert Path(native[0]).name == compose[0] == "spark-submit"
    assert option(native, "--deploy-mode") == option(compose, "--deploy-mode") == ["client"]
    assert option(native, "--total-executor-cores") == option(compose, "--total-executor-cores")
    assert option(native, "--total-executor-cores") == [env["RATINGS_STREAM_CORES"]]
    assert option(native, "--conf") == option(compose, "--conf")
    assert job_args(native, str(SPARK_JOBS / "ingest_ratings.py")) == ["--continuous"]
    assert job_args(compose, "/opt/filmrec/spark/jobs/ingest_ratings.py") == ["--continuous"]
    assert _seconds(str(services["ratings-stream"]["stop_grace_period"])) == daemon.stop_timeout
    assert not (tmp_path / "stack").exists(), "describing the daemon must not write anything"


def test_api_waits_for_what_it_uses(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "mlflow", "kafka-init"} <= set(services["api"]["depends_on"])


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image name"
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image}"
        if "build" not in service:
            assert re.search(r"\d", tag), f"{name}: {image} is not a version tag"


def test_ports_are_the_platform_ports_on_the_bind_address(
    services: dict[str, dict[str, Any]], env: dict[str, str]
) -> None:
    for name, expected in CONTAINER_PORTS.items():
        published = [str(port).split(":") for port in services[name].get("ports", [])]
        assert all(len(parts) == 3 and parts[0] == env["BIND_ADDRESS"] for parts in published), name
        assert {int(parts[2]) for parts in published} == expected, name
        # With the .env.example values the host port is the container port.
        assert all(parts[1] == parts[2] for parts in published), name


def test_one_network_and_optional_uis_behind_profiles(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert set(compose.get("networks", {})) == {"default"}
    assert all("networks" not in service for service in services.values())
    assert services["kafka-ui"].get("profiles") == ["ui"]
    # One ingestion mode per deployment: the continuous job only when asked for.
    assert all(services[name].get("profiles") == ["streaming"] for name in STREAMING_SERVICES)


def _seconds(duration: str) -> float:
    """A Compose duration such as 2m, 90s or 1m30s, in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.mark.parametrize("name", sorted(STREAMING_SERVICES))
def test_streaming_jobs_restart_and_stop_between_batches(
    services: dict[str, dict[str, Any]], env: dict[str, str], name: str
) -> None:
    service = services[name]
    assert service.get("restart") == "unless-stopped"
    # SIGTERM lets the running micro-batch finish: give it well over Compose's 10 s.
    assert _seconds(str(service.get("stop_grace_period", "10s"))) >= 60, name
    command = [str(part) for part in service["command"]]
    assert command[0] == "spark-submit" and "--continuous" in command
    assert "/opt/filmrec/spark/jobs/ingest_ratings.py" in command
    assert ("./spark/jobs", "/opt/filmrec/spark/jobs") in service_mounts(service)
    # It keeps its executor cores for good: never all of the worker's.
    cores = int(command[command.index("--total-executor-cores") + 1])
    assert 1 <= cores < int(env["SPARK_WORKER_CORES"]), name
    # The healthcheck reads the status file's heartbeat; it must be a continuous run.
    assert service["healthcheck"]["test"][-3:] == ["filmrec.ingestion.ingest_status", "--mode", "continuous"]
    # Executors connect back to the driver: its name must resolve on the network.
    environment = service_environment(service)
    assert service["hostname"] == environment["SPARK_LOCAL_HOSTNAME"] == name


def test_shared_settings_are_anchors() -> None:
    raw = load_compose_raw()
    assert {"x-filmrec-env", "x-airflow-common", "x-spark-common"} <= set(raw)


def test_env_example_documents_every_secret_for_generation() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "init.sh" in text
    init_sh = (ROOT / "init.sh").read_text(encoding="utf-8")
    init_ps1 = (ROOT / "init.ps1").read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret in init_sh, f"init.sh does not generate {secret}"
        assert f"'{secret}'" in init_ps1, f"init.ps1 does not generate {secret}"


def test_override_example_is_valid_compose() -> None:
    schema = json.loads((ROOT / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    override = yaml.safe_load((ROOT / "docker-compose.override.yml.example").read_text(encoding="utf-8"))
    jsonschema.validate(override, schema, cls=jsonschema.Draft7Validator)
    assert set(override["services"]) <= set(load_compose_raw()["services"])


def test_the_api_has_real_keys_and_no_demo_key(services: dict[str, dict[str, Any]]) -> None:
    from filmrec.config import Settings
    from filmrec.serving.api_keys import ApiKeyring

    environment = service_environment(services["api"])
    assert environment["FILMREC_DEMO_API_KEY"] == ""
    # What the API would accept with the example's values (the key filled in by the fixture).
    keyring = ApiKeyring.from_settings(
        Settings(_env_file=None, FILMREC_API_KEYS=environment["FILMREC_API_KEYS"], FILMREC_DEMO_API_KEY="")
    )
    assert keyring.keys and not keyring.demo and keyring.identify("demo") is None


def test_the_api_scales_behind_one_proxy_port(
    services: dict[str, dict[str, Any]], env: dict[str, str]
) -> None:
    """Several API replicas (deploy.replicas, or --scale api=N) behind api-proxy's one port."""
    api, proxy = services["api"], services["api-proxy"]
    # A published host port would stop a second replica from starting; so would a fixed name.
    assert "ports" not in api and "container_name" not in api
    assert int(api["deploy"]["replicas"]) == int(env["API_REPLICAS"]) >= 1
    assert [str(port) for port in api["expose"]] == ["8000"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    mounts = [str(volume) for volume in proxy["volumes"]]
    assert any(m.startswith("./docker/api-proxy/default.conf:/etc/nginx/conf.d/") for m in mounts), mounts
    # More than one process in all needs the shared state: the platform's API has Redis.
    assert api["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_the_proxy_config_reaches_every_replica() -> None:
    conf = (ROOT / "docker" / "api-proxy" / "default.conf").read_text(encoding="utf-8")
    directives = [line.split("#")[0].strip() for line in conf.splitlines()]
    directives = [line for line in directives if line]
    # Docker's DNS, re-resolved: replicas started or replaced later get traffic too.
    assert any(line.startswith("resolver 127.0.0.11") for line in directives)
    assert any(line.startswith("server api:8000") and " resolve" in line for line in directives)
    assert "listen 8000;" in directives and "proxy_pass http://filmrec_api;" in directives
    # Keep-alive to the replicas needs HTTP/1.1 and no Connection: close.
    assert "proxy_http_version 1.1;" in directives and 'proxy_set_header Connection "";' in directives
    # The API believes X-Forwarded-For from any peer (FILMREC_FORWARDED_ALLOW_IPS=*: the
    # replicas publish no port), so the proxy must overwrite it, never append the client's.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in directives
    assert not any("$proxy_add_x_forwarded_for" in line for line in directives)


def test_the_api_believes_forwarded_addresses_only_behind_the_proxy(
    services: dict[str, dict[str, Any]],
) -> None:
    api = services["api"]
    assert api["environment"]["FILMREC_FORWARDED_ALLOW_IPS"] == "*"
    assert "ports" not in api  # reachable through api-proxy alone
