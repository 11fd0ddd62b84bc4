"""What a serving process sets up before it serves: one OpenBLAS thread (serving/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# A fresh interpreter importing the app as every server does (api/main.py, uvicorn --factory).
# threadpoolctl reads the thread count OpenBLAS really has: a dev dependency (pyproject.toml),
# so without it this fails rather than skips.
_PROBE = """
import json, os, sys
import filmrec.serving.app
import threadpoolctl
blas = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
print(json.dumps({"env": os.environ.get("OPENBLAS_NUM_THREADS"), "blas": blas}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def test_a_serving_process_scores_with_one_blas_thread() -> None:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    result = _probe(env)
    assert result["env"] == "1"
    assert result["blas"] == [1]  # numpy's OpenBLAS, loaded after the package set it


def test_an_explicit_thread_count_wins() -> None:
    result = _probe(os.environ | {"OPENBLAS_NUM_THREADS": "2"})
    assert result["env"] == "2" and result["blas"] == [2]
