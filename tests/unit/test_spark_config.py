"""spark/config/: what the images copy is what the native stack renders and runs."""

from __future__ import annotations

from pathlib import Path

from devstack.stack import COMPOSE_VAR_DIR, SPARK_CONFIG, render_spark_conf, spark_defaults


def test_defaults_enable_delta_and_checkpoint_on_the_shared_volume() -> None:
    defaults = spark_defaults(SPARK_CONFIG / "spark-defaults.conf")
    assert defaults["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert defaults["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    # ALS dies of a StackOverflowError at ~15 iterations without checkpoints.
    assert defaults["spark.checkpoint.dir"].startswith(f"file://{COMPOSE_VAR_DIR}/")


def test_rendered_conf_maps_the_var_volume_and_creates_its_directories(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    conf_dir = render_spark_conf(conf_dir=tmp_path / "conf", var_dir=var_dir)

    assert sorted(path.name for path in conf_dir.iterdir()) == sorted(
        path.name for path in SPARK_CONFIG.iterdir()
    )
    rendered = spark_defaults(conf_dir / "spark-defaults.conf")
    assert not any(COMPOSE_VAR_DIR in value for value in rendered.values())
    assert rendered.keys() == spark_defaults(SPARK_CONFIG / "spark-defaults.conf").keys()
    assert (var_dir / "spark-checkpoints").is_dir()
    assert (var_dir / "spark-events").is_dir()
    assert (conf_dir / "log4j2.properties").read_text() == (SPARK_CONFIG / "log4j2.properties").read_text()


def test_rendering_twice_is_harmless(tmp_path: Path) -> None:
    first = render_spark_conf(conf_dir=tmp_path / "conf", var_dir=tmp_path / "var")
    before = (first / "spark-defaults.conf").read_text()
    render_spark_conf(conf_dir=tmp_path / "conf", var_dir=tmp_path / "var")
    assert (first / "spark-defaults.conf").read_text() == before
