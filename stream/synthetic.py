"""Deterministic synthetic activity: small demo communities and large benchmark streams.

`generate_community` simulates members who each follow an `Archetype`. Humans are bursty: their
sessions cluster around a habitual time of day, actions inside a session come in quick runs, and
they skip days and now and then go away for a week or two. Bots act on timers and colluders
interact only inside their ring. Counting events per member ranks bots and prolific posters
first and helpers and organisers far lower: the ranking Hearth exists to overturn.

`generate_bulk` streams a large, roughly time-ordered mix of encoded events for benchmarks.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec

MINUTE = 60.0
HOUR = 3_600.0
DAY = 86_400.0

OFFLINE = "offline"
TWITTER = "twitter"


class Archetype(StrEnum):
    """The behaviour a synthetic member follows."""

    HELPER = "helper"
    ORGANISER = "organiser"
    REGULAR = "regular"
    SUGGESTER = "suggester"
    PROLIFIC_POSTER = "prolific_poster"
    INFLUENCER = "influencer"
    LURKER = "lurker"
    BOT = "bot"
    COLLUDER = "colluder"


DEFAULT_COUNTS: Mapping[Archetype, int] = MappingProxyType(
    {
        Archetype.HELPER: 5,
        Archetype.ORGANISER: 3,
        Archetype.REGULAR: 15,
        Archetype.SUGGESTER: 4,
        Archetype.PROLIFIC_POSTER: 3,
        Archetype.INFLUENCER: 3,
        Archetype.LURKER: 15,
        Archetype.BOT: 3,
        Archetype.COLLUDER: 4,
    }
)


@dataclass(frozen=True, slots=True)
class _Habits:
    """How often a human archetype goes online and what it tends to do in a session."""

    active_day: float  # chance of going online on an ordinary day
    extra_sessions: float  # mean number of further sessions on an active day
    ask: float = 0.0  # chance of asking a question in a session
    suggest: float = 0.0  # chance of submitting a suggestion in a session
    reactions: float = 0.0  # mean reactions per session
    reply: float = 0.0  # chance of replying to someone's question in a session
    comment: float = 0.0  # chance of commenting on someone's content in a session


_HABITS: Mapping[Archetype, _Habits] = MappingProxyType(
    {
        Archetype.HELPER: _Habits(0.85, 1.5, ask=0.05, reactions=1.0, comment=0.2),
        Archetype.ORGANISER: _Habits(0.55, 0.5, ask=0.1, reactions=1.5, reply=0.1, comment=0.2),
        Archetype.REGULAR: _Habits(0.8, 0.8, ask=0.3, reactions=2.0, reply=0.3, comment=0.25),
        Archetype.SUGGESTER: _Habits(
            0.5, 0.5, ask=0.15, suggest=0.4, reactions=1.0, reply=0.1, comment=0.1
        ),
        Archetype.PROLIFIC_POSTER: _Habits(0.85, 2.0),
        Archetype.INFLUENCER: _Habits(0.3, 0.2, reactions=0.3),
        Archetype.LURKER: _Habits(0.12, 0.0),
    }
)

_BREAK_CHANCE = 1 / 60  # per day: a human starts a week or two away
_OFFLINE_GUESTS = (
    Archetype.HELPER,
    Archetype.ORGANISER,
    Archetype.REGULAR,
    Archetype.SUGGESTER,
    Archetype.INFLUENCER,
)


@dataclass(slots=True)
class _Draft:
    """An event before it gets its id and absolute time; `time` is seconds after the start."""

    time: float
    type: str
    actor: str
    target: str | None = None
    source: str | None = None
    attrs: dict[str, Any] | None = None


@dataclass(slots=True)
class _Post:
    """A piece of content others can react to; `replies` are (time, author) of its answers."""

    time: float
    author: str
    replies: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Session:
    time: float
    member: str
    archetype: Archetype


_post_time = attrgetter("time")


class _Simulation:
    """One run of a synthetic community; phases run in dependency order inside `run`."""

    def __init__(self, rng: random.Random, days: int, counts: Mapping[Archetype, int]) -> None:
        self.rng = rng
        self.days = days
        self.horizon = days * DAY
        self.members = {
            archetype: [
                f"{archetype.value.replace('_', '-')}-{number:02d}"
                for number in range(1, counts.get(archetype, 0) + 1)
            ]
            for archetype in Archetype
        }
        self.drafts: list[_Draft] = []
        self.sessions: list[_Session] = []
        self.questions: list[_Post] = []
        self.content: list[_Post] = []  # questions, answers and announcements worth reacting to
        self.suggestions: list[_Post] = []
        self.noise: list[_Post] = []  # prolific posters' output

    def run(self) -> list[_Draft]:
        self._schedule_sessions()
        self._ask_and_suggest()
        self._post_prolifically()
        self._meet_offline()
        self._help()
        self._engage()
        self._accept_and_thank()
        self._share_externally()
        self._moderate()
        self._run_bots()
        self._run_ring()
        self.drafts.sort(key=_post_time)
        return self.drafts

    # Building blocks.

    def _emit(
        self,
        time: float,
        kind: str,
        actor: str,
        target: str | None = None,
        *,
        source: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> bool:
        """Record an event if it falls inside the simulated window; say whether it did."""
        if not 0.0 <= time < self.horizon:
            return False
        self.drafts.append(_Draft(time, kind, actor, target, source, attrs))
        return True

    def _publish(self, time: float, author: str, pool: list[_Post]) -> _Post | None:
        if not self._emit(time, "post.created", author):
            return None
        post = _Post(time, author)
        pool.append(post)
        return post

    def _poisson(self, mean: float) -> int:
        limit = math.exp(-mean)
        count, product = 0, self.rng.random()
        while product > limit:
            count += 1
            product *= self.rng.random()
        return count

    def _burst(self, start: float, count: int, mean_gap: float) -> list[float]:
        """Times of `count` actions that follow each other quickly, as people do in a session."""
        times: list[float] = []
        time = start
        for _ in range(count):
            time += self.rng.expovariate(1.0 / mean_gap)
            times.append(time)
        return times

    def _recent(self, posts: Sequence[_Post], now: float, window: float) -> Sequence[_Post]:
        low = bisect_left(posts, now - window, key=_post_time)
        high = bisect_left(posts, now, key=_post_time)
        return posts[low:high]

    def _pick_recent(
        self, posts: Sequence[_Post], now: float, window: float, member: str
    ) -> _Post | None:
        candidates = self._recent(posts, now, window)
        for _ in range(3):
            if not candidates:
                return None
            post = self.rng.choice(candidates)
            if post.author != member:
                return post
        return None

    # Humans online.

    def _session_starts(self, habits: _Habits) -> list[float]:
        peak = self.rng.uniform(7.0, 22.0) * HOUR  # the member's habitual time of day
        starts: list[float] = []
        back_on = 0
        for day in range(self.days):
            if day < back_on:
                continue
            if self.rng.random() < _BREAK_CHANCE:
                back_on = day + self.rng.randint(7, 16)
                continue
            if self.rng.random() >= habits.active_day:
                continue
            for _ in range(1 + self._poisson(habits.extra_sessions)):
                starts.append(day * DAY + self.rng.gauss(peak, 3 * HOUR) % DAY)
        return sorted(starts)

    def _schedule_sessions(self) -> None:
        for archetype, habits in _HABITS.items():
            for member in self.members[archetype]:
                for start in self._session_starts(habits):
                    self._emit(start, "session.started", member)
                    self.sessions.append(_Session(start, member, archetype))
        self.sessions.sort(key=_post_time)

    def _ask_and_suggest(self) -> None:
        for session in self.sessions:
            habits = _HABITS[session.archetype]
            when = session.time + self.rng.expovariate(1 / (3 * MINUTE))
            if self.rng.random() < habits.ask:
                question = self._publish(when, session.member, self.questions)
                if question is not None:
                    self.content.append(question)
            if self.rng.random() < habits.suggest:
                self._suggest(when + self.rng.expovariate(1 / (5 * MINUTE)), session.member)
        self.questions.sort(key=_post_time)

    def _suggest(self, when: float, member: str) -> None:
        if not self._emit(when, "suggestion.submitted", member):
            return
        self.suggestions.append(_Post(when, member))
        organisers = self.members[Archetype.ORGANISER]
        if organisers and self.rng.random() < 0.3:
            adopted = when + self.rng.lognormvariate(math.log(3 * DAY), 0.6)
            self._emit(adopted, "suggestion.adopted", self.rng.choice(organisers), member)

    def _post_prolifically(self) -> None:
        by_day: defaultdict[tuple[str, int], list[float]] = defaultdict(list)
        for session in self.sessions:
            if session.archetype is Archetype.PROLIFIC_POSTER:
                by_day[session.member, int(session.time // DAY)].append(session.time)
        for (member, _day), starts in by_day.items():
            per_session = Counter(self.rng.choice(starts) for _ in range(self.rng.randint(20, 60)))
            for start, count in per_session.items():
                for when in self._burst(start, count, 2 * MINUTE):
                    self._publish(when, member, self.noise)
        self.noise.sort(key=_post_time)

    def _help(self) -> None:
        for session in self.sessions:
            if session.archetype is Archetype.HELPER:
                self._answer_open_questions(session)

    def _answer_open_questions(self, session: _Session) -> None:
        helper = session.member
        open_questions = [
            question
            for question in self._recent(self.questions, session.time, 36 * HOUR)
            if question.author != helper
            and len(question.replies) < 3
            and all(author != helper for _, author in question.replies)
        ]
        chosen = self.rng.sample(open_questions, min(len(open_questions), self.rng.randint(1, 4)))
        times = self._burst(session.time, len(chosen), 6 * MINUTE)
        for when, question in zip(times, chosen, strict=True):
            if self._emit(when, "reply.created", helper, question.author):
                question.replies.append((when, helper))
                self.content.append(_Post(when, helper))

    def _engage(self) -> None:
        self.content.sort(key=_post_time)
        self.suggestions.sort(key=_post_time)
        for session in self.sessions:
            habits = _HABITS[session.archetype]
            actions = ["reaction.added"] * self._poisson(habits.reactions)
            if self.rng.random() < habits.reply:
                actions.append("reply.created")
            if self.rng.random() < habits.comment:
                actions.append("comment.created")
            self.rng.shuffle(actions)
            times = self._burst(session.time, len(actions), 2 * MINUTE)
            for when, action in zip(times, actions, strict=True):
                self._interact(when, session, action)

    def _interact(self, when: float, session: _Session, action: str) -> None:
        member = session.member
        if action == "reply.created":
            question = self._pick_recent(self.questions, session.time, 2 * DAY, member)
            if question is not None and self._emit(when, action, member, question.author):
                question.replies.append((when, member))
            return
        if action == "comment.created":
            post = self._pick_recent(self.content, session.time, 3 * DAY, member)
        else:
            post = self._reaction_target(session.time, member)
        if post is not None:
            self._emit(when, action, member, post.author)

    def _reaction_target(self, now: float, member: str) -> _Post | None:
        roll = self.rng.random()
        if roll < 0.01:  # prolific output almost never earns a reaction
            return self._pick_recent(self.noise, now, DAY, member)
        if roll < 0.12:
            return self._pick_recent(self.suggestions, now, 7 * DAY, member)
        return self._pick_recent(self.content, now, 3 * DAY, member)

    def _accept_and_thank(self) -> None:
        helpers = set(self.members[Archetype.HELPER])
        for question in self.questions:
            if not question.replies:
                continue
            answers = sorted(question.replies)
            best = next((answer for answer in answers if answer[1] in helpers), answers[0])
            for answer in answers:
                if answer is best and self.rng.random() < 0.65:
                    self._accept(question.author, answer)
                elif self.rng.random() < 0.2:
                    when = answer[0] + self.rng.lognormvariate(math.log(2 * HOUR), 1.0)
                    self._emit(when, "thanks.given", question.author, answer[1])

    def _accept(self, asker: str, answer: tuple[float, str]) -> None:
        when = answer[0] + self.rng.lognormvariate(math.log(3 * HOUR), 1.0)
        if self._emit(when, "answer.accepted", asker, answer[1]) and self.rng.random() < 0.6:
            thanked = when + self.rng.expovariate(1 / (2 * MINUTE))
            self._emit(thanked, "thanks.given", asker, answer[1])

    def _share_externally(self) -> None:
        for influencer in self.members[Archetype.INFLUENCER]:
            for day in range(self.days):
                if self.rng.random() >= 0.8:
                    continue
                start = day * DAY + self.rng.uniform(7.0, 23.0) * HOUR
                for when in self._burst(start, self.rng.randint(3, 12), 10 * MINUTE):
                    self._emit(when, "content.shared", influencer, source=TWITTER)

    def _moderate(self) -> None:
        organisers = self.members[Archetype.ORGANISER]
        if not organisers:
            return
        for day in range(self.days):
            todays = self._recent(self.noise, (day + 1) * DAY, DAY)
            if todays and self.rng.random() < 0.3:
                post = self.rng.choice(todays)
                when = post.time + self.rng.expovariate(1 / (2 * HOUR))
                moderator = self.rng.choice(organisers)
                spam = {"reason": "spam"}
                self._emit(when, "content.removed", moderator, post.author, attrs=spam)

    # Offline life.

    def _meet_offline(self) -> None:
        organisers = self.members[Archetype.ORGANISER]
        guests = [member for archetype in _OFFLINE_GUESTS for member in self.members[archetype]]
        for organiser in organisers:
            day = self.rng.uniform(3.0, 14.0)
            number = 1
            while day < self.days:
                self._hold_event(organiser, f"{organiser}-event-{number}", int(day), guests)
                day += self.rng.gauss(14.0, 2.0)
                number += 1
        for week in range(math.ceil(self.days / 7)):
            meeting = (week * 7 + 2) * DAY + 19 * HOUR + self.rng.uniform(-5, 5) * MINUTE
            for organiser in organisers:
                if self.rng.random() < 0.9:
                    when = meeting + self.rng.uniform(0, 10) * MINUTE
                    self._emit(when, "committee.meeting.attended", organiser, source=OFFLINE)

    def _hold_event(self, organiser: str, key: str, day: int, guests: list[str]) -> None:
        start = day * DAY + 18.5 * HOUR + self.rng.uniform(-30, 30) * MINUTE
        self._publish(start - self.rng.uniform(3, 6) * DAY, organiser, self.content)
        others = [guest for guest in guests if guest != organiser]
        attendees = self.rng.sample(others, min(len(others), self.rng.randint(8, 20)))
        organized = {"attendees": len(attendees), "event": key}
        if not self._emit(start, "event.organized", organiser, source=OFFLINE, attrs=organized):
            return
        for attendee in attendees:
            when = start + self.rng.uniform(-10, 25) * MINUTE
            self._emit(when, "event.attended", attendee, source=OFFLINE, attrs={"event": key})

    # Non-human and gaming behaviour.

    def _run_bots(self) -> None:
        for bot in self.members[Archetype.BOT]:
            self._tick(bot, "post.created", 30 * MINUTE, jitter=3.0)
            self._tick(bot, "session.started", 4 * HOUR, jitter=2.0)

    def _tick(self, bot: str, kind: str, period: float, *, jitter: float) -> None:
        time = self.rng.uniform(0, period)
        while time < self.horizon:
            self._emit(time, kind, bot)
            time += period + self.rng.uniform(-jitter, jitter)

    def _run_ring(self) -> None:
        ring = self.members[Archetype.COLLUDER]
        if len(ring) < 2:
            return
        for member in ring:
            partners = [other for other in ring if other != member]
            for day in range(self.days):
                if self.rng.random() >= 0.9:
                    continue
                count = self.rng.randint(8, 12)
                times = sorted(day * DAY + self.rng.uniform(8, 23) * HOUR for _ in range(count))
                self._emit(times[0] - self.rng.uniform(10, 60), "session.started", member)
                for when in times:
                    kind = self.rng.choice(("thanks.given", "reaction.added"))
                    self._emit(when, kind, member, self.rng.choice(partners))


def _utc_start(start: datetime) -> datetime:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    return start.astimezone(UTC)


def _to_event(draft: _Draft, event_id: str, community: str, origin: datetime) -> dict[str, Any]:
    time = origin + timedelta(seconds=round(draft.time))
    event: dict[str, Any] = {
        "id": event_id,
        "type": draft.type,
        "community": community,
        "actor": draft.actor,
        "time": time.isoformat(timespec="seconds"),
    }
    if draft.target is not None:
        event["target"] = draft.target
    if draft.source is not None:
        event["source"] = draft.source
    if draft.attrs is not None:
        event["attrs"] = draft.attrs
    return event


def generate_community(
    *,
    seed: int = 7,
    community: str = "demo",
    start: datetime,
    days: int = 90,
    counts: Mapping[Archetype, int] | None = None,
) -> list[dict[str, Any]]:
    """Simulate `days` of a community; return its v1 events as JSON-ready dicts.

    The same arguments always give the same events. Events are sorted by time, ids are unique
    and times are RFC 3339 strings in UTC. Members are named after their archetype
    ("helper-01", "prolific-poster-02"); `counts` defaults to `DEFAULT_COUNTS`, and archetypes
    missing from it get no members.
    """
    origin = _utc_start(start)
    if days < 1:
        raise ValueError("days must be at least 1")
    simulation = _Simulation(
        random.Random(seed), days, DEFAULT_COUNTS if counts is None else counts
    )
    drafts = simulation.run()
    return [
        _to_event(draft, f"{community}-{index:07d}", community, origin)
        for index, draft in enumerate(drafts, start=1)
    ]


# Bulk generation: (type, weight, has a target, JSON tails carrying source and attrs).
_BULK_MIX: tuple[tuple[str, float, bool, tuple[str, ...]], ...] = (
    ("session.started", 28.0, False, ("",)),
    ("post.created", 12.0, False, ("",)),
    ("reply.created", 20.0, True, ("",)),
    ("comment.created", 7.0, True, ("",)),
    ("reaction.added", 22.0, True, ("",)),
    ("answer.accepted", 2.0, True, ("",)),
    ("thanks.given", 3.0, True, ("",)),
    ("suggestion.submitted", 0.6, False, ("",)),
    ("suggestion.adopted", 0.15, True, ("",)),
    ("event.attended", 2.0, False, (',"source":"offline"',)),
    (
        "event.organized",
        0.1,
        False,
        tuple(f',"source":"offline","attrs":{{"attendees":{n}}}' for n in range(5, 41)),
    ),
    ("committee.meeting.attended", 0.4, False, (',"source":"offline"',)),
    ("content.shared", 2.0, False, (',"source":"twitter"',)),
    ("content.removed", 0.1, True, ("",)),
)
_BULK_CHUNK = 65_536
_BULK_DISORDER_SECONDS = 60.0  # events arrive up to a minute out of order, as from real clients


def _json_text(text: str) -> str:
    """`text` escaped for use between double quotes in JSON."""
    return msgspec.json.encode(text).decode()[1:-1]


def _clock(origin: datetime, days: int) -> tuple[float, list[str], list[str]]:
    """Seconds from the first UTC midnight to `origin`, date prefixes and time-of-day suffixes."""
    midnight = origin.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (origin - midnight).total_seconds()
    # Disorder can push the last events past the final day, hence two spare days.
    dates = [(midnight + timedelta(days=day)).strftime("%Y-%m-%dT") for day in range(days + 2)]
    times = [
        f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00:00"
        for second in range(int(DAY))
    ]
    return offset, dates, times


def generate_bulk(
    *,
    seed: int,
    events: int,
    members: int,
    community: str = "bench",
    start: datetime,
    days: int = 30,
) -> Iterator[bytes]:
    """Stream `events` JSON-encoded v1 events (no newline) among `members` members, quickly.

    Activity per member is heavy-tailed, interactions target other members, times spread evenly
    over `days` days with up to a minute of disorder, and ids are unique. Deterministic for a
    seed. Arguments are checked at once; the events are produced lazily in chunks.
    """
    origin = _utc_start(start)
    if events < 0 or members < 2 or days < 1:
        raise ValueError("need events >= 0, members >= 2 and days >= 1")
    return _bulk_events(random.Random(seed), events, members, community, seed, origin, days)


def _bulk_events(
    rng: random.Random,
    events: int,
    members: int,
    community: str,
    seed: int,
    origin: datetime,
    days: int,
) -> Iterator[bytes]:
    width = len(str(members - 1))
    names = [f"m{number:0{width}d}" for number in range(members)]
    activity = list(accumulate(1.0 / (rank + 1) ** 0.8 for rank in range(members)))
    type_weights = list(accumulate(weight for _, weight, _, _ in _BULK_MIX))
    community_json = msgspec.json.encode(community).decode()
    heads = [f'","type":"{kind}","community":{community_json},"actor":"' for kind, *_ in _BULK_MIX]
    has_target = [targeted for _, _, targeted, _ in _BULK_MIX]
    tails = [variants for *_, variants in _BULK_MIX]
    id_prefix = _json_text(f"{community}-{seed}-")
    offset, dates, clock = _clock(origin, days)
    step = days * DAY / max(events, 1)
    kinds = range(len(_BULK_MIX))
    everyone = range(members)

    for first in range(0, events, _BULK_CHUNK):
        size = min(_BULK_CHUNK, events - first)
        chunk_kinds = rng.choices(kinds, cum_weights=type_weights, k=size)
        actors = rng.choices(everyone, cum_weights=activity, k=size)
        targets = rng.choices(everyone, cum_weights=activity, k=size)
        for index, kind, actor, target in zip(
            range(first, first + size), chunk_kinds, actors, targets, strict=True
        ):
            second = int(offset + index * step + rng.random() * _BULK_DISORDER_SECONDS)
            day, time_of_day = divmod(second, 86_400)
            if has_target[kind]:
                if target == actor:
                    target = (target + 1) % members
                target_json = f',"target":"{names[target]}"'
            else:
                target_json = ""
            variants = tails[kind]
            yield (
                f'{{"id":"{id_prefix}{index}{heads[kind]}{names[actor]}",'
                f'"time":"{dates[day]}{clock[time_of_day]}"{target_json}'
                f"{variants[index % len(variants)]}}}"
            ).encode()


def write_jsonl(events: Iterable[dict[str, Any]] | Iterable[bytes], path: Path) -> int:
    """Write events (dicts or already-encoded JSON) one per line to `path`; return the count."""
    encoder = msgspec.json.Encoder()
    count = 0
    with path.open("wb") as out:
        for event in events:
            out.write(event if isinstance(event, bytes) else encoder.encode(event))
            out.write(b"\n")
            count += 1
    return count
