"""fslog serve's admin APIs with real admin clients: CreateTopics, DeleteTopics,
DescribeConfigs, IncrementalAlterConfigs (confluent-kafka) and kafka-python's admin."""

from __future__ import annotations

import pytest
from serve_fixtures import serve  # noqa: F401


def test_confluent_admin_creates_describes_alters_and_deletes(cli, serve):  # noqa: F811
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
    a = AdminClient({"bootstrap.servers": serve.bootstrap})
    fs = a.create_topics([NewTopic("adm", 3, 1, config={"retention.ms": "60000"})])
    fs["adm"].result(30)
    assert cli.log().topic("adm").partition_count == 3
    assert cli.log().topic("adm").config.overrides == {"retention.ms": 60000}
    bad = a.create_topics([NewTopic("adm", 1, 1), NewTopic("adm2", 1, 3),
                           NewTopic("adm3", 1, 1, config={"no.such.key": "1"})])
    for name, why in (("adm", "already exists"), ("adm2", "replica"), ("adm3", "no.such.key")):
        with pytest.raises(Exception, match=why):
            bad[name].result(30)
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm")
    desc = a.describe_configs([res])[res].result(30)
    assert desc["retention.ms"].value == "60000" and not desc["retention.ms"].is_default
    assert desc["segment.bytes"].is_default
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(30)
    assert cli.log().topic("adm").config.overrides == {"segment.bytes": 1048576}
    bad_res = ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("segment.bytes", "lots", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException, match="segment.bytes"):
        a.incremental_alter_configs([bad_res])[bad_res].result(30)
    assert cli.log().topic("adm").config.overrides == {"segment.bytes": 1048576}
    a.delete_topics(["adm"])["adm"].result(30)
    assert "adm" not in cli.log().topics()
    with pytest.raises(KafkaException, match="UNKNOWN_TOPIC"):
        a.delete_topics(["adm"])["adm"].result(30)


def test_kafka_python_admin(cli, serve):  # noqa: F811
    from kafka.admin import KafkaAdminClient, NewTopic
    a = KafkaAdminClient(bootstrap_servers=serve.bootstrap)
    try:
        a.create_topics([NewTopic("kp", 2, 1)])
        assert "kp" in a.list_topics()
        a.delete_topics(["kp"])
        assert "kp" not in cli.log().topics()
    finally:
        a.close()
