"""Helpers shared by the static tests of the deployment files (no Docker needed).

- a dotenv parser and the Compose variable interpolation (${VAR}, ${VAR:-default},
  ${VAR:?error}, ...), so docker-compose.yml can be checked as Compose would see it;
- the mounts and environment of a service in their normalised form;
- `require_tool`, the rule for external linters: skip when missing locally, fail in CI.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CONNECTIONS_SCRIPT = ROOT / "test-connections.py"

# $$ (a literal $), ${...} or $NAME, as in the Compose specification.
_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)


class InterpolationError(ValueError):
    """A required variable (${VAR:?message}) is unset or empty."""


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines of a dotenv file; comments and blank lines are skipped."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def env_example() -> dict[str, str]:
    return parse_dotenv(ENV_EXAMPLE.read_text(encoding="utf-8"))


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.match(match["braced"])
        if braced is None:
            raise InterpolationError(f"invalid interpolation ${{{match['braced']}}}")
        name, op, arg = braced["name"], braced["op"], braced["arg"] or ""
        value = env.get(name)
        empty_counts = op is not None and op.startswith(":")
        is_set = value is not None and (value != "" or not empty_counts)
        if op is None:
            return value or ""
        if op.endswith("-"):
            return value if is_set else interpolate_string(arg, env)
        if op.endswith("?"):
            if not is_set:
                raise InterpolationError(f"{name}: {arg}")
            return value
        return interpolate_string(arg, env) if is_set else ""  # :+ and +

    return _VARIABLE.sub(substitute, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value of a loaded YAML document, as Compose does."""
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variable_references(node: Any) -> list[tuple[str, str]]:
    """(name, operator) of every interpolation in a loaded YAML document ($$ escapes excluded).

    The operator is "" for ${VAR} and $VAR, else one of :- - :? ? :+ +.
    """
    if isinstance(node, list):
        return [ref for item in node for ref in variable_references(item)]
    if isinstance(node, dict):
        return [ref for value in node.values() for ref in variable_references(value)]
    references = []
    for match in _VARIABLE.finditer(node if isinstance(node, str) else ""):
        if match["named"]:
            references.append((match["named"], ""))
        elif match["braced"] and (braced := _BRACED.match(match["braced"])):
            references.append((braced["name"], braced["op"] or ""))
    return references


def referenced_variables(node: Any) -> set[str]:
    return {name for name, _ in variable_references(node)}


def documented_variables(text: str) -> set[str]:
    """Keys a dotenv file sets or shows commented out (`# KEY=value`)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def load_compose_raw() -> dict[str, Any]:
    """docker-compose.yml with YAML anchors merged, before interpolation."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml with YAML anchors merged and variables interpolated."""
    return interpolate(load_compose_raw(), env)


def filled_env(env: Mapping[str, str]) -> dict[str, str]:
    """The .env.example values with every empty secret given a dummy value, as init.sh would."""
    filled = {key: value or f"test-{key.lower()}" for key, value in env.items()}
    if not env.get("FILMREC_API_KEYS"):  # a well-formed entry, as init.sh writes it: admin:sha256("test")
        filled["FILMREC_API_KEYS"] = "admin:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    return filled


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


def service_mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts.append((source, rest.split(":", 1)[0]))
        else:
            mounts.append((str(volume.get("source", "")), str(volume["target"])))
    return mounts


def require_tool(name: str) -> str:
    """Path of an external tool; skipped when missing, except under CI=true where it fails."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    require(found is not None, f"{name} is not installed")
    assert found is not None
    return found


def load_connections_script() -> ModuleType:
    """test-connections.py as a module, loaded once per session (its name has a hyphen)."""
    name = "test_connections_script_module"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CONNECTIONS_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module
