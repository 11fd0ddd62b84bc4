"""One way to build a Spark session with Delta Lake, for every job and test."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from filmrec.config import Settings, get_settings
from filmrec.lakehouse.jars import cached_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def build_spark(*, app_name: str, settings: Settings | None = None) -> SparkSession:
    """A Spark session with Delta Lake, the Kafka source and a checkpoint directory."""
    settings = settings or get_settings()
    # Spark otherwise picks the first non-loopback interface, which may not be routable;
    # the JVM reads the variable, so it is handed on from Settings (SPARK_LOCAL_IP).
    os.environ["SPARK_LOCAL_IP"] = settings.spark_local_ip
    # Python workers run EASE's Gram code (filmrec.training.ease), so they must be an
    # interpreter with filmrec installed: this one unless PYSPARK_PYTHON says otherwise
    # (pyspark reads the variable itself, for the workers of every master).
    os.environ["PYSPARK_PYTHON"] = settings.pyspark_python or sys.executable
    # Read by OpenBLAS when the JVM loads it (local mode: the driver is the executor).
    os.environ["OPENBLAS_NUM_THREADS"] = str(settings.openblas_num_threads)
    from pyspark.sql import SparkSession

    jars = cached_jars(settings.jars_dir)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(str(path) for path in jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # toPandas/createDataFrame through Arrow: the training job hands millions of
        # ratings to numpy, which row by row through pickle takes minutes.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.executorEnv.OPENBLAS_NUM_THREADS", str(settings.openblas_num_threads))
    )
    if settings.spark_master.startswith("local"):
        builder = builder.config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # ALS lineage grows with every iteration; without checkpoints it overflows the stack.
    checkpoint_dir = settings.checkpoint_dir
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    return spark
