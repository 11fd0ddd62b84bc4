"""A real single-node Apache Kafka broker for development and CI, from Maven Central jars.

`python -m devstack.broker up` fetches the broker jars (a pinned, SHA-1
checked list, the runtime closure of org.apache.kafka:kafka_2.13) into a cache and
runs the broker with plain `java`, so neither Docker nor a Kafka tarball is needed.

Kafka 3.9 is used on purpose: it is the last line that still runs with ZooKeeper,
which the Compose platform uses, and its kafka-clients matches the one in Spark's
Kafka source. KRaft (broker and controller in one process) is the default because
it is one JVM instead of two; `--mode zookeeper` mirrors Compose.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from devstack.processes import (
    DaemonError,
    pid_alive,
    port_open,
    spawn_daemon,
    stop_pid,
    wait_ready,
)
from devstack.settings import dev_settings
from filmrec.lakehouse.jars import MavenJar, cached_jars

KAFKA_VERSION = "3.9.2"
ZOOKEEPER_VERSION = "3.8.4"
NETTY_VERSION = "4.1.105.Final"
JACKSON_VERSION = "2.16.2"

# `mvn dependency:list -DincludeScope=runtime` of kafka_2.13:3.9.2 plus slf4j-reload4j
# (the logging binding the Kafka distribution ships). Pinned so that CI needs no Maven.
BROKER_JARS: tuple[MavenJar, ...] = (
    *(
        MavenJar("org.apache.kafka", artifact, KAFKA_VERSION)
        for artifact in (
            "kafka_2.13",
            "kafka-clients",
            "kafka-server",
            "kafka-server-common",
            "kafka-metadata",
            "kafka-raft",
            "kafka-storage",
            "kafka-storage-api",
            "kafka-group-coordinator",
            "kafka-group-coordinator-api",
            "kafka-transaction-coordinator",
            "kafka-tools-api",
            # TopicCommand: kafka-topics in the Compose stand-in (docker/stand-ins/kafka).
            "kafka-tools",
        )
    ),
    MavenJar("org.apache.zookeeper", "zookeeper", ZOOKEEPER_VERSION),
    MavenJar("org.apache.zookeeper", "zookeeper-jute", ZOOKEEPER_VERSION),
    *(
        MavenJar("io.netty", artifact, NETTY_VERSION)
        for artifact in (
            "netty-buffer",
            "netty-codec",
            "netty-common",
            "netty-handler",
            "netty-resolver",
            "netty-transport",
            "netty-transport-classes-epoll",
            "netty-transport-native-epoll",
            "netty-transport-native-unix-common",
        )
    ),
    MavenJar("com.fasterxml.jackson.core", "jackson-core", JACKSON_VERSION),
    MavenJar("com.fasterxml.jackson.core", "jackson-databind", JACKSON_VERSION),
    MavenJar("com.fasterxml.jackson.core", "jackson-annotations", JACKSON_VERSION),
    MavenJar("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", JACKSON_VERSION),
    MavenJar("com.fasterxml.jackson.dataformat", "jackson-dataformat-csv", JACKSON_VERSION),
    MavenJar("com.fasterxml.jackson.module", "jackson-module-scala_2.13", JACKSON_VERSION),
    MavenJar("org.scala-lang", "scala-library", "2.13.15"),
    MavenJar("org.scala-lang", "scala-reflect", "2.13.15"),
    MavenJar("org.scala-lang.modules", "scala-collection-compat_2.13", "2.10.0"),
    MavenJar("org.scala-lang.modules", "scala-java8-compat_2.13", "1.0.2"),
    MavenJar("com.typesafe.scala-logging", "scala-logging_2.13", "3.9.5"),
    MavenJar("org.slf4j", "slf4j-api", "1.7.36"),
    MavenJar("org.slf4j", "slf4j-reload4j", "1.7.36"),
    MavenJar("ch.qos.reload4j", "reload4j", "1.2.19"),
    MavenJar("io.dropwizard.metrics", "metrics-core", "4.1.12.1"),
    MavenJar("com.yammer.metrics", "metrics-core", "2.2.0"),
    MavenJar("com.github.ben-manes.caffeine", "caffeine", "2.9.3"),
    MavenJar("com.github.luben", "zstd-jni", "1.5.6-4"),
    MavenJar("org.xerial.snappy", "snappy-java", "1.1.10.5"),
    MavenJar("at.yawk.lz4", "lz4-java", "1.10.1"),
    MavenJar("org.bitbucket.b_c", "jose4j", "0.9.6"),
    MavenJar("org.pcollections", "pcollections", "4.0.1"),
    MavenJar("net.sourceforge.argparse4j", "argparse4j", "0.7.0"),
    MavenJar("net.sf.jopt-simple", "jopt-simple", "5.0.4"),
    MavenJar("org.apache.yetus", "audience-annotations", "0.12.0"),
    MavenJar("com.google.errorprone", "error_prone_annotations", "2.10.0"),
    MavenJar("com.thoughtworks.paranamer", "paranamer", "2.8"),
    MavenJar("commons-validator", "commons-validator", "1.10.1"),
    MavenJar("commons-beanutils", "commons-beanutils", "1.11.0"),
    MavenJar("commons-collections", "commons-collections", "3.2.2"),
    MavenJar("commons-digester", "commons-digester", "2.1"),
    MavenJar("commons-logging", "commons-logging", "1.3.5"),
    MavenJar("commons-cli", "commons-cli", "1.4"),
    MavenJar("commons-io", "commons-io", "2.14.0"),
)

LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.zookeeper=WARN
"""

