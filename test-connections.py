#!/usr/bin/env python3
"""Check every service of the filmrec platform at the protocol level.

Each check speaks the service's own protocol (ZooKeeper four-letter words, the Kafka
wire protocol, PostgreSQL's frontend/backend protocol, RESP, HTTP APIs) rather than
only opening a port, so "healthy" means "usable by the platform". Only the Python
standard library is needed (3.9+), so the system python3 runs it. Host ports and
credentials come from the same .env file as docker-compose.yml, overridden by the
environment; the defaults are localhost and the platform's standard ports, so the
script also checks a native stack.

    python3 test-connections.py                    # one pass, table output
    python3 test-connections.py --wait 300         # retry until settled or 300 s
    python3 test-connections.py --only kafka,api --json

What is checked:
    kafka     ApiVersions, then Metadata v4 for KAFKA_RATINGS_TOPIC (default ratings),
              without auto-creating it: broker count and the topic's partition count.
    postgres  StartupMessage, SCRAM-SHA-256 / MD5 / cleartext authentication, then
              `SELECT 1`, on each of the app, mlflow and airflow databases.
    redis     AUTH with REDIS_PASSWORD when set, PING, INFO server.
    mlflow    /health and the registry; basic auth with MLFLOW_TRACKING_USERNAME and
              MLFLOW_TRACKING_PASSWORD when both are set.

Each service ends in one of four states (the table's status column, "status" in JSON):
    OK            the check passed.
    FAIL          it did not; the detail says why.
    no model yet  only the API: /ready answers 503 because no model is loaded while
                  the model registry answers, as after a fresh ./init.sh. Accepted
                  unless --require-model is given.
    not started   the service is named in FILMREC_NOT_STARTED
                  ("service=reason;service2=reason2"): the run left it out on purpose.
                  It is not checked, and the reason is the detail.

Exit code: 0 when every service is OK or in an accepted state (not started; no model
yet without --require-model), 1 otherwise, 2 on usage errors. --wait stops waiting
as soon as that holds. In --json output "healthy" at the top is that verdict, and each
result's "healthy" is true only for OK.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import socket
import stringprep
import struct
import sys
import time
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")
S = TypeVar("S", bound="Session")

DEFAULT_HOST = "localhost"
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_INTERVAL_SECONDS = 5.0
# Far above any answer the checks ask for (metadata of one topic, one row, INFO server).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# Published port of each service: (variable in .env, default).
PORTS: dict[str, tuple[str, int]] = {
    "zookeeper": ("ZOOKEEPER_PORT", 2181),
    "kafka": ("KAFKA_PORT", 9092),
    "postgres": ("POSTGRES_PORT", 5432),
    "redis": ("REDIS_PORT", 6379),
    "spark": ("SPARK_MASTER_WEBUI_PORT", 8081),
    "mlflow": ("MLFLOW_PORT", 5000),
    "airflow": ("AIRFLOW_PORT", 8080),
    "api": ("API_PORT", 8000),
    "prometheus": ("PROMETHEUS_PORT", 9090),
    "grafana": ("GRAFANA_PORT", 3000),
}

# The databases docker/postgres creates: (label, name var, user var, password var, default).
DATABASES: tuple[tuple[str, str, str, str, str], ...] = (
    ("app", "APP_DB_NAME", "APP_DB_USER", "APP_DB_PASSWORD", "filmrec"),
    ("mlflow", "MLFLOW_DB_NAME", "MLFLOW_DB_USER", "MLFLOW_DB_PASSWORD", "mlflow"),
    ("airflow", "AIRFLOW_DB_NAME", "AIRFLOW_DB_USER", "AIRFLOW_DB_PASSWORD", "airflow"),
)


# The states a service ends in (the docstring says what each means).
OK = "OK"
FAIL = "FAIL"
NO_MODEL_YET = "no model yet"
NOT_STARTED = "not started"

NOT_STARTED_VARIABLE = "FILMREC_NOT_STARTED"
MODEL_HINT = "run make compose-bootstrap"


class CheckFailed(Exception):
    """The service answered, or failed to, in a way that makes it unhealthy."""


class NoModelYet(Exception):
    """The API answers and its registry too, but it serves no model yet."""


@dataclass(frozen=True)
class Result:
    service: str
    endpoint: str
    status: str
    latency_ms: float
    detail: str

    @property
    def healthy(self) -> bool:
        return self.status == OK

    def settled(self, *, require_model: bool) -> bool:
        """Whether this result lets the run pass (and ends --wait for this service)."""
        if self.status == NO_MODEL_YET:
            return not require_model
        return self.status in (OK, NOT_STARTED)


# --- configuration ---------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """The KEY=VALUE pairs of a dotenv file (comments, blank lines, `export` and quotes handled)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an inline comment after an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Config:
    """Where the services are and how to log in: .env values overridden by the environment."""

    values: Mapping[str, str]
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def load(
        cls,
        env_file: Path | None,
        environ: Mapping[str, str],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Config:
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update(parse_env_file(env_file.read_text(encoding="utf-8")))
        values.update(environ)
        return cls(values=values, timeout=timeout)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key) or default

    def require(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise CheckFailed(f"{key} is not set (in the environment or the env file)")
        return value

    def host(self, service: str) -> str:
        """CHECK_<SERVICE>_HOST, else PLATFORM_HOST, else localhost."""
        return self.get(f"CHECK_{service.upper()}_HOST") or self.get("PLATFORM_HOST", DEFAULT_HOST)

    def port(self, service: str) -> int:
        key, default = PORTS[service]
        raw = self.get(key, str(default))
        try:
            return int(raw)
        except ValueError as error:
            raise CheckFailed(f"{key}={raw!r} is not a port number") from error

    def address(self, service: str) -> str:
        return f"{self.host(service)}:{self.port(service)}"

    def url(self, service: str, path: str) -> str:
        return f"http://{self.address(service)}{path}"


# --- protocol helpers -----------------------------------------------------------------


def four_letter_word(host: str, port: int, word: str, timeout: float) -> str:
    """Send a ZooKeeper four-letter command and return the whole reply."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(word.encode("ascii"))
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def http_get(url: str, timeout: float, *, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL and return (status, body); HTTP error statuses are returned, not raised."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_json(url: str, timeout: float, *, auth: tuple[str, str] | None = None) -> Any:
    status, body = http_get(url, timeout, auth=auth)
    if status != 200:
        raise CheckFailed(f"GET {url}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError as error:
        raise CheckFailed(f"GET {url}: not JSON") from error


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """`size` bytes from a socket's file, or CheckFailed when the server hangs up first."""
    if not 0 <= size <= MAX_MESSAGE_BYTES:  # another protocol on this port, read as a length
        raise CheckFailed(f"implausible message length {size}: is this service on this port?")
    data = stream.read(size)
    if len(data) != size:
        raise CheckFailed("the server closed the connection")
    return data


class Session:
    """A client's TCP connection and its buffered reader, closed together."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.conn = socket.create_connection(address, timeout)
        self.stream = self.conn.makefile("rb")

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stream.close()
        self.conn.close()


class Cursor:
    """Big-endian fields read in order from one binary message (Kafka, PostgreSQL)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise CheckFailed("malformed response (shorter than its fields)")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, layout: str) -> Any:
        values = struct.unpack(">" + layout, self.take(struct.calcsize(">" + layout)))
        return values[0] if len(values) == 1 else values

    def int8(self) -> int:
        return int(self.unpack("b"))

    def int16(self) -> int:
        return int(self.unpack("h"))

    def int32(self) -> int:
        return int(self.unpack("i"))

    def string(self) -> str | None:
        """A Kafka (nullable) string: int16 length, -1 for null."""
        size = self.int16()
        return None if size < 0 else self.take(size).decode("utf-8", errors="replace")

    def array(self, read_item: Callable[[], T]) -> list[T]:
        """A Kafka array: int32 count (-1 for null), then the items."""
        return [read_item() for _ in range(max(0, self.int32()))]

    def cstring(self) -> str:
        """A PostgreSQL NUL-terminated string."""
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise CheckFailed("malformed response (unterminated string)")
        text = self.data[self.offset : end].decode("utf-8", errors="replace")
        self.offset = end + 1
        return text


