"""The command line: every subcommand answers --help, and the generator runs both ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from filmrec.cli import build_parser, main


@pytest.mark.parametrize(
    "command", ["load", "sync-movies", "train", "serve", "demo", "generate", "jars", "registry"]
)
def test_every_subcommand_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"filmrec {command}" in capsys.readouterr().out


def test_generate_writes_a_movielens_data_set(tmp_path: Path) -> None:
    assert (
        main(["generate", "--users", "5", "--movies", "12", "--ratings", "40", "--out", str(tmp_path)]) == 0
    )
    assert {p.name for p in tmp_path.iterdir()} == {"ratings.csv", "movies.csv", "links.csv"}


def test_the_generator_module_runs_as_a_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "filmrec.data.synthetic", "--users", "4", "--movies", "9", "--ratings", "20",
         "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert (tmp_path / "ratings.csv").read_text().startswith("userId,movieId,rating,timestamp")


def test_filmrec_serve_gets_one_openblas_thread_before_numpy_loads() -> None:
    # OpenBLAS reads OPENBLAS_NUM_THREADS once, when numpy loads: `filmrec serve` must
    # set it before anything the CLI imports loads numpy (filmrec/serving/__init__.py).
    probe = (
        "import os, sys\n"
        "os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
        "import filmrec.cli\n"
        "assert 'numpy' not in sys.modules, 'importing the CLI loaded numpy'\n"
        "import filmrec.cli as cli\n"
        "try:\n"
        "    cli.main(['serve', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "1"
