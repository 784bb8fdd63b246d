"""fslog serve: start, stop, ApiVersions and Metadata with kafka-python."""

from __future__ import annotations

import pytest
from serve_fixtures import serve  # noqa: F401

kafka = pytest.importorskip("kafka")


def test_kafka_python_metadata_lists_topics_and_partitions(cli, serve):  # noqa: F811
    cli.create("orders", "--partitions", "3")
    c = kafka.KafkaConsumer(bootstrap_servers=serve.bootstrap, request_timeout_ms=20000)
    try:
        assert "orders" in c.topics()
        assert c.partitions_for_topic("orders") == {0, 1, 2}
    finally:
        c.close()
    assert serve.stop() == 0
    err = serve.stderr_text()
    assert "connected" in err and "stopped" in err