# Kafka: the requests and versions used are in every broker from 1.0 through 4.x
# (Kafka 4.0 removed Metadata v0-v3; ApiVersions v0 stays for bootstrapping clients).
KAFKA_API_METADATA = 3
KAFKA_API_VERSIONS = 18
KAFKA_METADATA_VERSION = 4  # the first with allow_auto_topic_creation: a check must not create
KAFKA_CLIENT_ID = b"filmrec-test-connections"
KAFKA_ERRORS = {
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    5: "LEADER_NOT_AVAILABLE",
    17: "INVALID_TOPIC_EXCEPTION",
    29: "TOPIC_AUTHORIZATION_FAILED",
    35: "UNSUPPORTED_VERSION",
}


def kafka_error(code: int) -> str:
    return f"{KAFKA_ERRORS.get(code, 'error')} ({code})"


@dataclass(frozen=True)
class KafkaTopic:
    error_code: int
    partitions: int


@dataclass(frozen=True)
class KafkaMetadata:
    brokers: int
    topics: dict[str, KafkaTopic]


class KafkaConnection(Session):
    """Requests over one socket to one broker (request header v1, response header v0)."""

    correlation_id = 0

    def request(self, api_key: int, api_version: int, body: bytes) -> Cursor:
        self.correlation_id += 1
        header = struct.pack(">hhih", api_key, api_version, self.correlation_id, len(KAFKA_CLIENT_ID))
        message = header + KAFKA_CLIENT_ID + body
        self.conn.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", read_exactly(self.stream, 4))
        response = Cursor(read_exactly(self.stream, size))
        if response.int32() != self.correlation_id:
            raise CheckFailed("response to another request (correlation id mismatch)")
        return response

    def api_versions(self) -> dict[int, tuple[int, int]]:
        """ApiVersions v0: {api key: (min version, max version)}."""
        response = self.request(KAFKA_API_VERSIONS, 0, b"")
        error_code = response.int16()
        if error_code:
            raise CheckFailed(f"ApiVersions: {kafka_error(error_code)}")
        entries = response.array(lambda: response.unpack("hhh"))
        return {key: (low, high) for key, low, high in entries}

    def metadata(self, topic: str) -> KafkaMetadata:
        """Metadata v4 for one topic, asking the broker not to auto-create it."""
        name = topic.encode("utf-8")
        body = struct.pack(">ih", 1, len(name)) + name + struct.pack(">?", False)
        response = self.request(KAFKA_API_METADATA, KAFKA_METADATA_VERSION, body)
        response.int32()  # throttle_time_ms

        def broker() -> None:
            response.int32()  # node_id
            response.string()  # host
            response.int32()  # port
            response.string()  # rack

        def partition() -> None:
            response.int16()  # error_code
            response.int32()  # partition_index
            response.int32()  # leader_id
            response.array(response.int32)  # replica_nodes
            response.array(response.int32)  # isr_nodes

        def topic_entry() -> tuple[str, KafkaTopic]:
            error_code = response.int16()
            topic_name = response.string() or ""
            response.int8()  # is_internal
            return topic_name, KafkaTopic(error_code, len(response.array(partition)))

        brokers = response.array(broker)
        response.string()  # cluster_id
        response.int32()  # controller_id
        return KafkaMetadata(len(brokers), dict(response.array(topic_entry)))


