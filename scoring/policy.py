"""Scoring policy: the YAML file that says what each action earns, validated and compiled."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

import msgspec
import yaml

DIMENSIONS: tuple[str, ...] = (
    "contribution",
    "help",
    "presence",
    "offline",
    "recognition",
    "external",
)
DIM_INDEX = {name: i for i, name in enumerate(DIMENSIONS)}
PRESENCE = DIM_INDEX["presence"]
EXTERNAL = DIM_INDEX["external"]
DAY_SECONDS = 86_400.0

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the bad key."""


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    pass


class DimensionSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    half_life_days: Positive
    daily_cap: Positive
    scale: Positive
    weight: NonNegative


class PresenceSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    day_credit: NonNegative = 1.0
    week_credit: NonNegative = 0.5


class TierSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    floor: Annotated[float, msgspec.Meta(ge=0, lt=100)]


class AutomationSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    min_events: Annotated[int, msgspec.Meta(ge=3)] = 12
    max_burstiness: Annotated[float, msgspec.Meta(ge=-1, le=1)] = -0.6
    damping: Fraction = 0.1


class CollusionSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    min_interactions: Annotated[int, msgspec.Meta(ge=1)] = 12
    max_group: Annotated[int, msgspec.Meta(ge=1)] = 5
    min_insularity: Fraction = 0.8
    damping: Fraction = 0.1
    window_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 90


class ActionSpec(_Strict, forbid_unknown_fields=True, frozen=True):
    presence: bool = False
    external: bool = False
    cadence: bool = False
    repeat_decay: Fraction = 1.0
    actor: dict[str, float] = {}
    target: dict[str, float] = {}


class PolicySpec(_Strict, forbid_unknown_fields=True, frozen=True):
    version: Annotated[int, msgspec.Meta(ge=1, le=1)]
    dimensions: dict[str, DimensionSpec]
    tiers: Annotated[list[TierSpec], msgspec.Meta(min_length=1)]
    actions: dict[str, ActionSpec]
    late_days: Annotated[int, msgspec.Meta(ge=0, le=30)] = 3
    future_skew_seconds: NonNegative = 300.0
    change_threshold: Positive = 2.0
    hysteresis: Fraction = 0.9
    external_amplification: NonNegative = 0.1
    combine_power: Annotated[float, msgspec.Meta(ge=1, le=8)] = 2.0
    landmark_rebase_exponent: Annotated[float, msgspec.Meta(ge=10, le=700)] = 500.0
    presence: PresenceSpec = PresenceSpec()
    automation: AutomationSpec = AutomationSpec()
    collusion: CollusionSpec = CollusionSpec()


@dataclass(frozen=True, slots=True)
class ActionRule:
    """An action type compiled for the hot path: credits as (dimension index, value) pairs."""

    name: str
    index: int
    presence: bool
    external: bool
    cadence: bool
    repeat_decay: float
    actor: tuple[tuple[int, float], ...]
    target: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy, with per-dimension decay rates precomputed."""

    spec: PolicySpec
    digest: str
    rules: dict[str, ActionRule]
    rule_list: tuple[ActionRule, ...]
    rates: tuple[float, ...]  # lambda per dimension, per second
    caps: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    tier_names: tuple[str, ...]
    tier_floors: tuple[float, ...]
    inside_dims: tuple[tuple[int, float, float, float], ...]  # (dim, rate, scale, weight)
    inside_weight: float

    @property
    def max_rate(self) -> float:
        return max(self.rates)


def _credits(spec: dict[str, float], where: str) -> tuple[tuple[int, float], ...]:
    out = []
    for dim, value in sorted(spec.items()):
        if dim not in DIM_INDEX:
            raise PolicyError(f"{where}.{dim}: unknown dimension (expected one of {DIMENSIONS})")
        if not math.isfinite(value):
            raise PolicyError(f"{where}.{dim}: credit must be a finite number")
        out.append((DIM_INDEX[dim], float(value)))
    return tuple(out)


def compile_policy(spec: PolicySpec, digest: str) -> Policy:
    """Check cross-field rules and precompute what the engine needs per event."""
    missing = [d for d in DIMENSIONS if d not in spec.dimensions]
    unknown = [d for d in spec.dimensions if d not in DIM_INDEX]
    if missing or unknown:
        raise PolicyError(f"dimensions: missing {missing}, unknown {unknown}; need {DIMENSIONS}")
    floors = [t.floor for t in spec.tiers]
    if floors[0] != 0 or floors != sorted(set(floors)):
        raise PolicyError("tiers: floors must start at 0 and strictly increase")
    rules: dict[str, ActionRule] = {}
    for index, (name, action) in enumerate(sorted(spec.actions.items())):
        where = f"actions.{name}"
        rules[name] = ActionRule(
            name=name,
            index=index,
            presence=action.presence and not action.external,
            external=action.external,
            cadence=action.cadence,
            repeat_decay=action.repeat_decay,
            actor=_credits(action.actor, f"{where}.actor"),
            target=_credits(action.target, f"{where}.target"),
        )
    dims = [spec.dimensions[d] for d in DIMENSIONS]
    rates = tuple(math.log(2) / (d.half_life_days * DAY_SECONDS) for d in dims)
    inside = tuple(
        (i, rates[i], d.scale, d.weight) for i, d in enumerate(dims) if i != EXTERNAL and d.weight
    )
    if not inside:
        raise PolicyError("dimensions: at least one dimension other than external needs a weight")
    return Policy(
        spec=spec,
        digest=digest,
        rules=rules,
        rule_list=tuple(rules.values()),
        rates=rates,
        caps=tuple(d.daily_cap for d in dims),
        scales=tuple(d.scale for d in dims),
        weights=tuple(d.weight for d in dims),
        tier_names=tuple(t.name for t in spec.tiers),
        tier_floors=tuple(floors),
        inside_dims=inside,
        inside_weight=sum(w for *_, w in inside),
    )


def _check_named_sections(raw: object, origin: str) -> None:
    """Validate map-valued sections entry by entry, so an error names the dimension or action."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{origin}: expected a mapping at the top level")
    for section, spec_type in (("dimensions", DimensionSpec), ("actions", ActionSpec)):
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            try:
                msgspec.convert(value, spec_type)
            except msgspec.ValidationError as exc:
                detail = str(exc).replace("`$.", f"`{section}.{name}.")
                if " - at `" not in detail:
                    detail += f" - at `{section}.{name}`"
                raise PolicyError(f"{origin}: {detail}") from exc


def parse_policy(text: str, origin: str = "<policy>") -> Policy:
    """Parse and validate policy YAML; errors name the file and the offending key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin}: not valid YAML: {exc}") from exc
    _check_named_sections(raw, origin)
    try:
        spec = msgspec.convert(raw, PolicySpec)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"{origin}: {exc}") from exc
    try:
        return compile_policy(spec, hashlib.sha256(text.encode()).hexdigest()[:12])
    except PolicyError as exc:
        raise PolicyError(f"{origin}: {exc}") from exc


def load_policy(path: Path | None = None) -> Policy:
    """Load a policy file, or the shipped default when `path` is None."""
    if path is None:
        text = resources.files("scoring").joinpath("policies/default.yaml").read_text("utf-8")
        return parse_policy(text, "default.yaml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy: {exc.strerror}") from exc
    return parse_policy(text, str(path))