# A development broker: small heap, one replica of everything, topics auto-created
# with the contract's default partition count when a producer gets there first.
COMMON_BROKER_PROPERTIES = """\
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
log.segment.bytes=67108864
"""


class BrokerError(DaemonError):
    """The broker could not be fetched, started or stopped; the message says why."""


class Mode(StrEnum):
    KRAFT = "kraft"
    ZOOKEEPER = "zookeeper"


@dataclass(frozen=True)
class BrokerLayout:
    """Where one broker keeps its jars, configuration, data, logs and pid files.

    `libs` is separate from `root` so that throwaway brokers (tests, benchmarks)
    share the one jar cache.
    """

    root: Path
    libs: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    zookeeper_port: int = 2181
    # The port clients are told to connect to, when not `port`: a TCP proxy in front
    # of the broker (bench/hangs.py), so that every connection goes through it.
    advertised_port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def config_file(self, role: str) -> Path:
        return self.root / "config" / f"{role}.properties"

    def data_dir(self, role: str) -> Path:
        return self.root / "data" / role

    def log_file(self, role: str) -> Path:
        return self.root / "logs" / f"{role}.log"

    def pid_file(self, role: str) -> Path:
        return self.root / "run" / f"{role}.pid"


def default_layout(*, port: int = 9092) -> BrokerLayout:
    from filmrec.config import get_settings

    root = get_settings().var_dir / "kafka"
    return BrokerLayout(root=root, libs=root / "libs", port=port, controller_port=port + 1)


def fetch_broker_jars(libs: Path) -> list[Path]:
    """The broker classpath, downloading (and checksumming) missing jars once."""
    try:
        return cached_jars(libs, BROKER_JARS)
    except (RuntimeError, OSError) as error:
        raise BrokerError(f"kafka jars not fetchable from Maven Central: {error}") from error


def java_executable() -> str:
    java_home = dev_settings().java_home
    candidate = java_home / "bin" / "java" if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise BrokerError("java not found: install a JDK 17 (apt-get install openjdk-17-jre-headless)")
    return found


