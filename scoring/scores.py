"""Reading a member's state at an instant: dimension values, overall score, explanation."""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from scoring.policy import DIMENSIONS, EXTERNAL, Policy
from scoring.records import ActionContribution, Damping, MemberScore, rfc3339
from scoring.state import MemberKey, MemberState
from scoring.tiers import next_tier

NDIM = len(DIMENSIONS)
PRESENCE_LABELS = ("active days", "active weeks")


def presence_sides(policy: Policy) -> tuple[int, int]:
    """Side numbers of the presence credits; both even so they read as the member's own."""
    base = 2 * len(policy.rule_list)
    return base, base + 2


def side_factors(policy: Policy, state: MemberState) -> list[float]:
    """Credit multiplier per side: automation damps everything, collusion every interaction."""
    own = policy.spec.automation.damping if state.automation else 1.0
    group = policy.spec.collusion.damping if state.collusion else 1.0
    factors = []
    for rule in policy.rule_list:
        interaction = own * group if rule.target else own
        factors += [interaction, interaction]
    return factors + [own, own, own]


def damped_masses(policy: Policy, state: MemberState) -> list[float]:
    """Per-dimension forward-decay masses after damping (against `state.landmark`)."""
    totals = [0.0] * NDIM
    if not (state.automation or state.collusion):
        for key, mass in state.masses.items():
            totals[key % NDIM] += mass
        return totals
    factors = side_factors(policy, state)
    for key, mass in state.masses.items():
        totals[key % NDIM] += mass * factors[key // NDIM]
    return totals


def values_at(policy: Policy, state: MemberState, t: float) -> list[float]:
    masses = damped_masses(policy, state)
    dt = t - state.landmark
    return [max(0.0, m) * math.exp(-r * dt) for m, r in zip(masses, policy.rates, strict=True)]


def overall(policy: Policy, values: list[float]) -> float:
    """0-100: a weighted power mean of saturated dimensions; external activity only amplifies.

    A power above 1 lets excellence in one dimension (an organiser's offline work, a helper's
    answers) count for more than a thin spread over all of them.
    """
    p = policy.spec.combine_power
    total = weight = 0.0
    for d, (v, s, w) in enumerate(zip(values, policy.scales, policy.weights, strict=True)):
        if d != EXTERNAL:
            total += w * (1.0 - math.exp(-v / s)) ** p
            weight += w
    inside = (total / weight) ** (1.0 / p) if weight else 0.0
    boost = 1.0 + policy.spec.external_amplification * (
        1.0 - math.exp(-values[EXTERNAL] / policy.scales[EXTERNAL])
    )
    return 100.0 * min(1.0, inside * boost)


def score_at(policy: Policy, state: MemberState, t: float) -> float:
    """Same as overall(values_at(...)), written for the per-event hot path."""
    return score_curve(policy, state)(t)


def score_curve(policy: Policy, state: MemberState) -> Callable[[float], float]:
    """The member's score as a function of time, with no new events (masses read once)."""
    masses = damped_masses(policy, state)
    landmark = state.landmark
    p = policy.spec.combine_power
    terms = [(masses[d], rate, scale, weight) for d, rate, scale, weight in policy.inside_dims]
    terms = [term for term in terms if term[0] > 0.0]
    inv_weight = 1.0 / policy.inside_weight
    external = masses[EXTERNAL]
    ext_rate, ext_scale = policy.rates[EXTERNAL], policy.scales[EXTERNAL]
    amplification = policy.spec.external_amplification
    exp = math.exp

    def curve(t: float) -> float:
        dt = t - landmark
        total = 0.0
        for mass, rate, scale, weight in terms:
            saturation = 1.0 - exp(-mass * exp(-rate * dt) / scale)
            total += weight * (saturation * saturation if p == 2.0 else saturation**p)
        inside: float = (total * inv_weight) ** (1.0 / p)
        if external > 0.0:
            inside *= 1.0 + amplification * (1.0 - exp(-external * exp(-ext_rate * dt) / ext_scale))
        return 100.0 * min(1.0, inside)

    return curve


def _top_actions(policy: Policy, state: MemberState, t: float) -> list[ActionContribution]:
    factors = side_factors(policy, state)
    dt = t - state.landmark
    by_side: dict[int, float] = {}
    for key, mass in state.masses.items():
        side, dim = divmod(key, NDIM)
        decayed = mass * factors[side] * math.exp(-policy.rates[dim] * dt)
        by_side[side] = by_side.get(side, 0.0) + decayed
    first_presence = presence_sides(policy)[0]
    out = []
    for side, value in by_side.items():
        if side >= first_presence:
            label, role = PRESENCE_LABELS[(side - first_presence) // 2], "given"
        else:
            label, role = policy.rule_list[side // 2].name, ("received" if side & 1 else "given")
        out.append(ActionContribution(label, role, round(value, 6)))
    out.sort(key=lambda a: (-a.value, a.action, a.role))
    return out[:5]


def _damping(policy: Policy, state: MemberState) -> list[Damping]:
    out = []
    if state.automation:
        action, b = state.automation
        out.append(
            Damping(
                "automation_suspected",
                policy.spec.automation.damping,
                f"{action} arrives near-periodically (burstiness {b:.2f})",
            )
        )
    if state.collusion:
        size, insularity = state.collusion
        out.append(
            Damping(
                "collusion_suspected",
                policy.spec.collusion.damping,
                f"received credit comes from {size} members who keep "
                f"{insularity:.0%} of their interactions inside that group; "
                "interaction credit damped",
            )
        )
    return out


def explain(
    policy: Policy, key: MemberKey, state: MemberState, t: float, open_caps: dict[int, int]
) -> MemberScore:
    """The member's score at `t` with everything needed to understand and recompute it."""
    values = values_at(policy, state, t)
    caps = dict(state.caps_hit or {})
    for dim, n in open_caps.items():
        caps[dim] = caps.get(dim, 0) + n
    damping = _damping(policy, state)
    score = overall(policy, values)
    tier = next_tier(policy.tier_floors, policy.spec.hysteresis, state.tier, score)
    return MemberScore(
        community=key[0],
        member=key[1],
        as_of=rfc3339(t),
        score=score,
        tier=policy.tier_names[tier],
        dimensions={name: values[d] for d, name in enumerate(DIMENSIONS)},
        flags=[d.reason for d in damping],
        top_actions=_top_actions(policy, state, t),
        caps_hit={DIMENSIONS[d]: n for d, n in sorted(caps.items())},
        damping=damping,
        landmark=state.landmark,
        masses={name: m for name, m in zip(DIMENSIONS, damped_masses(policy, state), strict=True)},
    )


def snapshot_at(policy: Policy, snapshot: MemberScore, t: float) -> MemberScore:
    """A stored snapshot evaluated at another instant, from its masses and landmark alone."""
    dt = t - snapshot.landmark
    values = [
        max(0.0, snapshot.masses.get(name, 0.0)) * math.exp(-rate * dt)
        for name, rate in zip(DIMENSIONS, policy.rates, strict=True)
    ]
    score = overall(policy, values)
    held = policy.tier_names.index(snapshot.tier) if snapshot.tier in policy.tier_names else 0
    tier = next_tier(policy.tier_floors, policy.spec.hysteresis, held, score)
    return msgspec.structs.replace(
        snapshot,
        as_of=rfc3339(t),
        score=score,
        tier=policy.tier_names[tier],
        dimensions={name: values[d] for d, name in enumerate(DIMENSIONS)},
    )
