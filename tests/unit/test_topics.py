"""Topic names derived from a prefix, and the settings each topic is created with."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.cli import main
from stream.kafka_security import KafkaSecurity
from stream.topics import TopicNames, TopicSpec, topic_specs


def test_default_names() -> None:
    names = TopicNames()
    assert (
        names.activity,
        names.dead_letters,
        names.score_changes,
        names.scores,
        names.credits,
        names.edges,
    ) == (
        "hearth.activity",
        "hearth.activity.dlq",
        "hearth.score-changes",
        "hearth.scores",
        "hearth.credits",
        "hearth.edges",
    )


def test_prefix_applies_to_every_name() -> None:
    names = TopicNames("t1234abcd.")
    assert names.activity == "t1234abcd.activity"
    assert names.dead_letters == "t1234abcd.activity.dlq"
    assert all(name.startswith("t1234abcd.") for name in names.all())
    assert len(set(names.all())) == 6


def test_specs_cover_every_topic_with_one_partition_count() -> None:
    names = TopicNames("x.")
    specs = topic_specs(names, partitions=8)
    assert [spec.name for spec in specs] == list(names.all())
    assert {spec.partitions for spec in specs} == {8}


def test_only_scores_is_compacted() -> None:
    specs = {spec.name: spec for spec in topic_specs()}
    assert specs["hearth.scores"].config == {"cleanup.policy": "compact"}
    assert all(not spec.config for name, spec in specs.items() if name != "hearth.scores")


def test_spec_config_defaults_to_empty() -> None:
    assert TopicSpec("a", 1).config == {}


def test_security_kwargs() -> None:
    assert KafkaSecurity().as_kwargs() == {"security_protocol": "PLAINTEXT"}
    sasl = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "hearth", "s3cret")
    assert sasl.as_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "hearth",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(sasl)
    ssl = KafkaSecurity("SASL_SSL", "PLAIN", "hearth", "s3cret").as_kwargs()
    assert ssl["ssl_context"].check_hostname is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"protocol": "plaintext"},
        {"protocol": "SASL_SSL", "username": "u", "password": "p"},
        {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "u"},
    ],
)
def test_security_rejects_incomplete_settings(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        KafkaSecurity(**kwargs)


CREDENTIAL_VARIABLES = ("SASL_MECHANISM", "USERNAME", "PASSWORD", "SSL_CAFILE")


def test_publish_refuses_incomplete_credentials_before_connecting(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"id":"a"}\n')
    unset: dict[str, str | None] = {f"HEARTH_KAFKA__{name}": None for name in CREDENTIAL_VARIABLES}
    result = CliRunner().invoke(
        main,
        ["publish", str(events), "--bootstrap", "127.0.0.1:1"],
        env={**unset, "HEARTH_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
    )
    assert result.exit_code == 2, result.output
    assert "SASL_PLAINTEXT needs sasl_mechanism" in result.output
