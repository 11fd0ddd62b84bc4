#!/usr/bin/env bash
# Spark 4.2 needs Java 17 or newer. Say exactly what to install when it is missing.
set -euo pipefail
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "Java 17+ is required by Spark 4.2 and was not found: install it (Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless; macOS: brew install openjdk@17) or set JAVA_HOME." >&2
  exit 1
fi
version=$("$java_bin" -version 2>&1 | awk -F '"' '/version/ {print $2; exit}')
major=${version%%.*}
if [ "${major:-0}" -lt 17 ] 2>/dev/null; then
  echo "Java $version found, but Spark 4.2 needs Java 17+: install openjdk-17-jre-headless (or newer) and put it first on PATH or in JAVA_HOME." >&2
  exit 1
fi
