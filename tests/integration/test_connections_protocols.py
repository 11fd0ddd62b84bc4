"""test-connections.py's standard-library protocol clients against the real services.

PostgreSQL: the shared server (SCRAM-SHA-256, as initdb sets it up) and a throwaway
cluster whose pg_hba.conf asks two roles for MD5 and cleartext passwords. Redis: the
shared server (no password) and a throwaway redis-server with --requirepass. Kafka: the
session's broker, which auto-creates topics, so the check must not.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from devstack.processes import HOST, free_port, port_open, wait_ready
from tests.conftest import require
from tests.integration.service_helpers import postgres_tmpdir
from tests.static.static_helpers import load_connections_script

tc = load_connections_script()


def config(**values: Any) -> Any:
    return tc.Config.load(None, {"PLATFORM_HOST": HOST, **{key: str(value) for key, value in values.items()}})


def postgres_values(port: int, user: str, password: str, database: str) -> dict[str, Any]:
    """The check's three databases all pointed at one database and role."""
    values: dict[str, Any] = {"POSTGRES_PORT": port}
    for prefix in ("APP", "MLFLOW", "AIRFLOW"):
        values |= {
            f"{prefix}_DB_NAME": database,
            f"{prefix}_DB_USER": user,
            f"{prefix}_DB_PASSWORD": password,
        }
    return values


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_postgres(pg_url: str) -> dict[str, Any]:
    """Port, role, password and database of the shared server's app role."""
    url = urlsplit(pg_url)
    return {
        "port": url.port or 5432,
        "user": unquote(url.username or ""),
        "password": unquote(url.password or ""),
        "database": url.path.lstrip("/"),
    }


