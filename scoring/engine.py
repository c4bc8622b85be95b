"""The scoring engine: applies activity events to member states and reads scores from them.

Pure: no I/O, no clock. Member states live in any MutableMapping (a dict for replay, a Faust
table in the service), so both runners drive the same code and give the same numbers.
"""

from __future__ import annotations

import math
from bisect import insort
from collections.abc import MutableMapping
from enum import StrEnum

import xxhash

from scoring import cadence
from scoring.collusion import InteractionGraph
from scoring.policy import DAY_SECONDS, PRESENCE, ActionRule, Policy
from scoring.records import MemberScore, ScoreChange, rfc3339
from scoring.scores import NDIM, explain, presence_sides, score_at, score_curve
from scoring.state import ACTOR, TARGET, DayBucket, MemberKey, MemberState
from scoring.tiers import crossing_time, next_tier

WEEK_OFFSET_DAYS = 3  # 1970-01-01 was a Thursday; weeks start on Monday
CADENCE_WINDOW = 96  # most recent open-day events judged when that many are pending


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    TOO_LATE = "too_late"
    SELF_INTERACTION = "self_interaction"
    UNKNOWN_TYPE = "unknown_type"


_SIDE_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads the side over every bit
_MASK64 = (1 << 64) - 1


def stable_hash(text: str, seed: int = 0) -> int:
    """A 64-bit hash that is the same in every process (Python's str hash is not)."""
    return xxhash.xxh3_64_intdigest(text.encode(), seed)


def week_of(day: int) -> int:
    return (day + WEEK_OFFSET_DAYS) // 7


