"""A Spark session configured from the ``spark`` section of the settings."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from fraudgraph.config import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def build_spark_session(settings: SparkSettings, master: str | None = None) -> SparkSession:
    """Create (or reuse) the Spark session: UTC, few shuffle partitions, UI off, loopback bind.

    Executors must run this interpreter (with fraudgraph installed), so
    ``PYSPARK_PYTHON`` is pinned to ``sys.executable`` unless already set.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", settings.bind_address)  # loopback only
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master or settings.master)
        .appName(settings.app_name)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.default.parallelism", str(settings.shuffle_partitions))
        .config("spark.ui.enabled", str(settings.ui_enabled).lower())
        .config("spark.ui.showConsoleProgress", "true")
        .config("spark.driver.bindAddress", settings.bind_address)
        .config("spark.driver.host", settings.bind_address)
        .config("spark.driver.extraJavaOptions", settings.driver_java_options)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "true")
    )
    for key, value in settings.conf.items():
        builder = builder.config(key, str(value))
    if settings.conf.get("spark.sql.catalogImplementation") == "hive":
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
