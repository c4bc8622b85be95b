"""Reading a member's state at an instant: dimension values, overall score, explanation."""

from __future__ import annotations

import math

from scoring.policy import DIMENSIONS, EXTERNAL, Policy
from scoring.records import ActionContribution, Damping, MemberScore
from scoring.state import MemberKey, MemberState
from scoring.tiers import next_tier

NDIM = len(DIMENSIONS)
PRESENCE_LABELS = ("active days", "active weeks")


def presence_sides(policy: Policy) -> tuple[int, int]:
    """Side numbers of the presence credits; both even so they read as the member's own."""
    base = 2 * len(policy.rule_list)
    return base, base + 2


def _factors(policy: Policy, state: MemberState) -> tuple[float, float]:
    """Multipliers for the member's own credit and for credit received from others."""
    own = policy.spec.automation.damping if state.automation else 1.0
    received = own * (policy.spec.collusion.damping if state.collusion else 1.0)
    return own, received


def damped_masses(policy: Policy, state: MemberState) -> list[float]:
    """Per-dimension forward-decay masses after damping (against `state.landmark`)."""
    own, received = _factors(policy, state)
    totals = [0.0] * NDIM
    for key, mass in state.masses.items():
        totals[key % NDIM] += mass * (received if (key // NDIM) & 1 else own)
    return totals


def values_at(policy: Policy, state: MemberState, t: float) -> list[float]:
    masses = damped_masses(policy, state)
    dt = t - state.landmark
    return [max(0.0, m) * math.exp(-r * dt) for m, r in zip(masses, policy.rates, strict=True)]


def overall(policy: Policy, values: list[float]) -> float:
    """Weighted saturating combination, 0-100; external activity only amplifies."""
    total = weight = 0.0
    for d, (v, s, w) in enumerate(zip(values, policy.scales, policy.weights, strict=True)):
        if d != EXTERNAL:
            total += w * (1.0 - math.exp(-v / s))
            weight += w
    inside = total / weight if weight else 0.0
    boost = 1.0 + policy.spec.external_amplification * (
        1.0 - math.exp(-values[EXTERNAL] / policy.scales[EXTERNAL])
    )
    return 100.0 * min(1.0, inside * boost)


def score_at(policy: Policy, state: MemberState, t: float) -> float:
    return overall(policy, values_at(policy, state, t))


def _top_actions(policy: Policy, state: MemberState, t: float) -> list[ActionContribution]:
    own, received = _factors(policy, state)
    dt = t - state.landmark
    by_side: dict[int, float] = {}
    for key, mass in state.masses.items():
        side, dim = divmod(key, NDIM)
        factor = received if side & 1 else own
        by_side[side] = by_side.get(side, 0.0) + mass * factor * math.exp(-policy.rates[dim] * dt)
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
                f"{insularity:.0%} of their interactions inside that group",
            )
        )
    return out


def explain(
    policy: Policy, key: MemberKey, state: MemberState, t: float, open_caps: dict[int, int]
) -> MemberScore:
    """The member's score at `t` with everything needed to understand and recompute it."""
    values = values_at(policy, state, t)
    caps = dict(state.caps_hit)
    for dim, n in open_caps.items():
        caps[dim] = caps.get(dim, 0) + n
    damping = _damping(policy, state)
    score = overall(policy, values)
    tier = next_tier(policy.tier_floors, policy.spec.hysteresis, state.tier, score)
    return MemberScore(
        community=key[0],
        member=key[1],
        as_of=t,
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