class Engine:
    """Applies events to member states held in `states`.

    Determinism: a day's credit depends only on that day's set of events, and a day stays open
    until the member's newest day (or, in the service, the inputs' low watermark) is `late_days`
    past it; events for closed days are rejected as too late. So any arrival order that keeps
    events within that window gives the same state.
    """

    def __init__(
        self,
        policy: Policy,
        states: MutableMapping[MemberKey, MemberState] | None = None,
        *,
        graph: InteractionGraph | None = None,
        salt: int = 0,
    ) -> None:
        self.policy = policy
        self.states: MutableMapping[MemberKey, MemberState] = {} if states is None else states
        self.graph = InteractionGraph(policy.spec.collusion) if graph is None else graph
        self._seed = salt
        spec = policy.spec
        self._late = spec.late_days
        self._presence_day, self._presence_week = presence_sides(policy)
        self._side_credits: list[tuple[tuple[int, float], ...]] = []
        self._side_decay: list[float] = []
        for rule in policy.rule_list:
            for credits in (rule.actor, rule.target):
                self._side_credits.append(credits)
                self._side_decay.append(rule.repeat_decay)
        self._caps = policy.caps
        self._rates = policy.rates
        self._max_rate = policy.max_rate
        exponent = policy.spec.landmark_rebase_exponent
        self._landmark_period = max(1, int(exponent / 2 / (self._max_rate * DAY_SECONDS)))
        self._collusion_flagged: set[MemberKey] = set()
        self._open_days: dict[int, set[MemberKey]] = {}  # day -> members with that day open
        # None: a member's days close `late_days` after its own newest day (time-ordered input,
        # as in replay). A streaming runner whose inputs advance unevenly sets this instead to
        # the first day that must stay open, from the low watermark of all its inputs.
        self.close_horizon: int | None = None

    # -- applying events -------------------------------------------------------------------

    def apply(
        self,
        event_id: str,
        action: str,
        community: str,
        actor: str,
        t: float,
        target: str | None = None,
    ) -> Outcome:
        """Apply one event (both sides of an interaction). `t` is event time in epoch seconds."""
        rule = self.policy.rules.get(action)
        if rule is None:
            return Outcome.UNKNOWN_TYPE
        if target == actor:
            return Outcome.SELF_INTERACTION
        id_hash = stable_hash(event_id, self._seed)
        outcome = self.apply_side((community, actor), rule, ACTOR, t, id_hash, target)
        if outcome is Outcome.APPLIED and target is not None and rule.target:
            self.apply_side((community, target), rule, TARGET, t, id_hash ^ 1, actor)
            if any(value > 0 for _, value in rule.target):
                self.graph.add(community, actor, target, int(t // DAY_SECONDS))
        return outcome

    def apply_side(
        self,
        key: MemberKey,
        rule: ActionRule,
        role: int,
        t: float,
        id_hash: int,
        counterpart: str | None,
    ) -> Outcome:
        """Apply the actor's or the target's side of an event to that member's state."""
        day = int(t // DAY_SECONDS)
        state = self.states.get(key)
        if state is None:
            state = MemberState(landmark=self._landmark_for(day))
        if self.close_horizon is not None:
            self._close_before(state, self.close_horizon)
        if day > state.newest_day:
            self._advance(state, day)
        if day <= state.closed_day:
            return Outcome.TOO_LATE
        bucket = state.buckets.get(day)
        if bucket is None:
            bucket = state.buckets[day] = DayBucket()
            if self.close_horizon is None:  # only the replay closes days by sweeping this index
                self._open_days.setdefault(day, set()).add(key)
        if id_hash in bucket.ids:
            return Outcome.DUPLICATE
        bucket.ids.add(id_hash)
        if t > state.newest_time:
            state.newest_time = t
        side = rule.index * 2 + role
        bucket.counts[side] = bucket.counts.get(side, 0) + 1
        if counterpart is None:
            weight = 1.0
        else:
            if bucket.peers is None:
                bucket.peers = {}
            # The side goes in after hashing: xxh3 maps short inputs under nearby seeds to equal
            # hashes, which made different counterparts on different sides one repeat.
            peer = stable_hash(counterpart, self._seed) ^ (side * _SIDE_MIX & _MASK64)
            repeats = bucket.peers.get(peer, 0)
            bucket.peers[peer] = repeats + 1
            weight = 0.5**repeats
        bucket.effective[side] = bucket.effective.get(side, 0.0) + weight
        if role == ACTOR:
            if rule.presence and not bucket.active:
                self._mark_active(state, bucket, day)
            if rule.cadence:
                self._record_cadence(state, bucket, rule.index, t)
        if self._side_credits[side]:
            self._book(state, bucket, day)
        self.states[key] = state
        return Outcome.APPLIED

    def _advance(self, state: MemberState, day: int) -> None:
        state.newest_day = day
        if self.close_horizon is None:
            self._close_before(state, day - self._late)
        landmark = self._landmark_for(day)
        if landmark > state.landmark:
            self._rebase(state, landmark)

    def _close_before(self, state: MemberState, horizon: int) -> None:
        """Close the member's days before `horizon`: events for them are too late from now on."""
        if horizon - 1 <= state.closed_day:
            return
        state.closed_day = horizon - 1
        for day in sorted(d for d in state.buckets if d < horizon):
            self._close(state, state.buckets.pop(day))
        if state.weeks:
            first_open_week = week_of(horizon)
            state.weeks = tuple(w for w in state.weeks if w >= first_open_week)

    def close_days_before(self, horizon: int) -> int:
        """Close every member's days before `horizon` (the stream's watermark minus lateness).

        Closed days keep their credit; only the detail that late events would need is dropped,
        which bounds memory by the members active in the last `late_days` days.
        """
        closed = 0
        for day in sorted(d for d in self._open_days if d < horizon):
            for key in sorted(self._open_days.pop(day)):
                state = self.states.get(key)
                if state is not None and state.closed_day < horizon - 1:
                    self._close_before(state, horizon)
                    self.states[key] = state
                    closed += 1
        return closed

    def _landmark_for(self, day: int) -> float:
        """Landmarks step in fixed periods of the newest day, so they do not depend on order.

        A period keeps exp(rate * (t - landmark)) far below overflow for any t in it.
        """
        period = self._landmark_period
        return float((day // period) * period) * DAY_SECONDS

    def _rebase(self, state: MemberState, landmark: float) -> None:
        shift = landmark - state.landmark
        state.masses = {
            key: mass * math.exp(-self._rates[key % NDIM] * shift)
            for key, mass in state.masses.items()
        }
        state.landmark = landmark

    def _day_credit(self, bucket: DayBucket) -> tuple[dict[int, float], list[float]]:
        """Uncapped credit per mass key for one day, and the positive total per dimension."""
        raw: dict[int, float] = {}
        positive = [0.0] * NDIM
        for side, n in bucket.counts.items():
            credits = self._side_credits[side]
            if not credits:
                continue
            r = self._side_decay[side]
            repeats = n if r == 1.0 else (1.0 - r**n) / (1.0 - r)
            amount = repeats * bucket.effective[side] / n
            for dim, value in credits:
                credit = value * amount
                raw[side * NDIM + dim] = credit
                if credit > 0:
                    positive[dim] += credit
        return raw, positive

    def _book(self, state: MemberState, bucket: DayBucket, day: int) -> None:
        """Bring the masses in line with the day's capped credit."""
        raw, positive = self._day_credit(bucket)
        caps = self._caps
        credited = bucket.credited
        if credited is None:
            credited = bucket.credited = {}
        masses = state.masses
        anchor_age = day * DAY_SECONDS - state.landmark
        for key, credit in raw.items():
            dim = key % NDIM
            if credit > 0 and positive[dim] > caps[dim]:
                credit *= caps[dim] / positive[dim]
            delta = credit - credited.get(key, 0.0)
            if delta:
                credited[key] = credit
                masses[key] = masses.get(key, 0.0) + delta * math.exp(self._rates[dim] * anchor_age)

    def _add_presence(self, state: MemberState, side: int, value: float, at: float) -> None:
        key = side * NDIM + PRESENCE
        grow = math.exp(self._rates[PRESENCE] * (at - state.landmark))
        state.masses[key] = state.masses.get(key, 0.0) + value * grow

    def _mark_active(self, state: MemberState, bucket: DayBucket, day: int) -> None:
        bucket.active = True
        presence = self.policy.spec.presence
        self._add_presence(state, self._presence_day, presence.day_credit, day * DAY_SECONDS)
        week = week_of(day)
        if week not in state.weeks:
            state.weeks = (*state.weeks, week)
            week_start = (week * 7 - WEEK_OFFSET_DAYS) * DAY_SECONDS
            self._add_presence(state, self._presence_week, presence.week_credit, week_start)

    def _record_cadence(self, state: MemberState, bucket: DayBucket, action: int, t: float) -> None:
        if bucket.times is None:
            bucket.times = {}
        insort(bucket.times.setdefault(action, []), t)
        self._judge_cadence(state, action)

    def _judge_cadence(self, state: MemberState, action: int) -> None:
        """Re-judge one action type's cadence; flag the member if any type is near-periodic."""
        spec = self.policy.spec.automation
        closed = state.cadence.get(action) if state.cadence else None
        pending: list[float] = []
        for day in sorted(state.buckets):
            times = state.buckets[day].times
            if times and action in times:
                pending.extend(times[action])  # each day's times are kept sorted
        if (closed[0] if closed else 0) + len(pending) < spec.min_events:
            return
        if len(pending) > CADENCE_WINDOW:
            # Enough open-day events to judge on their own; bounds the cost per event while
            # a streaming runner keeps many days open.
            stats = cadence.new_stats()
            pending = pending[-CADENCE_WINDOW:]
        else:
            stats = list(closed) if closed else cadence.new_stats()
        cadence.fold(stats, pending)
        b = cadence.burstiness(stats)
        bursts = dict(state.bursts or {})
        if b is None:
            bursts.pop(action, None)
        else:
            bursts[action] = round(b, 9)
        state.bursts = bursts or None
        periodic = [(b, a) for a, b in bursts.items() if b <= spec.max_burstiness]
        if periodic:
            worst, worst_action = min(periodic)
            state.automation = (self.policy.rule_list[worst_action].name, worst)
        else:
            state.automation = None

    def _close(self, state: MemberState, bucket: DayBucket) -> None:
        """A day leaves the open window: keep its cadence and caps, drop the detail."""
        for action, times in sorted((bucket.times or {}).items()):
            if state.cadence is None:
                state.cadence = {}
            stats = state.cadence.setdefault(action, cadence.new_stats())
            cadence.fold(stats, sorted(times))
        for dim in self._capped_dims(bucket):
            if state.caps_hit is None:
                state.caps_hit = {}
            state.caps_hit[dim] = state.caps_hit.get(dim, 0) + 1

    def _capped_dims(self, bucket: DayBucket) -> list[int]:
        _, positive = self._day_credit(bucket)
        return [d for d, total in enumerate(positive) if total > self._caps[d]]

    # -- reading ---------------------------------------------------------------------------

    def score(self, key: MemberKey, t: float) -> float:
        state = self.states.get(key)
        return 0.0 if state is None else score_at(self.policy, state, t)

    def explain(self, key: MemberKey, t: float) -> MemberScore | None:
        state = self.states.get(key)
        return None if state is None else self.explain_state(key, state, t)

    def explain_state(self, key: MemberKey, state: MemberState, t: float) -> MemberScore:
        """`explain` of a state read from elsewhere (the API reads them from Redis)."""
        open_caps: dict[int, int] = {}
        for bucket in state.buckets.values():
            for dim in self._capped_dims(bucket):
                open_caps[dim] = open_caps.get(dim, 0) + 1
        return explain(self.policy, key, state, t, open_caps)

    def check_change(self, key: MemberKey, t: float, cause: str) -> ScoreChange | None:
        """Emit a change when the tier moves or the score moved by the policy's threshold."""
        state = self.states.get(key)
        if state is None:
            return None
        policy = self.policy
        # A credit may arrive after the member's own later events; reading the score before
        # them with their mass included would overstate it, so read at the member's own clock.
        t = max(t, state.newest_time)
        score = score_at(policy, state, t)
        tier = next_tier(policy.tier_floors, policy.spec.hysteresis, state.tier, score)
        if tier == state.tier and abs(score - state.emitted_score) < policy.spec.change_threshold:
            return None
        change = ScoreChange(
            community=key[0],
            member=key[1],
            seq=state.seq + 1,
            cause=cause,
            time=rfc3339(t),
            old_score=state.emitted_score,
            new_score=score,
            old_tier=policy.tier_names[state.tier],
            new_tier=policy.tier_names[tier],
        )
        state.seq += 1
        state.emitted_score = score
        state.tier = tier
        self.states[key] = state
        return change

    def tier_drop_time(self, key: MemberKey, after: float) -> float | None:
        """When the member's tier will drop by decay alone, or None at the lowest tier."""
        state = self.states.get(key)
        if state is None or state.tier == 0:
            return None
        policy = self.policy
        level = policy.tier_floors[state.tier] * policy.spec.hysteresis
        return crossing_time(score_curve(policy, state), level, after)

    @property
    def collusion_flagged(self) -> set[MemberKey]:
        return set(self._collusion_flagged)

    def refresh_collusion(self) -> set[MemberKey]:
        """Re-read collusion verdicts from the interaction graph; returns the members flagged."""
        flagged = set()
        for key in sorted(set(self.graph.candidates()) | self._collusion_flagged):
            state = self.states.get(key)
            if state is None:
                continue
            verdict = self.graph.verdict(key)
            if verdict is not None:
                flagged.add(key)
            if verdict != state.collusion:
                state.collusion = verdict
                self.states[key] = state
        self._collusion_flagged = flagged
        return flagged


__all__ = ["TARGET", "Engine", "Outcome", "stable_hash"]