@pytest.fixture
def auth_requests(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The authentication requests (AuthenticationXXX codes) the server sent, in order."""
    seen: list[int] = []
    original = tc.PostgresConnection.receive

    def receive(self: Any) -> tuple[bytes, bytes]:
        kind, payload = original(self)
        if kind == b"R":
            seen.append(int.from_bytes(payload[:4], "big"))
        return kind, payload

    monkeypatch.setattr(tc.PostgresConnection, "receive", receive)
    return seen


def test_postgres_scram_login_and_select_one(
    shared_postgres: dict[str, Any], auth_requests: list[int]
) -> None:
    result = tc.run_check("postgres", config(**postgres_values(**shared_postgres)))
    assert result.status == tc.OK, result.detail
    db = shared_postgres["database"]
    assert result.detail == f"SELECT 1 ok on {db}, {db}, {db}"
    # Each login: SASL (SCRAM-SHA-256 offered), continue, final (server signature checked), ok.
    scram = [tc.PG_AUTH_SASL, tc.PG_AUTH_SASL_CONTINUE, tc.PG_AUTH_SASL_FINAL, tc.PG_AUTH_OK]
    assert auth_requests == scram * 3


def test_postgres_wrong_password_is_the_servers_error(shared_postgres: dict[str, Any]) -> None:
    values = postgres_values(**{**shared_postgres, "password": "not-the-password"})
    result = tc.run_check("postgres", config(**values))
    assert result.status == tc.FAIL
    user = shared_postgres["user"]
    assert f'FATAL 28P01: password authentication failed for user "{user}"' in result.detail
    assert result.detail.startswith(f"app database '{shared_postgres['database']}': ")


def test_postgres_missing_database_is_named(shared_postgres: dict[str, Any]) -> None:
    missing = f"nosuch_{uuid.uuid4().hex[:8]}"
    values = postgres_values(**shared_postgres) | {"MLFLOW_DB_NAME": missing}
    result = tc.run_check("postgres", config(**values))
    assert result.status == tc.FAIL
    assert result.detail.startswith(f"mlflow database '{missing}': FATAL 3D000:")
    assert f'database "{missing}" does not exist' in result.detail


MD5_ROLE, CLEARTEXT_ROLE = "md5_login", "cleartext_login"


@pytest.fixture(scope="module")
def postgres_with_md5_and_cleartext() -> Iterator[int]:
    """A cluster of this module's own whose pg_hba.conf asks MD5_ROLE for an MD5 password
    and CLEARTEXT_ROLE for a cleartext one (everyone else: SCRAM); returns its port."""
    from psycopg import sql

    from devstack.services import PostgresServer, postgres_bin

    try:
        postgres_bin("initdb")
    except Exception as error:
        require(False, f"PostgreSQL server binaries ({error})")
    root = postgres_tmpdir()
    server = PostgresServer(root / "pg", free_port())
    server.init()
    hba = server.data_dir / "pg_hba.conf"
    # The first matching line wins, so these go before initdb's scram-sha-256 lines.
    hba.write_text(
        f"host all {MD5_ROLE} {HOST}/32 md5\n"
        f"host all {CLEARTEXT_ROLE} {HOST}/32 password\n" + hba.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    server.start()
    try:
        with server._admin_connect() as admin:
            # An MD5 login needs an MD5-stored password (a SCRAM one makes md5 mean SCRAM).
            admin.execute("SET password_encryption = 'md5'")
            for role in (MD5_ROLE, CLEARTEXT_ROLE):
                admin.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(f"{role}-pw")
                    )
                )
        yield server.port
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("role", "method"), [(MD5_ROLE, tc.PG_AUTH_MD5), (CLEARTEXT_ROLE, tc.PG_AUTH_CLEARTEXT)]
)
def test_postgres_md5_and_cleartext_logins(
    postgres_with_md5_and_cleartext: int, role: str, method: int, auth_requests: list[int]
) -> None:
    values = postgres_values(postgres_with_md5_and_cleartext, role, f"{role}-pw", "postgres")
    result = tc.run_check("postgres", config(**values))
    assert result.status == tc.OK, result.detail
    assert auth_requests == [method, tc.PG_AUTH_OK] * 3

    wrong = postgres_values(postgres_with_md5_and_cleartext, role, "wrong", "postgres")
    failed = tc.run_check("postgres", config(**wrong))
    assert f'FATAL 28P01: password authentication failed for user "{role}"' in failed.detail


# --- Redis ------------------------------------------------------------------------------


def test_redis_without_a_password(redis_url: str) -> None:
    url = urlsplit(redis_url)
    values: dict[str, Any] = {"REDIS_PORT": url.port or 6379}
    if url.password:
        values["REDIS_PASSWORD"] = unquote(url.password)
    result = tc.run_check("redis", config(**values))
    assert result.status == tc.OK, result.detail
    assert result.detail.startswith("PONG, redis ")


REDIS_PASSWORD = "redis-test-password"


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server of this module's own that requires REDIS_PASSWORD; returns its port."""
    binary = shutil.which("redis-server")
    require(binary is not None, "`redis-server` (apt-get install -y redis-server)")
    assert binary is not None
    work_dir = tmp_path_factory.mktemp("redis-auth")
    port = free_port()
    log = work_dir / "redis.log"
    command = [binary, "--bind", HOST, "--port", str(port), "--requirepass", REDIS_PASSWORD]
    command += ["--save", "", "--appendonly", "no", "--dir", str(work_dir)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_ready(
            lambda: port_open(port), what=f"redis-server on {port}", timeout=20, log=log, pid=process.pid
        )
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_auth_with_the_configured_password(redis_with_password: int) -> None:
    result = tc.run_check("redis", config(REDIS_PORT=redis_with_password, REDIS_PASSWORD=REDIS_PASSWORD))
    assert result.status == tc.OK, result.detail
    assert result.detail.startswith("PONG, redis ")


def test_redis_without_the_password_says_to_set_it(redis_with_password: int) -> None:
    result = tc.run_check("redis", config(REDIS_PORT=redis_with_password))
    assert result.status == tc.FAIL
    assert result.detail.startswith("NOAUTH") and result.detail.endswith("(set REDIS_PASSWORD)")


def test_redis_wrong_password_fails_without_echoing_it(redis_with_password: int) -> None:
    result = tc.run_check("redis", config(REDIS_PORT=redis_with_password, REDIS_PASSWORD="guess"))
    assert result.status == tc.FAIL
    assert result.detail.startswith("WRONGPASS")
    assert "guess" not in result.detail


# --- Kafka ------------------------------------------------------------------------------


def kafka_config(bootstrap: str, topic: str) -> Any:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return tc.Config.load(None, {"PLATFORM_HOST": host, "KAFKA_PORT": port, "KAFKA_RATINGS_TOPIC": topic})


def broker_topics(bootstrap: str) -> set[str]:
    """Every topic, as a second client sees them (list_topics never creates one)."""
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).topics)


def test_kafka_reports_the_topics_partitions(kafka_bootstrap: str) -> None:
    from filmrec.config import Settings
    from filmrec.ingestion.topics import ensure_topic

    topic = f"ratings-check-{uuid.uuid4().hex[:10]}"
    ensure_topic(Settings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), topic=topic, partitions=3)
    result = tc.run_check("kafka", kafka_config(kafka_bootstrap, topic))
    assert result.status == tc.OK, result.detail
    assert result.detail == f"1 broker(s), topic {topic}: 3 partitions"


def test_kafka_missing_topic_fails_and_is_not_created(kafka_bootstrap: str) -> None:
    topic = f"ratings-missing-{uuid.uuid4().hex[:10]}"
    result = tc.run_check("kafka", kafka_config(kafka_bootstrap, topic))
    assert result.status == tc.FAIL
    assert result.detail == f"1 broker(s) but no topic {topic!r}"
    # The broker auto-creates topics that clients ask for; Metadata v4 lets the check say no.
    assert topic not in broker_topics(kafka_bootstrap)


def test_kafka_api_versions_offer_metadata_v4(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.split(",")[0].rpartition(":")
    with tc.KafkaConnection((host, int(port)), 10) as kafka:
        versions = kafka.api_versions()
    low, high = versions[tc.KAFKA_API_METADATA]
    assert low <= tc.KAFKA_METADATA_VERSION <= high
