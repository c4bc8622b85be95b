"""Fixtures shared by the scoring-engine unit tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from scoring.policy import DIMENSIONS, Policy, load_policy, parse_policy

PolicyFactory = Callable[..., Policy]


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    return load_policy()


def policy_text(
    actions: dict[str, Any] | None = None,
    dimensions: dict[str, dict[str, float]] | None = None,
    **top: Any,
) -> str:
    """YAML for a small policy whose numbers make hand-computed expectations easy.

    Every dimension has a 10-day half-life, a cap nobody reaches, scale 100 and weight 0, except
    contribution (weight 1); `dimensions` overrides fields per dimension, `top` top-level keys.
    """
    dims: dict[str, dict[str, float]] = {
        name: {"half_life_days": 10.0, "daily_cap": 1e6, "scale": 100.0, "weight": 0.0}
        for name in DIMENSIONS
    }
    dims["contribution"]["weight"] = 1.0
    for name, fields in (dimensions or {}).items():
        dims[name].update(fields)
    raw: dict[str, Any] = {
        "version": 1,
        "dimensions": dims,
        "tiers": [{"name": "low", "floor": 0}, {"name": "high", "floor": 50}],
        "actions": actions
        if actions is not None
        else {"post": {"actor": {"contribution": 1.0}, "presence": True}},
    }
    raw.update(top)
    return yaml.safe_dump(raw, sort_keys=False)


@pytest.fixture(scope="session")
def make_policy() -> PolicyFactory:
    """`make_policy(actions=..., dimensions=..., **top)`: a parsed small policy."""

    def build(
        actions: dict[str, Any] | None = None,
        dimensions: dict[str, dict[str, float]] | None = None,
        **top: Any,
    ) -> Policy:
        return parse_policy(policy_text(actions, dimensions, **top), "<test policy>")

    return build
