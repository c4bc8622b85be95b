"""The policy file: the shipped default, and errors that name the bad key."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from scoring.policy import (
    DIMENSIONS,
    PolicyError,
    load_policy,
    parse_policy,
)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "scoring" / "policies" / "default.yaml"
DESIGN_CATALOG = {
    "session.started",
    "post.created",
    "reply.created",
    "comment.created",
    "answer.accepted",
    "thanks.given",
    "reaction.added",
    "suggestion.submitted",
    "suggestion.adopted",
    "event.attended",
    "event.organized",
    "committee.meeting.attended",
    "content.shared",
    "content.removed",
}


def default_raw() -> dict[str, Any]:
    raw = yaml.safe_load(DEFAULT_PATH.read_text("utf-8"))
    assert isinstance(raw, dict)
    return raw


def broken(change: Callable[[dict[str, Any]], object]) -> str:
    raw = default_raw()
    change(raw)
    return yaml.safe_dump(raw)


def error_for(text: str, origin: str = "p.yaml") -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, origin)
    message = str(info.value)
    assert message.startswith(f"{origin}: "), message
    return message


# -- the shipped default -------------------------------------------------------------------------


def test_default_loads_and_knows_the_design_catalog() -> None:
    policy = load_policy()
    assert set(policy.rules) == DESIGN_CATALOG
    assert policy.spec.version == 1
    assert set(policy.spec.dimensions) == set(DIMENSIONS)
    assert policy.tier_floors[0] == 0
    assert list(policy.tier_floors) == sorted(set(policy.tier_floors))


def test_default_from_the_package_equals_the_file() -> None:
    assert load_policy().digest == load_policy(DEFAULT_PATH).digest
    assert load_policy().spec == load_policy(DEFAULT_PATH).spec


def test_default_rules_follow_the_design() -> None:
    policy = load_policy()
    rules = policy.rules
    # external shares never mark presence, and only they credit the external dimension
    assert rules["content.shared"].external and not rules["content.shared"].presence
    external = DIMENSIONS.index("external")
    for name, rule in rules.items():
        credited = {d for d, _ in rule.actor + rule.target}
        assert (external in credited) == (name == "content.shared"), name
    # offline actions are not online presence
    for name in ("event.attended", "event.organized", "committee.meeting.attended"):
        assert not rules[name].presence
    # the response mints more than the act
    for name in ("answer.accepted", "reply.created", "thanks.given", "suggestion.adopted"):
        rule = rules[name]
        assert sum(v for _, v in rule.target) > sum(v for _, v in rule.actor), name
    # removal takes credit from the target
    assert all(v < 0 for _, v in rules["content.removed"].target)
    # external has no weight of its own
    assert policy.weights[external] == 0.0


def test_rates_are_the_half_lives() -> None:
    policy = load_policy()
    for d, dim in enumerate(DIMENSIONS):
        half_life = policy.spec.dimensions[dim].half_life_days * 86_400
        assert math.isclose(policy.rates[d] * half_life, math.log(2), rel_tol=1e-15)


def test_digest_follows_the_text() -> None:
    text = DEFAULT_PATH.read_text("utf-8")
    assert parse_policy(text).digest == parse_policy(text).digest
    assert parse_policy(text + "\n# a comment\n").digest != parse_policy(text).digest


# -- errors name the bad key ---------------------------------------------------------------------


def test_negative_half_life_names_the_key() -> None:
    message = error_for(broken(lambda r: r["dimensions"]["help"].update(half_life_days=-1)))
    assert "dimensions.help.half_life_days" in message


def test_zero_cap_names_the_key() -> None:
    message = error_for(broken(lambda r: r["dimensions"]["offline"].update(daily_cap=0)))
    assert "dimensions.offline.daily_cap" in message


def test_typo_in_an_action_names_the_field_and_the_action() -> None:
    message = error_for(broken(lambda r: r["actions"]["post.created"].update(repeat_decy=0.5)))
    assert "repeat_decy" in message
    assert "actions.post.created" in message


def test_out_of_range_repeat_decay_names_the_action() -> None:
    message = error_for(broken(lambda r: r["actions"]["thanks.given"].update(repeat_decay=1.5)))
    assert "actions.thanks.given.repeat_decay" in message


def test_unknown_dimension_in_credits_is_named() -> None:
    message = error_for(broken(lambda r: r["actions"]["reply.created"]["target"].update(karma=3.0)))
    assert "karma" in message
    assert "actions.reply.created.target" in message


def test_non_finite_credit_is_named() -> None:
    message = error_for(
        broken(lambda r: r["actions"]["post.created"]["actor"].update(contribution=math.inf))
    )
    assert "actions.post.created.actor.contribution" in message


def test_missing_and_unknown_dimensions_are_named() -> None:
    message = error_for(broken(lambda r: r["dimensions"].pop("offline")))
    assert "offline" in message
    message = error_for(broken(lambda r: r["dimensions"].update(karma=r["dimensions"]["help"])))
    assert "karma" in message


@pytest.mark.parametrize("floors", [[0, 40, 10, 55, 75], [0, 10, 10, 55, 75], [5, 10, 40, 55, 75]])
def test_tiers_must_start_at_zero_and_increase(floors: list[float]) -> None:
    def change(raw: dict[str, Any]) -> None:
        for tier, floor in zip(raw["tiers"], floors, strict=True):
            tier["floor"] = floor

    message = error_for(broken(change))
    assert "tiers" in message


def test_unknown_top_level_key_is_named() -> None:
    message = error_for(broken(lambda r: r.update(hysterisis=0.9)))
    assert "hysterisis" in message


def test_no_weight_inside_the_community_is_rejected() -> None:
    def change(raw: dict[str, Any]) -> None:
        for name, dim in raw["dimensions"].items():
            dim["weight"] = 1.0 if name == "external" else 0.0

    message = error_for(broken(change))
    assert "weight" in message


@pytest.mark.parametrize("text", ["a: [1, 2", "version: 1\n  bad: indent\n: x", "{{{"])
def test_not_yaml(text: str) -> None:
    assert "not valid YAML" in error_for(text)


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string", "42"])
def test_not_a_mapping(text: str) -> None:
    assert "mapping" in error_for(text)


def test_missing_section_is_named() -> None:
    assert "dimensions" in error_for("version: 1\n")


def test_wrong_version_is_rejected() -> None:
    assert "version" in error_for(broken(lambda r: r.update(version=2)))


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "policy.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(broken(lambda r: r["dimensions"]["help"].update(half_life_days=-1)))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    assert "dimensions.help.half_life_days" in str(info.value)


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)