# PostgreSQL: protocol 3.0 (every server since 7.4). Authentication request codes:
PG_PROTOCOL_3_0 = 196608
PG_AUTH_OK, PG_AUTH_CLEARTEXT, PG_AUTH_MD5 = 0, 3, 5
PG_AUTH_SASL, PG_AUTH_SASL_CONTINUE, PG_AUTH_SASL_FINAL = 10, 11, 12
PG_AUTH_NAMES = {2: "Kerberos V5", 6: "SCM credentials", 7: "GSSAPI", 9: "SSPI"}
SCRAM_MECHANISM = "SCRAM-SHA-256"


def saslprep(password: str) -> bytes:
    """The password as SCRAM hashes it (RFC 4013), as PostgreSQL prepares it.

    PostgreSQL falls back to the raw UTF-8 bytes when a password is not valid SASLprep
    input (prohibited or unassigned characters, bad bidi), and so does this.
    """
    raw = password.encode("utf-8")
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_a1,
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
    )
    if not prepared or any(table(char) for char in prepared for table in prohibited):
        return raw
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))
    ):
        return raw
    return prepared.encode("utf-8")


class ScramSha256:
    """The client side of SCRAM-SHA-256 without channel binding (RFC 5802, RFC 7677).

    PostgreSQL ignores the SCRAM user name (the startup message names the user), so it
    is empty there; the RFC's test vector sets one.
    """

    def __init__(self, password: str, *, user: str = "", nonce: str | None = None) -> None:
        self.password = saslprep(password)
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        self.client_first_bare = f"n={escaped},r={self.nonce}"
        self.server_signature = b""

    def client_first(self) -> bytes:
        return f"n,,{self.client_first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8")
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        try:
            nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        except (KeyError, ValueError) as error:
            raise CheckFailed(f"SCRAM: malformed server-first-message {text!r}") from error
        if not nonce.startswith(self.nonce) or nonce == self.nonce:
            raise CheckFailed("SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        final_without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.client_first_bare},{text},{final_without_proof}".encode()
        signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
        proof = (int.from_bytes(client_key, "big") ^ int.from_bytes(signature, "big")).to_bytes(32, "big")
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth_message, "sha256")
        return f"{final_without_proof},p={base64.b64encode(proof).decode('ascii')}".encode()

    def verify_server_final(self, server_final: bytes) -> None:
        """The server proves it knows the password too (else it could be anyone)."""
        fields = dict(part.split("=", 1) for part in server_final.decode("utf-8").split(",") if "=" in part)
        if "e" in fields:
            raise CheckFailed(f"SCRAM: server error {fields['e']}")
        if not hmac.compare_digest(base64.b64decode(fields.get("v", "")), self.server_signature):
            raise CheckFailed("SCRAM: the server's signature does not match")


