"""The JVM jars Spark needs beyond pyspark's own: Delta Lake and the Kafka source.

They come from Maven Central once, are checked against Maven Central's SHA-1 files
and are cached in a directory; after that no network is needed (offline use).
The list is pinned and flat, rather than resolved by Ivy at every session start, so
that a flaky network cannot break a Spark session and CI resolves them exactly once.
Transitive dependencies that pyspark already ships (Hadoop, Jackson, Parquet, Scala,
compression codecs) are left out: Spark's own copies win on the classpath anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
SPARK_VERSION = "4.2.0"
# delta-spark 4.4.1 is on PyPI but its jars are not on Maven Central; pin 4.4.0 for both.
DELTA_VERSION = "4.4.0"
SCALA_BINARY = "2.13"


@dataclass(frozen=True)
class MavenJar:
    group: str
    artifact: str
    version: str

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    @property
    def url(self) -> str:
        group_path = self.group.replace(".", "/")
        return f"{MAVEN_CENTRAL}/{group_path}/{self.artifact}/{self.version}/{self.filename}"


DELTA_JARS = (
    MavenJar("io.delta", f"delta-spark_4.2_{SCALA_BINARY}", DELTA_VERSION),
    MavenJar("io.delta", "delta-storage", DELTA_VERSION),
    MavenJar("io.delta", "delta-kernel-api", DELTA_VERSION),
    MavenJar("io.delta", "delta-kernel-defaults", DELTA_VERSION),
    MavenJar("io.delta", "delta-kernel-unitycatalog", DELTA_VERSION),
    MavenJar("io.unitycatalog", "unitycatalog-client", "0.6.0"),
    MavenJar("io.unitycatalog", "unitycatalog-hadoop", "0.6.0"),
    MavenJar("com.fasterxml.jackson.datatype", "jackson-datatype-jdk8", "2.13.5"),
    MavenJar("javax.annotation", "javax.annotation-api", "1.3.2"),
    MavenJar("commons-logging", "commons-logging", "1.3.0"),
)

KAFKA_JARS = (
    MavenJar("org.apache.spark", f"spark-sql-kafka-0-10_{SCALA_BINARY}", SPARK_VERSION),
    MavenJar("org.apache.spark", f"spark-token-provider-kafka-0-10_{SCALA_BINARY}", SPARK_VERSION),
    MavenJar("org.apache.kafka", "kafka-clients", "3.9.2"),
    MavenJar("org.apache.commons", "commons-pool2", "2.13.1"),
)

ALL_JARS = DELTA_JARS + KAFKA_JARS


def _download(url: str, *, attempts: int = 5) -> bytes:
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except OSError as error:
            if attempt == attempts:
                raise RuntimeError(f"could not download {url}: {error}") from error
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def fetch_jars(target: Path, jars: tuple[MavenJar, ...] = ALL_JARS, *, quiet: bool = False) -> list[Path]:
    """Download the jars missing from `target` and return the paths of all of them."""
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for jar in jars:
        path = target / jar.filename
        if not path.exists():
            if not quiet:
                print(f"fetching {jar.url}", file=sys.stderr)
            payload = _download(jar.url)
            expected = _download(jar.url + ".sha1").decode().split()[0].strip()
            actual = hashlib.sha1(payload).hexdigest()
            if actual != expected:
                raise RuntimeError(f"checksum mismatch for {jar.filename}: {actual} != {expected}")
            partial = path.with_suffix(".part")
            partial.write_bytes(payload)
            partial.replace(path)  # atomic: a crash never leaves a truncated jar behind
        paths.append(path)
    return paths


def cached_jars(target: Path, jars: tuple[MavenJar, ...] = ALL_JARS) -> list[Path]:
    """The jar paths, fetching any that are missing."""
    missing = [jar for jar in jars if not (target / jar.filename).exists()]
    if missing:
        return fetch_jars(target, jars)
    return [target / jar.filename for jar in jars]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the Delta and Kafka jars for Spark.")
    parser.add_argument("--dir", type=Path, default=None, help="target directory")
    parser.add_argument("--list", action="store_true", help="print the Maven coordinates")
    args = parser.parse_args(argv)
    if args.list:
        for jar in ALL_JARS:
            print(f"{jar.group}:{jar.artifact}:{jar.version}")
        return 0
    from filmrec.config import get_settings

    target = args.dir or get_settings().jars_dir
    for path in fetch_jars(target):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
