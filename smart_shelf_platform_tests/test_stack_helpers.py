"""Unit tests of the local stack's helpers (no services)."""

from __future__ import annotations

import pytest

from smart_shelf_platform.stack.components import _kafka_cluster_id
from smart_shelf_platform.stack.setup import _artifact


def test_kafka_cluster_ids_never_look_like_an_option():
    # The storage tool reads an id starting with '-' as an option and refuses to format.
    ids = {_kafka_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000 and not any(i.startswith("-") for i in ids)


@pytest.mark.parametrize("jar, artifact", [
    ("jackson-core-2.13.5.jar", "jackson-core"),
    ("spark-sql-kafka-0-10_2.13-4.2.0.jar", "spark-sql-kafka-0-10_2.13"),
    ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
    ("delta-spark_2.13-4.4.0.jar", "delta-spark_2.13"),
    ("hk2-api-3.0.6.jar", "hk2-api"),
])
def test_jar_names_map_to_their_artifact_so_pyspark_duplicates_are_skipped(jar, artifact):
    assert _artifact(jar) == artifact