def serves_metadata(bootstrap_servers: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker answers a metadata request (not just a TCP accept)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _running_pid(layout: BrokerLayout, role: str) -> int | None:
    """The pid recorded for `role` if that process is alive and is really ours."""
    pid_file = layout.pid_file(role)
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        pid_file.unlink(missing_ok=True)
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        cmdline = ""
    # A recycled pid belongs to someone else: never signal it.
    if cmdline and str(layout.config_file(role)) not in cmdline:
        pid_file.unlink(missing_ok=True)
        return None
    return pid


def _write_configs(layout: BrokerLayout, mode: Mode) -> None:
    (layout.root / "config").mkdir(parents=True, exist_ok=True)
    (layout.root / "config" / "log4j.properties").write_text(LOG4J_PROPERTIES)
    listener = f"PLAINTEXT://{layout.host}:{layout.port}"
    advertised = f"PLAINTEXT://{layout.host}:{layout.advertised_port or layout.port}"
    if mode is Mode.KRAFT:
        controller = f"{layout.host}:{layout.controller_port}"
        broker = f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{controller}
listeners={listener},CONTROLLER://{controller}
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={layout.data_dir("kraft")}
"""
    else:
        broker = f"""\
broker.id=0
zookeeper.connect={layout.host}:{layout.zookeeper_port}
zookeeper.connection.timeout.ms=18000
listeners={listener}
advertised.listeners={advertised}
log.dirs={layout.data_dir("zk-broker")}
"""
        _write_zookeeper_config(layout)
    layout.config_file("broker").write_text(broker + COMMON_BROKER_PROPERTIES)


def _write_zookeeper_config(layout: BrokerLayout) -> None:
    (layout.root / "config").mkdir(parents=True, exist_ok=True)
    (layout.root / "config" / "log4j.properties").write_text(LOG4J_PROPERTIES)
    layout.config_file("zookeeper").write_text(
        f"""\
dataDir={layout.data_dir("zookeeper")}
clientPort={layout.zookeeper_port}
clientPortAddress={layout.host}
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
"""
    )


def _java_command(layout: BrokerLayout, main_class: str, *args: str, heap: str = "512m") -> list[str]:
    return [
        java_executable(),
        f"-Xmx{heap}",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{layout.root / 'config' / 'log4j.properties'}",
        f"-Dkafka.logs.dir={layout.root / 'logs'}",
        "-cp",
        f"{layout.libs}/*",
        main_class,
        *args,
    ]


def _format_kraft_storage(layout: BrokerLayout) -> None:
    """Format the KRaft log dir once; `--ignore-formatted` keeps existing data."""
    data = layout.data_dir("kraft")
    if (data / "meta.properties").exists():
        return
    data.mkdir(parents=True, exist_ok=True)
    # A Kafka cluster id is a base64url UUID without padding.
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    command = _java_command(
        layout,
        "kafka.tools.StorageTool",
        "format",
        # One argument: a base64url id may start with "-", which argparse reads as an option.
        f"--cluster-id={cluster_id}",
        "-c",
        str(layout.config_file("broker")),
        "--ignore-formatted",
        heap="256m",
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")


def _spawn(layout: BrokerLayout, role: str, main_class: str) -> int:
    # Its own session: Ctrl-C in the terminal that ran `make kafka-up` must not take the
    # broker down, and `down` signals exactly this process.
    command = _java_command(layout, main_class, str(layout.config_file(role)))
    return spawn_daemon(command, log=layout.log_file(role), pid_file=layout.pid_file(role))


def _wait_until(
    layout: BrokerLayout, role: str, pid: int, ready: Callable[[], bool], timeout_s: float
) -> None:
    try:
        wait_ready(ready, what=role, timeout=timeout_s, log=layout.log_file(role), pid=pid, error=BrokerError)
    except BrokerError:
        if not pid_alive(pid):
            layout.pid_file(role).unlink(missing_ok=True)
        raise


def up(layout: BrokerLayout, mode: Mode = Mode.KRAFT, *, timeout_s: float = 90.0) -> str:
    """Start the broker (and ZooKeeper in ZooKeeper mode) unless running; return bootstrap servers.

    Idempotent: a running broker of ours is left alone, and so is any Kafka broker
    that already serves metadata on the port (e.g. the Compose one).
    """
    if _running_pid(layout, "broker") is not None:
        if serves_metadata(layout.bootstrap_servers):
            return layout.bootstrap_servers
        raise BrokerError(f"broker process is running but not answering; see {layout.log_file('broker')}")
    if port_open(layout.port, layout.host):
        if serves_metadata(layout.bootstrap_servers):
            print(f"a Kafka broker already answers on {layout.bootstrap_servers}", file=sys.stderr)
            return layout.bootstrap_servers
        raise BrokerError(f"port {layout.port} is taken by something that is not a Kafka broker")

    java_executable()  # fail early with a clear message
    fetch_broker_jars(layout.libs)
    _write_configs(layout, mode)
    if mode is Mode.ZOOKEEPER:
        up_zookeeper(layout, timeout_s=timeout_s)
    if mode is Mode.KRAFT:
        _format_kraft_storage(layout)
    pid = _spawn(layout, "broker", "kafka.Kafka")
    _wait_until(layout, "broker", pid, lambda: serves_metadata(layout.bootstrap_servers, 2.0), timeout_s)
    return layout.bootstrap_servers


def up_zookeeper(layout: BrokerLayout, *, timeout_s: float = 90.0) -> str:
    """Start only ZooKeeper (from the same jars) unless ours runs; return host:port.

    For a native stack that mirrors Compose when a broker already serves the Kafka
    port (e.g. CI's KRaft broker): ZooKeeper is then started on its own.
    """
    address = f"{layout.host}:{layout.zookeeper_port}"
    if _running_pid(layout, "zookeeper") is not None:
        return address
    if port_open(layout.zookeeper_port, layout.host):
        raise BrokerError(f"port {layout.zookeeper_port} is taken; is another ZooKeeper running?")
    java_executable()
    fetch_broker_jars(layout.libs)
    _write_zookeeper_config(layout)
    zk_pid = _spawn(layout, "zookeeper", "org.apache.zookeeper.server.quorum.QuorumPeerMain")
    _wait_until(layout, "zookeeper", zk_pid, lambda: port_open(layout.zookeeper_port, layout.host), timeout_s)
    return address


def _stop(layout: BrokerLayout, role: str, timeout_s: float) -> bool:
    pid = _running_pid(layout, role)
    if pid is None:
        return False
    stop_pid(pid, timeout=timeout_s, group=False)  # Kafka shuts down cleanly on TERM (flushes logs)
    layout.pid_file(role).unlink(missing_ok=True)
    return True


def down(layout: BrokerLayout, *, wipe: bool = False, timeout_s: float = 30.0) -> list[str]:
    """Stop the broker, then ZooKeeper; return the roles that were stopped. Idempotent."""
    stopped = [role for role in ("broker", "zookeeper") if _stop(layout, role, timeout_s)]
    if wipe:
        shutil.rmtree(layout.root / "data", ignore_errors=True)
    return stopped


def status(layout: BrokerLayout) -> dict[str, object]:
    return {
        "bootstrap_servers": layout.bootstrap_servers,
        "broker_pid": _running_pid(layout, "broker"),
        "zookeeper_pid": _running_pid(layout, "zookeeper"),
        "serving": serves_metadata(layout.bootstrap_servers, 2.0),
        "log": str(layout.log_file("broker")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a single-node Kafka broker from Maven jars.")
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--mode", type=Mode, choices=list(Mode), default=Mode.KRAFT)
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--dir", type=Path, default=None, help="state directory (default var/kafka)")
    parser.add_argument("--wipe", action="store_true", help="with down: delete the broker data")
    args = parser.parse_args(argv)

    layout = default_layout(port=args.port)
    if args.dir is not None:
        # Another state directory, same jar cache.
        layout = replace(layout, root=args.dir.resolve())
    try:
        if args.command == "fetch":
            print(f"{len(fetch_broker_jars(layout.libs))} jars in {layout.libs}")
        elif args.command == "up":
            print(f"kafka ({args.mode}) ready on {up(layout, args.mode)}")
        elif args.command == "down":
            stopped = down(layout, wipe=args.wipe)
            print(f"stopped: {', '.join(stopped)}" if stopped else "not running")
        else:
            for key, value in status(layout).items():
                print(f"{key}: {value}")
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