def pg_error(payload: bytes) -> str:
    """An ErrorResponse as one line: severity, SQLSTATE, message, detail and hint."""
    fields: dict[str, str] = {}
    cursor = Cursor(payload)
    while cursor.offset < len(payload) and payload[cursor.offset] != 0:
        code = chr(payload[cursor.offset])
        cursor.offset += 1
        fields[code] = cursor.cstring()
    text = f"{fields.get('V') or fields.get('S', 'ERROR')} {fields.get('C', '?')}: {fields.get('M', '')}"
    extras = [fields[code] for code in ("D", "H") if fields.get(code)]
    return text + (f" ({'; '.join(extras)})" if extras else "")


class PostgresConnection(Session):
    """One session: the startup and authentication exchange, then simple queries."""

    def send(self, kind: bytes, payload: bytes) -> None:
        self.conn.sendall(kind + struct.pack(">i", len(payload) + 4) + payload)

    def receive(self) -> tuple[bytes, bytes]:
        """The next message (type, payload); an ErrorResponse raises CheckFailed."""
        kind = read_exactly(self.stream, 1)
        (size,) = struct.unpack(">i", read_exactly(self.stream, 4))
        if size < 4:
            raise CheckFailed(f"malformed message {kind!r} of length {size}")
        payload = read_exactly(self.stream, size - 4)
        if kind == b"E":
            raise CheckFailed(pg_error(payload))
        return kind, payload

    def start(self, *, user: str, password: str, database: str) -> None:
        """StartupMessage and authentication, up to the first ReadyForQuery."""
        parameters = {"user": user, "database": database, "application_name": "test-connections"}
        body = b"".join(f"{key}\0{value}\0".encode() for key, value in parameters.items()) + b"\0"
        message = struct.pack(">i", PG_PROTOCOL_3_0) + body
        self.conn.sendall(struct.pack(">i", len(message) + 4) + message)
        scram: ScramSha256 | None = None
        while True:
            kind, payload = self.receive()
            if kind == b"Z":  # ReadyForQuery
                return
            if kind != b"R":  # ParameterStatus, BackendKeyData, NoticeResponse
                continue
            cursor = Cursor(payload)
            code = cursor.int32()
            if code == PG_AUTH_OK:
                continue
            if code == PG_AUTH_CLEARTEXT:
                self.send(b"p", password.encode() + b"\0")
            elif code == PG_AUTH_MD5:
                salt = cursor.take(4)
                inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                self.send(b"p", b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0")
            elif code == PG_AUTH_SASL:
                offered = [name for name in payload[4:].split(b"\0") if name]
                if SCRAM_MECHANISM.encode() not in offered:
                    names = ", ".join(name.decode(errors="replace") for name in offered)
                    raise CheckFailed(f"the server offers only SASL {names}")
                scram = ScramSha256(password)
                first = scram.client_first()
                self.send(b"p", SCRAM_MECHANISM.encode() + b"\0" + struct.pack(">i", len(first)) + first)
            elif code == PG_AUTH_SASL_CONTINUE and scram is not None:
                self.send(b"p", scram.client_final(payload[4:]))
            elif code == PG_AUTH_SASL_FINAL and scram is not None:
                scram.verify_server_final(payload[4:])
            else:
                method = PG_AUTH_NAMES.get(code, f"request {code}")
                raise CheckFailed(f"unsupported authentication method: {method}")

    def query(self, sql: str) -> list[list[str | None]]:
        """A simple Query: its rows as text, read up to ReadyForQuery."""
        self.send(b"Q", sql.encode() + b"\0")
        rows: list[list[str | None]] = []
        while True:
            kind, payload = self.receive()
            if kind == b"Z":
                return rows
            if kind == b"D":  # DataRow: int16 columns, then int32 length (-1 NULL) + bytes each
                cursor = Cursor(payload)
                row: list[str | None] = []
                for _ in range(cursor.int16()):
                    size = cursor.int32()
                    row.append(None if size < 0 else cursor.take(size).decode("utf-8", errors="replace"))
                rows.append(row)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # the answer is in; a hang-up now changes nothing
            self.send(b"X", b"")  # Terminate


# Redis: RESP2, as every server speaks it before HELLO 3.
class RedisError(CheckFailed):
    """An error reply (-ERR, -NOAUTH, -WRONGPASS, ...)."""


class RedisConnection(Session):
    """Commands as RESP arrays of bulk strings; replies parsed whole."""

    def command(self, *args: str) -> Any:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode("utf-8")
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.conn.sendall(b"".join(parts))
        return self.reply()

    def reply(self) -> Any:
        line = self.stream.readline()
        if not line.endswith(b"\r\n"):
            raise CheckFailed("the server closed the connection")
        kind, rest = line[:1], line[1:-2].decode("utf-8", errors="replace")
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RedisError(rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else read_exactly(self.stream, size + 2)[:-2].decode("utf-8", "replace")
        if kind == b"*":
            return [self.reply() for _ in range(max(0, int(rest)))]
        raise CheckFailed(f"not a RESP reply: {line[:40]!r}")


# --- checks: each returns a detail string or raises -------------------------------------


def check_zookeeper(config: Config) -> str:
    host, port = config.host("zookeeper"), config.port("zookeeper")
    reply = four_letter_word(host, port, "ruok", config.timeout)
    if reply.strip() != "imok":
        raise CheckFailed(f"ruok answered {reply.strip()!r} (is ruok in 4lw.commands.whitelist?)")
    stats = four_letter_word(host, port, "srvr", config.timeout)
    modes = [line.split(":", 1)[1].strip() for line in stats.splitlines() if line.startswith("Mode:")]
    return f"imok, mode {modes[0] if modes else '?'}"


def check_kafka(config: Config) -> str:
    topic = config.get("KAFKA_RATINGS_TOPIC", "ratings")
    with KafkaConnection((config.host("kafka"), config.port("kafka")), config.timeout) as kafka:
        supported = kafka.api_versions().get(KAFKA_API_METADATA)
        if supported is None or not supported[0] <= KAFKA_METADATA_VERSION <= supported[1]:
            versions = f"v{supported[0]}-v{supported[1]}" if supported else "none"
            raise CheckFailed(
                f"broker does not serve Metadata v{KAFKA_METADATA_VERSION} (it serves {versions})"
            )
        metadata = kafka.metadata(topic)
    found = metadata.topics.get(topic)
    if found is None or found.error_code == 3:  # UNKNOWN_TOPIC_OR_PARTITION
        raise CheckFailed(f"{metadata.brokers} broker(s) but no topic {topic!r}")
    if found.error_code:
        raise CheckFailed(f"topic {topic!r}: {kafka_error(found.error_code)}")
    return f"{metadata.brokers} broker(s), topic {topic}: {found.partitions} partitions"


def postgres_select_one(config: Config, *, user: str, password: str, database: str) -> None:
    """Log in to one database and check that `SELECT 1` returns the row (1)."""
    address = (config.host("postgres"), config.port("postgres"))
    with PostgresConnection(address, config.timeout) as session:
        session.start(user=user, password=password, database=database)
        rows = session.query("SELECT 1")
        session.close()
    if rows != [["1"]]:
        raise CheckFailed(f"SELECT 1 returned {rows!r}")


def check_postgres(config: Config) -> str:
    checked = []
    for label, name_key, user_key, password_key, default in DATABASES:
        dbname = config.get(name_key, default)
        try:
            postgres_select_one(
                config,
                user=config.get(user_key, default),
                password=config.require(password_key),
                database=dbname,
            )
        except (CheckFailed, OSError) as error:
            raise CheckFailed(f"{label} database {dbname!r}: {describe(error)}") from error
        checked.append(dbname)
    return f"SELECT 1 ok on {', '.join(checked)}"


def check_redis(config: Config) -> str:
    password = config.get("REDIS_PASSWORD")
    with RedisConnection((config.host("redis"), config.port("redis")), config.timeout) as redis:
        try:
            if password:
                redis.command("AUTH", password)
            pong = redis.command("PING")
            info = redis.command("INFO", "server")
        except RedisError as error:
            hint = " (set REDIS_PASSWORD)" if str(error).startswith("NOAUTH") and not password else ""
            raise CheckFailed(f"{error}{hint}") from error
    if pong != "PONG":
        raise CheckFailed(f"PING answered {pong!r}")
    fields = dict(line.split(":", 1) for line in str(info).splitlines() if ":" in line)
    return f"PONG, redis {fields.get('redis_version', '?').strip()}"


def check_spark(config: Config) -> str:
    state = http_json(config.url("spark", "/json/"), config.timeout)
    if state.get("status") != "ALIVE":
        raise CheckFailed(f"master status {state.get('status')!r}")
    alive = state.get("aliveworkers")
    if alive is None:
        alive = sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")
    if alive < 1:
        raise CheckFailed("master is ALIVE but has no alive worker")
    return f"master ALIVE, {alive} alive worker(s), {state.get('cores', '?')} cores"


def check_mlflow(config: Config) -> str:
    # MLflow's basic-auth app (Compose) wants the credentials its clients also use.
    user, password = config.get("MLFLOW_TRACKING_USERNAME"), config.get("MLFLOW_TRACKING_PASSWORD")
    auth = (user, password) if user and password else None
    status, body = http_get(config.url("mlflow", "/health"), config.timeout, auth=auth)
    if status != 200:
        raise CheckFailed(f"/health: HTTP {status}")
    search = http_json(
        config.url("mlflow", "/api/2.0/mlflow/registered-models/search?max_results=100"),
        config.timeout,
        auth=auth,
    )
    models = search.get("registered_models", [])
    more = "+" if search.get("next_page_token") else ""
    return f"/health {body.decode(errors='replace').strip()}, registry: {len(models)}{more} model(s)"


def check_airflow(config: Config) -> str:
    health = http_json(config.url("airflow", "/api/v2/monitor/health"), config.timeout)
    statuses = {
        component: (health.get(component) or {}).get("status")
        for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    }
    unhealthy = [
        f"{component} {status}"
        for component, status in statuses.items()
        # dag_processor is only reported when it runs as its own component.
        if status != "healthy" and not (component == "dag_processor" and status is None)
    ]
    if unhealthy:
        raise CheckFailed(", ".join(unhealthy))
    return ", ".join(f"{component} {status}" for component, status in statuses.items() if status)


def check_api(config: Config) -> str:
    status, body = http_get(config.url("api", "/ready"), config.timeout)
    text = body.decode(errors="replace").strip()
    if status == 200:
        return f"/ready {text[:200]}"
    if status == 503:
        try:
            report = json.loads(body)
        except ValueError:
            report = None
        if isinstance(report, dict) and report.get("model_loaded") is False:
            registry: dict[str, Any] = next(
                (dep for dep in report.get("dependencies", []) if dep.get("name") == "model_registry"), {}
            )
            if registry.get("status") == "up":
                raise NoModelYet(
                    f"{MODEL_HINT} (the API and its model registry answer; no champion is loaded)"
                )
            raise CheckFailed(
                f"/ready: no model, model registry {registry.get('status', 'not reported')}"
                f" ({registry.get('detail') or 'no detail'})"
            )
    raise CheckFailed(f"/ready: HTTP {status} {text[:200]}")


def check_prometheus(config: Config) -> str:
    status, _ = http_get(config.url("prometheus", "/-/ready"), config.timeout)
    if status != 200:
        raise CheckFailed(f"/-/ready: HTTP {status}")
    targets = http_json(config.url("prometheus", "/api/v1/targets?state=active"), config.timeout)
    active = targets.get("data", {}).get("activeTargets", [])
    if not active:
        raise CheckFailed("no active scrape targets")
    down = [
        f"{target.get('labels', {}).get('job', '?')} {target.get('health')}"
        f" ({target.get('lastError') or 'not scraped yet'})"
        for target in active
        if target.get("health") != "up"
    ]
    if down:
        raise CheckFailed(f"{len(down)}/{len(active)} targets not up: " + "; ".join(down))
    return f"ready, {len(active)}/{len(active)} targets up"


def check_grafana(config: Config) -> str:
    health = http_json(config.url("grafana", "/api/health"), config.timeout)
    if health.get("database") != "ok":
        raise CheckFailed(f"/api/health database {health.get('database')!r}")
    auth = (config.get("GRAFANA_ADMIN_USER", "admin"), config.require("GRAFANA_ADMIN_PASSWORD"))
    source = http_json(config.url("grafana", "/api/datasources/uid/prometheus"), config.timeout, auth=auth)
    if source.get("type") != "prometheus":
        raise CheckFailed(f"datasource uid 'prometheus' has type {source.get('type')!r}")
    return f"grafana {health.get('version', '?')}, datasource prometheus -> {source.get('url')}"


CheckFunction = Callable[[Config], str]

# Dependency order: the first failures in the table are the likely causes.
CHECKS: dict[str, tuple[CheckFunction, str]] = {
    "zookeeper": (check_zookeeper, "tcp://{address} ruok/srvr"),
    "kafka": (check_kafka, "kafka://{address}"),
    "postgres": (check_postgres, "postgresql://{address}"),
    "redis": (check_redis, "redis://{address}"),
    "spark": (check_spark, "http://{address}/json/"),
    "mlflow": (check_mlflow, "http://{address}/health"),
    "airflow": (check_airflow, "http://{address}/api/v2/monitor/health"),
    "api": (check_api, "http://{address}/ready"),
    "prometheus": (check_prometheus, "http://{address}/-/ready"),
    "grafana": (check_grafana, "http://{address}/api/health"),
}


def endpoint_for(service: str, config: Config) -> str:
    try:
        address = config.address(service)
    except CheckFailed:  # a malformed port is reported by the check itself
        address = f"{config.host(service)}:?"
    return CHECKS[service][1].format(address=address)


def describe(error: Exception) -> str:
    """A check's own message, or the exception's type and text (refused, timed out, ...)."""
    return str(error) if isinstance(error, CheckFailed) else f"{type(error).__name__}: {error}"


def run_check(service: str, config: Config) -> Result:
    """Run one check; any exception is a failed check, never a crash of the script."""
    started = time.perf_counter()
    try:
        detail, status = CHECKS[service][0](config), OK
    except NoModelYet as state:
        detail, status = str(state), NO_MODEL_YET
    except Exception as error:  # CheckFailed, connection refused, timeouts, odd payloads, ...
        detail, status = describe(error), FAIL
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return Result(service, endpoint_for(service, config), status, latency_ms, detail)


def run_checks(services: Sequence[str], config: Config) -> list[Result]:
    """Run the checks concurrently (each may wait for its timeout) and keep their order."""
    if not services:
        return []
    with ThreadPoolExecutor(max_workers=len(services)) as pool:
        return list(pool.map(lambda service: run_check(service, config), services))


def parse_not_started(value: str) -> dict[str, str]:
    """FILMREC_NOT_STARTED ("service=reason;service2=reason2") as {service: reason}."""
    left_out: dict[str, str] = {}
    for entry in value.split(";"):
        service, _, reason = entry.partition("=")
        service = service.strip()
        if not service:
            continue
        if service not in CHECKS:
            raise ValueError(f"unknown service {service!r} in {NOT_STARTED_VARIABLE}={value!r}")
        left_out[service] = reason.strip() or "left out by this run"
    return left_out


def wait_for_checks(
    services: Sequence[str],
    config: Config,
    *,
    wait_seconds: float,
    interval_seconds: float,
    not_started: Mapping[str, str] | None = None,
    require_model: bool = False,
    progress: Callable[[str], None] = lambda _message: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Result]:
    """Check `services`, re-running the unsettled ones until all settle or wait_seconds pass.

    A service in `not_started` is not checked: its result says so, with the reason.
    """
    not_started = not_started or {}
    deadline = clock() + wait_seconds
    results = {
        service: Result(service, endpoint_for(service, config), NOT_STARTED, 0.0, reason)
        for service, reason in not_started.items()
        if service in services
    }
    to_check = [service for service in services if service not in results]
    results.update((result.service, result) for result in run_checks(to_check, config))
    while True:
        pending = [s for s in services if not results[s].settled(require_model=require_model)]
        if not pending or clock() >= deadline:
            return [results[service] for service in services]
        progress(f"waiting for {', '.join(pending)} ({max(0, round(deadline - clock()))} s left)")
        sleep(min(interval_seconds, max(0.0, deadline - clock())))
        results.update((result.service, result) for result in run_checks(pending, config))


def passed(results: Sequence[Result], *, require_model: bool) -> bool:
    """The run's verdict: exit code 0, and "healthy" at the top of the JSON output."""
    return all(result.settled(require_model=require_model) for result in results)


# --- output ---------------------------------------------------------------------------

COLUMNS = ("service", "endpoint", "status", "latency ms", "detail")


def result_row(result: Result) -> tuple[str, ...]:
    return (result.service, result.endpoint, result.status, f"{result.latency_ms:.1f}", result.detail)


def render_table(results: Sequence[Result]) -> str:
    rows = [COLUMNS, *(result_row(result) for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[column].ljust(width) for column, width in enumerate(widths)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in [*widths, len(COLUMNS[-1])]))
    healthy = sum(result.healthy for result in results)
    summary = [f"{healthy}/{len(results)} services healthy"]
    for state in (NO_MODEL_YET, NOT_STARTED):
        names = [result.service for result in results if result.status == state]
        if names:
            summary.append(f"{state}: {', '.join(names)}")
    lines.append("\n" + "; ".join(summary))
    return "\n".join(lines)


def render_json(results: Sequence[Result], *, require_model: bool = False) -> str:
    payload = {
        "healthy": passed(results, require_model=require_model),
        "results": [
            {
                "service": result.service,
                "endpoint": result.endpoint,
                "healthy": result.healthy,
                "status": result.status,
                "latency_ms": result.latency_ms,
                "detail": result.detail,
            }
            for result in results
        ],
    }
    return json.dumps(payload, indent=2)


# --- command line ---------------------------------------------------------------------


def service_list(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Protocol-level health checks of the filmrec platform.",
        epilog=f"services: {', '.join(CHECKS)}",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="retry failing checks until each service is OK or in an accepted state "
        "(not started; no model yet without --require-model), or SECONDS have passed",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help="pause between retries with --wait (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="timeout of each network operation (default %(default)s)",
    )
    parser.add_argument(
        "--require-model",
        action="store_true",
        help=f"an API without a model ({NO_MODEL_YET!r}) fails the run instead of being accepted",
    )
    parser.add_argument("--only", type=service_list, metavar="A,B", help="check only these services")
    parser.add_argument("--skip", type=service_list, metavar="A,B", help="do not check these services")
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="dotenv file with ports and credentials (default %(default)s); "
        f"environment variables override it. {NOT_STARTED_VARIABLE}=service=reason;... "
        "names services left out on purpose: reported as not started, not checked",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.wait < 0 or args.interval <= 0 or args.timeout <= 0:
        parser.error("--wait must be >= 0, --interval and --timeout > 0")
    return args


def selected_services(only: Sequence[str] | None, skip: Sequence[str] | None) -> list[str]:
    chosen = set(only) if only else set(CHECKS)
    chosen -= set(skip or ())
    return [service for service in CHECKS if service in chosen]


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    services = selected_services(args.only, args.skip)
    if not services:
        print("no service left to check (--only/--skip)", file=sys.stderr)
        return 2
    config = Config.load(args.env_file, os.environ if environ is None else environ, args.timeout)
    try:
        not_started = parse_not_started(config.get(NOT_STARTED_VARIABLE))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    results = wait_for_checks(
        services,
        config,
        wait_seconds=args.wait,
        interval_seconds=args.interval,
        not_started=not_started,
        require_model=args.require_model,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    text = render_json(results, require_model=args.require_model) if args.json else render_table(results)
    print(text)
    return 0 if passed(results, require_model=args.require_model) else 1


if __name__ == "__main__":
    raise SystemExit(main())
