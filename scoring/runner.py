"""Drives the engine over a time-ordered stream: events, decay-driven tier drops, collusion.

The embedded runner (`hearth replay`, `hearth demo`) and the service's scoring agent both use
it, so both emit the same score changes for the same log.
"""

from __future__ import annotations

from scoring.engine import Engine, Outcome
from scoring.policy import DAY_SECONDS
from scoring.records import ScoreChange
from scoring.schedule import DecaySchedule
from scoring.state import MemberKey


class Runner:
    """Feeds events in event-time order and keeps the decay schedule and verdicts current.

    Collusion verdicts are refreshed whenever event time crosses a UTC day boundary, so they
    depend on the log, not on how it was batched.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schedule = DecaySchedule()
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._day: int | None = None

    def feed(
        self,
        event_id: str,
        action: str,
        community: str,
        actor: str,
        t: float,
        target: str | None = None,
    ) -> tuple[Outcome, list[ScoreChange]]:
        changes = self.advance_to(t)
        outcome = self.engine.apply(event_id, action, community, actor, t, target)
        self.outcomes[outcome] += 1
        if outcome is Outcome.APPLIED:
            for key in (
                ((community, actor), (community, target)) if target else ((community, actor),)
            ):
                self.check(key, t, event_id, changes)
        return outcome, changes

    def advance_to(self, t: float) -> list[ScoreChange]:
        """Emit what falls due up to `t`: day-boundary verdicts, then decay-driven drops."""
        changes: list[ScoreChange] = []
        day = int(t // DAY_SECONDS)
        if self._day is not None and day > self._day:
            self._refresh_collusion((self._day + 1) * DAY_SECONDS, changes)
        if self._day is None or day > self._day:
            self._day = day
            self.engine.close_days_before(day - self.engine.policy.spec.late_days)
        # A decay check may schedule the next drop before `t` too: drain until nothing is due.
        while due_now := self.schedule.pop_due(t):
            for due, key in due_now:
                self.check(key, due, "decay", changes)
        return changes

    def finish(self, as_of: float) -> list[ScoreChange]:
        """Bring verdicts and decay up to `as_of` (the end of a log)."""
        changes = self.advance_to(as_of)
        self._refresh_collusion(as_of, changes)
        return changes

    def _refresh_collusion(self, t: float, changes: list[ScoreChange]) -> None:
        before = self.engine.collusion_flagged
        after = self.engine.refresh_collusion()
        for key in sorted(before ^ after):
            self.check(key, t, "collusion", changes)

    def check(self, key: MemberKey, t: float, cause: str, out: list[ScoreChange]) -> None:
        """Append the member's score change at `t`, if any, and keep its decay drop scheduled."""
        state = self.engine.states.get(key)
        if state is None:
            return
        change = self.engine.check_change(key, t, cause)
        if change is not None:
            out.append(change)
        tier_moved = change is not None and change.new_tier != change.old_tier
        if cause == "decay" or tier_moved or (state.tier > 0 and key not in self.schedule):
            self.schedule.set(key, self.engine.tier_drop_time(key, t))
