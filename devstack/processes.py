"""The process helpers every daemon of the development tooling shares (broker, services, stack).

One copy each: free ports, port probes, spawning a daemon in its own session with a
pid file, tailing its log, waiting until it is ready (or died), stopping it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

HOST = "127.0.0.1"


class DaemonError(RuntimeError):
    """A daemon did not start, died while starting, or did not become ready."""


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (a process owned by another user counts as alive)."""
    # Reap the process if it is our own child, otherwise a zombie looks alive forever.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    """A TCP port nothing listens on right now (for throwaway servers)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST, timeout: float = 0.3) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def read_pid(path: Path) -> int | None:
    """The pid in `path` if that process is alive."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def spawn_daemon(
    command: list[str], *, log: Path, pid_file: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start `command` in its own session (Ctrl-C in the calling terminal does not reach
    it, and stopping its process group stops its children too); record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def wait_ready(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log: Path | None = None,
    pid: int | None = None,
    error: type[Exception] = DaemonError,
    interval: float = 0.3,
) -> None:
    """Poll `ready` until it is true; raise `error` with the log's tail on a timeout, or
    at once when `pid` (the daemon) has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise error(f"{what} exited during start-up; log tail:\n{log_tail(log) if log else '(no log)'}")
        with contextlib.suppress(Exception):  # a probe that fails is "not yet"
            if ready():
                return
        time.sleep(interval)
    raise error(f"{what} not ready after {timeout:.0f}s; log tail:\n{log_tail(log) if log else '(no log)'}")


def stop_pid(pid: int, *, timeout: float = 20.0, group: bool = True) -> None:
    """SIGTERM (the process group we started, or the process), then SIGKILL after `timeout`."""
    kill = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.1)
