"""The one place that builds a SparkSession: local jars, Delta, loopback binding, small shuffles.

Jars come from the local cache resolved by `smart-shelf setup` (`spark.jars`), never from
`--packages`, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os

from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.setup import spark_jars


# G1's concurrent marking took a fifth of the application's CPU on two cores (a small heap
# kept nearly full by short-lived batch garbage); the parallel collector has no concurrent
# phase: throughput 6,570 -> 7,425 events/s, GC 20 -> 7 CPU-s per 90 s live (`bench stream`).
DRIVER_JVM_OPTIONS = "-XX:+UseParallelGC"
ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"

LOCAL_CHECKPOINT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager")


def build_spark(settings: Settings, app_name: str, master: str | None = None,
                extra_conf: dict[str, str] | None = None):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The JVM this starts (local mode: driver and executors) mallocs from dozens of threads;
    # glibc gave each its own arena and kept what they freed: 3.8 GiB resident for a 1 GiB
    # heap, 2.1 GiB with two arenas (`bench stream`).
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName(app_name)
        .master(master or settings.spark_master)
        .config("spark.jars", ",".join(str(p) for p in spark_jars(settings)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog",
                "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        # Micro-batches are small: a handful of shuffle partitions, not Spark's default 200.
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(settings.spark_ui).lower())
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.extraJavaOptions", DRIVER_JVM_OPTIONS)
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.showConsoleProgress", "false")
        # A batch only when there is data (each costs jobs and commits).
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        # Every event id ever applied is kept (`dedupe.drop_repeated`): in RocksDB on disk, not
        # in the heap, each batch committing only its changes (the changelog).
        .config("spark.sql.streaming.stateStore.providerClass", ROCKSDB_PROVIDER)
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        .config("spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage", "true")
        .config("spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB", "256")
        # Every micro-batch plans the same few hundred operators (contract checks of every
        # topic, folds, MERGEs); with Spark's 100 cached classes they were compiled again each
        # batch, and the JIT then compiled the new classes again.
        .config("spark.sql.codegen.cache.maxEntries", "2000")
    )
    if "://" not in settings.delta_root or settings.delta_root.startswith("file:"):
        # Checkpoints on a local disk: Spark's default (FileContext) manager has Hadoop fork
        # `chmod`/`readlink` for every state and offset file it writes, from a JVM of a few
        # GiB, several times per micro-batch and query. The FileSystem one renames in-process,
        # which is atomic on a local disk.
        builder = builder.config("spark.sql.streaming.checkpointFileManagerClass",
                                 LOCAL_CHECKPOINT_MANAGER)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
