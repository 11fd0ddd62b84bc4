"""Small helpers for the background daemons the native tooling starts (broker, services, stack)."""

from __future__ import annotations

import contextlib
import os


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
