"""api/.env.example: the API's settings for running it on the host against the platform."""

from __future__ import annotations

from filmrec.config import Settings
from tests.static.static_helpers import ROOT, parse_dotenv
from tests.static.test_compose_file import NEEDED_SETTINGS

API_ENV_EXAMPLE = ROOT / "api" / ".env.example"


def _example() -> dict[str, str]:
    return parse_dotenv(API_ENV_EXAMPLE.read_text(encoding="utf-8"))


def test_names_only_settings_the_code_reads() -> None:
    known = {field.alias for field in Settings.model_fields.values()}
    assert set(_example()) - known == set()


def test_covers_every_setting_the_api_service_gets_in_compose() -> None:
    assert NEEDED_SETTINGS["api"] - set(_example()) == set()


def test_values_validate_and_point_at_the_published_ports() -> None:
    # As keyword arguments: they win over whatever the test process has in its
    # environment (CI exports service URLs; MLflow sets MLFLOW_TRACKING_URI itself).
    settings = Settings(_env_file=None, **_example())  # type: ignore[arg-type]
    assert settings.database_url and "@localhost:5432/" in settings.database_url
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.mlflow_tracking_uri == "http://localhost:5000"
    assert settings.kafka_bootstrap_servers == "localhost:9092"
