"""Go tools the bench builds for itself from the Go module proxy: vegeta, toxiproxy.

    python -m bench.go_tools          # build what is missing, print where each is

Each is pinned to a version and built once with `go install` into its own directory
under var/tools (FILMREC_TOOLS_DIR), so a clean clone needs Go (the `go` on PATH, or
the official tarball's /usr/local/go) and the proxy, nothing else. Without Go the
section that needs the tool says so and is skipped (ToolUnavailable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devstack.settings import dev_settings


class ToolUnavailable(RuntimeError):
    """The tool is not built and cannot be built here (no Go, no proxy)."""


@dataclass(frozen=True)
class GoTool:
    package: str  # the main package `go install` builds
    version: str
    binary: str  # the name `go install` gives it: the package's last element

    def directory(self, tools_dir: Path) -> Path:
        return tools_dir / f"{self.package.split('/')[2]}-{self.version}"


TOOLS = {
    # Open-loop constant-rate HTTP load (bench/open_loop.py).
    "vegeta": GoTool("github.com/tsenart/vegeta/v12", "v12.13.0", "vegeta"),
    # TCP proxies the bench can make hang (bench/hangs.py).
    "toxiproxy": GoTool("github.com/Shopify/toxiproxy/v2/cmd/server", "v2.12.0", "server"),
}

_OFFICIAL_GO = Path("/usr/local/go/bin/go")


def go_binary() -> Path | None:
    found = shutil.which("go")
    if found:
        return Path(found)
    return _OFFICIAL_GO if _OFFICIAL_GO.exists() else None


def tool(name: str) -> Path:
    """The tool's executable, built first if it is not there yet (a minute or so)."""
    spec = TOOLS[name]
    directory = spec.directory(dev_settings().tools_dir)
    executable = directory / spec.binary
    if executable.exists():
        return executable
    go = go_binary()
    if go is None:
        raise ToolUnavailable(f"{name}: Go is needed to build {spec.package}@{spec.version} (go.dev/dl)")
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(go), "install", f"{spec.package}@{spec.version}"],
        env=os.environ | {"GOBIN": str(directory), "GOFLAGS": "-mod=mod"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0 or not executable.exists():
        raise ToolUnavailable(
            f"{name}: go install {spec.package}@{spec.version} failed:\n{done.stderr[-2000:]}"
        )
    return executable


def main(argv: list[str] | None = None) -> int:
    names = argv if argv else sorted(TOOLS)
    for name in names:
        print(f"{name}: {tool(name)}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
