#!/usr/bin/env python3
"""Give a fresh Compose platform its first champion, through Airflow's REST API.

Unpauses and triggers `bootstrap_movielens` (MovieLens -> Delta, metadata synced to
PostgreSQL), waits for it, then triggers `als_training` (the search trains on the
containers' Spark master and worker, registers in MLflow, promotes the champion and
waits for the API to serve it), showing each task's state as it changes.

    python3 scripts/compose-bootstrap.py                 # what `make compose-bootstrap` runs
    python3 scripts/compose-bootstrap.py --search quick  # a smaller search (CI)

Only the standard library is needed. Ports and the Airflow admin's credentials come
from .env (AIRFLOW_PORT, AIRFLOW_ADMIN_USER, AIRFLOW_ADMIN_PASSWORD, PLATFORM_HOST),
overridden by the environment, the way test-connections.py reads them.
Exit code: 0 when both runs succeeded, 1 when one failed or timed out.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
POLL_SECONDS = 5.0
DAGS = ("bootstrap_movielens", "als_training")
FINISHED = {"success", "failed"}


def _connections_module() -> Any:
    """test-connections.py: one reader of .env and of the platform's ports for both scripts."""
    spec = importlib.util.spec_from_file_location("test_connections", REPO / "test-connections.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


class AirflowError(Exception):
    pass


class Airflow:
    """The few calls of Airflow 3's REST API (/api/v2) this script needs, with a JWT."""

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise AirflowError(f"{method} {path}: HTTP {error.code} {detail}") from error

    def token(self) -> str:
        if self._token is None:
            answer = self._request(
                "POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False
            )
            self._token = answer["access_token"]
        return self._token

    def wait_for_dag(self, dag_id: str, timeout: float) -> None:
        """The DAG exists once the dag-processor has parsed its file.

        Until then the API server may itself be (re)starting: refused or reset
        connections and 5xx answers are waited out too, up to the same deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", f"/api/v2/dags/{dag_id}")
                return
            except AirflowError as error:
                retry = any(f"HTTP {code}" in str(error) for code in (404, 502, 503, 504))
                if not retry or time.monotonic() > deadline:
                    raise
            except OSError:  # urllib's URLError included: not listening yet
                if time.monotonic() > deadline:
                    raise
            time.sleep(POLL_SECONDS)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        quoted = urllib.request.quote(run_id, safe="")
        return str(self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        quoted = urllib.request.quote(run_id, safe="")
        answer = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances")
        return {ti["task_id"]: ti.get("state") for ti in answer.get("task_instances", [])}


def run_dag(airflow: Airflow, dag_id: str, conf: dict[str, Any], timeout: float) -> bool:
    """Trigger one run and follow it to the end, printing each task's state changes."""
    airflow.wait_for_dag(dag_id, timeout=min(timeout, 300.0))
    run_id = airflow.trigger(dag_id, conf)
    print(f"==> {dag_id}: triggered run {run_id}", flush=True)
    started = time.monotonic()
    shown: dict[str, str | None] = {}
    state = "queued"
    while True:
        elapsed = time.monotonic() - started
        try:
            states = airflow.task_states(dag_id, run_id)
            state = airflow.run_state(dag_id, run_id)
        except (AirflowError, OSError) as error:  # an api-server restart is not the run's failure
            print(f"    [{elapsed:5.0f}s] (Airflow did not answer: {error})", flush=True)
            states = shown
        for task_id, task_state in states.items():
            if shown.get(task_id, "-") != task_state:
                print(f"    [{elapsed:5.0f}s] {task_id}: {task_state or 'waiting'}", flush=True)
        shown = dict(states)
        if state in FINISHED:
            print(f"==> {dag_id}: {state} after {elapsed:.0f}s", flush=True)
            return state == "success"
        if elapsed > timeout:
            print(f"==> {dag_id}: still {state} after {timeout:.0f}s; giving up", flush=True)
            return False
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", type=Path, default=REPO / ".env")
    parser.add_argument("--search", default=None, help="the training search (default: the DAG's own)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for each run")
    args = parser.parse_args(argv)

    config = _connections_module().Config.load(args.env_file, os.environ)
    password = config.get("AIRFLOW_ADMIN_PASSWORD")
    if not password:
        print("AIRFLOW_ADMIN_PASSWORD is not set (run ./init.sh first)", file=sys.stderr)
        return 1
    airflow = Airflow(config.url("airflow", ""), config.get("AIRFLOW_ADMIN_USER", "admin"), password)
    # Not forced: the DAG's gate trains when no model is registered or the ratings changed,
    # and skips otherwise. Unpausing the daily DAG starts its latest scheduled run first
    # (max_active_runs=1), and that run trains; this one then finds nothing new.
    training: dict[str, Any] = {}
    if args.search:
        training["search"] = args.search
    for dag_id, conf in zip(DAGS, ({}, training), strict=True):
        if not run_dag(airflow, dag_id, conf, args.timeout):
            print(f"see the task logs in the Airflow UI ({config.url('airflow', '')}) or airflow/logs/")
            return 1
    print("==> the platform has a champion: curl " + config.url("api", "/recommendations/1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
