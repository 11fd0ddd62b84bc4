"""init.sh and init.ps1: syntax, shellcheck, and the --no-start preparation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.static.static_helpers import ROOT, parse_dotenv, require_tool

INIT_SH = ROOT / "init.sh"


def test_bash_syntax() -> None:
    subprocess.run(["bash", "-n", str(INIT_SH)], check=True)


def test_shellcheck() -> None:
    scripts = [INIT_SH, ROOT / "docker" / "postgres" / "initdb.d" / "10-filmrec-databases.sh"]
    completed = subprocess.run(
        [require_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def run_prepare(workdir: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        ["bash", str(workdir / "init.sh"), "--no-start"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_start_creates_env_with_secrets_and_is_idempotent(tmp_path: Path) -> None:
    for name in ("init.sh", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    first = run_prepare(tmp_path)
    assert first.returncode == 0, first.stderr
    created = parse_dotenv((tmp_path / ".env").read_text(encoding="utf-8"))
    assert len(created["POSTGRES_PASSWORD"]) >= 32
    assert len(created["AIRFLOW_FERNET_KEY"]) == 44 and created["AIRFLOW_FERNET_KEY"].endswith("=")
    assert created["AIRFLOW_UID"].isdigit() and created["AIRFLOW_UID"] != "0"
    assert (tmp_path / "lakehouse").is_dir() and (tmp_path / "airflow" / "logs").is_dir()
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0, ".env must not be readable by others"

    second = run_prepare(tmp_path)
    assert second.returncode == 0, second.stderr
    assert parse_dotenv((tmp_path / ".env").read_text(encoding="utf-8")) == created, "secrets changed"


def test_an_existing_env_is_kept_and_only_completed(tmp_path: Path) -> None:
    for name in ("init.sh", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=mine\nAPP_DB_PASSWORD=\n", encoding="utf-8")
    completed = run_prepare(tmp_path)
    assert completed.returncode == 0, completed.stderr
    values = parse_dotenv((tmp_path / ".env").read_text(encoding="utf-8"))
    assert values["POSTGRES_PASSWORD"] == "mine"
    assert values["APP_DB_PASSWORD"]


def test_powershell_script_mirrors_the_shell_script() -> None:
    text = (ROOT / "init.ps1").read_text(encoding="utf-8")
    for expected in (
        "2.20.0",
        "test-connections.py",
        "--wait",
        "docker compose build",
        "docker compose up -d",
    ):
        assert expected in text


def test_the_generated_api_key_matches_its_hashed_entry(tmp_path: Path) -> None:
    from filmrec.serving.api_keys import ApiKeyring, parse_keys

    for name in ("init.sh", ".env.example"):
        shutil.copy(ROOT / name, tmp_path / name)
    assert run_prepare(tmp_path).returncode == 0
    entry = parse_dotenv((tmp_path / ".env").read_text(encoding="utf-8"))["FILMREC_API_KEYS"]
    key_file = tmp_path / "var" / "api-key"
    assert key_file.stat().st_mode & 0o077 == 0, "the plain key must not be readable by others"
    key = key_file.read_text(encoding="utf-8").strip()
    assert key not in entry  # .env holds the hash only
    assert ApiKeyring(parse_keys(entry)).identify(key) == "admin"
