"""The served model outside the project: a clean virtualenv loads it, and the API imports no JVM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.service_helpers import make_settings

REPO = Path(__file__).resolve().parents[2]


def _downloaded_champion(trained_root: Path, directory: Path) -> Path:
    import mlflow

    from filmrec.model.registry import configure_mlflow

    settings = make_settings(trained_root)
    configure_mlflow(settings)
    return Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{settings.model_name}@champion", dst_path=str(directory)
        )
    )


def test_a_fresh_virtualenv_without_filmrec_loads_and_scores_the_model(
    trained_root: Path, tmp_path: Path
) -> None:
    import mlflow

    model_dir = _downloaded_champion(trained_root, tmp_path / "model")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # What the model declares it needs, nothing of the project (pip's cache makes this quick).
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert f"mlflow=={mlflow.__version__}" in requirements
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
        timeout=900,
    )
    script = textwrap.dedent(
        """
        import importlib.util, json, sys
        assert importlib.util.find_spec("filmrec") is None, "filmrec must not be installed here"
        import mlflow.pyfunc
        model = mlflow.pyfunc.load_model(sys.argv[1])
        (result,) = model.predict([{"user_id": 1, "k": 5}])
        print(json.dumps({"movie_ids": result.movie_ids, "strategy": result.strategy}))
        """
    )
    clean_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(python), "-c", script, str(model_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: nothing of filmrec on the path
        env=clean_env,
        timeout=300,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["strategy"] == "model" and len(answer["movie_ids"]) == 5


def test_the_api_process_never_imports_the_jvm_side(trained_root: Path) -> None:
    """No JVM in the API: the image's entry point (api/main.py) serves every kind of
    request in a virtualenv that has pyspark installed, and never imports it."""
    settings = make_settings(trained_root)
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, "api")
        from fastapi.testclient import TestClient
        import main  # the image's entry point: create_served_app()
        with TestClient(main.app) as client:
            assert client.get("/recommendations/1").status_code == 200
            assert client.get("/movies/1/similar").status_code == 200
            assert client.get("/ready").status_code == 200
            client.get("/metrics")
            rating = {"user_id": 1, "movie_id": 1, "rating": 4.0}
            client.post("/ratings", headers={"X-API-Key": "demo"}, json=rating)
        import mlflow.types.schema
        assert mlflow.types.schema.HAS_PYSPARK is False
        jvm = sorted(m for m in sys.modules if m.split(".")[0] in {"pyspark", "py4j", "delta", "airflow"})
        print(json.dumps(jvm))
        """
    )
    # The settings come from the environment, as in the image; nothing of the test run's.
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "KAFKA_", "REDIS_"))
    }
    env |= {"FILMREC_VAR_DIR": str(settings.var_dir), "LAKEHOUSE_PATH": str(settings.lakehouse_path)}
    for name in ("DATABASE_URL", "PYTHONPATH"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
