"""airflow/config: every setting is one Airflow knows, and the files parse."""

from __future__ import annotations

import ast
import configparser
from importlib import resources
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from tests.conftest import require

CONFIG = Path(__file__).resolve().parents[2] / "airflow" / "config"
# Sections that belong to providers not installed in the test environment.
PROVIDER_SECTIONS = {"fab"}


def test_airflow_cfg_sets_only_known_options() -> None:
    try:
        template = resources.files("airflow.config_templates").joinpath("config.yml").read_text()
    except ModuleNotFoundError:
        require(False, "apache-airflow (pip install -e '.[airflow]')")
    known = {section: set(body["options"]) for section, body in yaml.safe_load(template).items()}
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(CONFIG / "airflow.cfg")
    unknown = [
        f"[{section}] {key}"
        for section in parser.sections()
        if section not in PROVIDER_SECTIONS
        for key in parser[section]
        if key not in known.get(section, set())
    ]
    assert unknown == []
    assert parser["core"]["load_examples"] == "False"
    assert parser["core"]["auth_manager"].endswith("FabAuthManager")  # as docker-compose.yml sets it


def test_connections_yaml_defines_the_platform_connections() -> None:
    connections = yaml.safe_load((CONFIG / "connections.yaml").read_text())
    assert set(connections) == {
        "spark_default",
        "postgres_default",
        "kafka_default",
        "mlflow_default",
        "redis_default",
    }
    assert all("conn_type" in body for body in connections.values())
    assert connections["spark_default"]["extra"]["spark-binary"] == "spark-submit"
    assert not any("password" in body for body in connections.values())  # the file is in git


def test_webserver_config_uses_database_auth_without_public_access() -> None:
    tree = ast.parse((CONFIG / "webserver_config.py").read_text())
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert isinstance(assigned["AUTH_TYPE"], ast.Name) and assigned["AUTH_TYPE"].id == "AUTH_DB"
    assert ast.literal_eval(assigned["AUTH_ROLE_PUBLIC"]) is None
    assert ast.literal_eval(assigned["AUTH_USER_REGISTRATION"]) is False


def test_image_requirements_are_valid_specifiers() -> None:
    lines = [line.split("#")[0].strip() for line in (CONFIG / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    assert {r.name for r in requirements} >= {"apache-airflow-providers-fab"}
