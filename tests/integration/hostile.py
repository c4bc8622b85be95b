"""Hypothesis strategies for hostile activity messages, each labelled with what it must become.

A strategy draws a `Draft` (which shape, which field, which bytes, which key), not the final
bytes: `Batch.add` builds the message in order. It numbers the event ids, so fresh events never
share an id by accident (hypothesis likes to repeat simple values), and resolves replays and
reused ids against the messages before it.

Every message carries its label, taken from the contract (stream/contract.py, the README's
contract section), not from the decoder: either the dead-letter reason the decoder must give,
or the event it must decode to. Each hostile shape has exactly one defect, so its reason is
unambiguous. What a decodable event then becomes (applied, duplicate, too late, ...) depends on
the messages before it; the test's oracle works that out.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scoring.policy import load_policy
from stream.codec import Reason
from stream.contract import MAX_ATTRS_BYTES, MAX_MESSAGE_BYTES

POLICY = load_policy(None)
TYPES = tuple(sorted(POLICY.rules))
INTERACTIONS = tuple(t for t in TYPES if POLICY.rules[t].target)
COMMUNITIES = ("demo", "Ωmega ☕")
# Members the valid events use: plain ids and ids that stress keys, Redis and URLs. None is
# shorter than 4 bytes: the engine's per-day counterpart hashes collide for such ids (see
# test_short_member_ids_do_not_share_counterpart_repeats in test_fuzz_pipeline.py).
MEMBERS = (
    *(f"user{n:02d}" for n in range(20)),
    "gül",
    "李雷",
    "o'neil",
    "space cadet",
    "x\u0085y",  # a C1 control: allowed by the contract (only C0 and DEL are not)
    "🔥fire",
    "%41%25",
    "?q=1#f",
    "a.b-c_d",
)
assert all(len(m.encode()) > 3 for m in MEMBERS)
# Actors that only bad or too-late messages use: they must never get a state.
GHOSTS = ("ghost", "ghost\u2028two")
WINDOW_START = datetime(2026, 1, 20, tzinfo=UTC)
WINDOW_DAYS = 3  # valid events fall on these days: never too late once the watermark is set
LAST_LATE = datetime(2026, 1, 14, 23, 59, 59, tzinfo=UTC)  # on or before: too late
KNOWN_FIELDS = ("id", "type", "community", "actor", "time", "target", "source", "attrs")
REQUIRED_FIELDS = ("id", "type", "community", "actor", "time")
MAX_LENGTH = {"id": 128, "type": 64, "community": 64, "actor": 128, "target": 128, "source": 64}
INJECT = "\ue0fe"  # replaced by raw bytes after encoding (drawn text has no private-use chars)


def day_of(t: float) -> int:
    return math.floor(t / 86400)


@dataclass(frozen=True)
class Event:
    """What a decodable message means to the scoring: its id, member, day and target."""

    id: str
    type: str
    community: str
    actor: str
    time: float
    target: str | None

    @property
    def key(self) -> bytes:
        return f"{self.community}/{self.actor}".encode()

    @property
    def day(self) -> int:
        return day_of(self.time)


@dataclass(frozen=True)
class Sent:
    """One message as produced to the activity topic, with its label."""

    key: bytes | None
    value: bytes | None
    reason: Reason | None  # the decoder's verdict; None: it decodes to `event`
    event: Event | None
    shape: str

    def describe(self) -> str:
        value = self.value if self.value is None else self.value[:160]
        return f"[{self.shape}] key={self.key!r} value={value!r}"


# -- building the bytes ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewId:
    """An id the batch assigns: `prefix` + a serial number, padded to `length` if given."""

    prefix: str
    length: int | None = None


@dataclass(frozen=True)
class Style:
    compact: bool = True
    ensure_ascii: bool = True
    lead: str = ""
    trail: str = ""


@dataclass(frozen=True)
class Body:
    """A JSON object as field pairs (duplicates allowed, order kept) and how to write it."""

    pairs: tuple[tuple[str, Any], ...]
    style: Style = Style()
    inject: bytes = b""  # raw bytes in place of INJECT (invalid UTF-8, a raw control char)
    size: int | None = None  # pad the "x_pad" field so the message is exactly this long
    cut: int | None = None  # keep the first cut/10_001 of the bytes
    suffix: bytes = b""

    def field(self, name: str) -> Any:
        values = [v for k, v in self.pairs if k == name]
        return values[-1] if values else None


def _encode(pairs: list[tuple[str, Any]], style: Style, inject: bytes) -> bytes:
    colon, comma = (":", ",") if style.compact else (": ", ", ")
    items = (
        json.dumps(k, ensure_ascii=style.ensure_ascii)
        + colon
        + json.dumps(v, ensure_ascii=style.ensure_ascii, allow_nan=True)
        for k, v in pairs
    )
    text = style.lead + "{" + comma.join(items) + "}" + style.trail
    escaped = json.dumps(INJECT)[1:-1]  # the marker as ensure_ascii writes it
    return text.encode().replace(INJECT.encode(), inject).replace(escaped.encode(), inject)


def build(body: Body, serial: int) -> tuple[bytes, str | None]:
    """The message bytes and the event id in them (the last "id" field that is a string)."""
    pairs = []
    for name, value in body.pairs:
        if isinstance(value, NewId):
            value = f"{value.prefix}{serial}".ljust(value.length or 0, "~")
        pairs.append((name, value))
    raw = _encode(pairs, body.style, body.inject)
    if body.size is not None:
        pad = body.size - len(raw)
        assert pad >= 0, (body.size, len(raw))
        pairs = [(k, "x" * pad if k == "x_pad" else v) for k, v in pairs]
        raw = _encode(pairs, body.style, body.inject)
        assert len(raw) == body.size
    if body.cut is not None:
        raw = raw[: len(raw) * body.cut // 10_001]
    ids = [v for k, v in pairs if k == "id" and isinstance(v, str)]
    return raw + body.suffix, ids[-1] if ids else None


@dataclass(frozen=True)
class Planned:
    """The event a valid draft must decode to, before the batch gives it an id."""

    type: str
    community: str
    actor: str
    time: float
    target: str | None

    def with_id(self, id_: str) -> Event:
        return Event(id_, self.type, self.community, self.actor, self.time, self.target)


PROPER = b"\x00proper"  # stands for the community/actor key of the message's event


@dataclass(frozen=True)
class Draft:
    shape: str
    key: bytes | None
    body: Body | bytes | None  # None: a tombstone (null value)
    reason: Reason | None
    planned: Planned | None = None
    reuse: int | None = None  # take the id of an earlier valid event (this number picks it)


@dataclass(frozen=True)
class Replay:
    """Send an earlier message again, byte for byte, under its own key or another one."""

    pick: int
    valid_only: bool
    key: bytes | None | str = "same"


@dataclass
class Batch:
    """Messages in the order they are sent; `add` turns drafts into them."""

    sent: list[Sent] = field(default_factory=list)
    valid: list[Sent] = field(default_factory=list)

    def add(self, draft: Draft | Replay) -> Sent:
        message = self._replay(draft) if isinstance(draft, Replay) else self._build(draft)
        if message.value is None and message.key is None:
            message = replace(message, key=b"")  # a record needs a key or a value
        self.sent.append(message)
        if message.event is not None:
            self.valid.append(message)
        return message

    def _build(self, draft: Draft) -> Sent:
        body, planned = draft.body, draft.planned
        if draft.reuse is not None and self.valid and isinstance(body, Body) and planned:
            body, planned = self._reuse(draft.reuse, body, planned)
        if isinstance(body, Body):
            value, id_ = build(body, len(self.sent))
        else:
            value, id_ = body, None
        event = None
        if draft.reason is None:
            assert planned is not None and id_ is not None
            event = planned.with_id(id_)
        key = draft.key
        if key == PROPER:
            key = event.key if event is not None else _named_key(body)
        return Sent(key, value, draft.reason, event, draft.shape)

    def _reuse(self, pick: int, body: Body, planned: Planned) -> tuple[Body, Planned]:
        """Take an earlier event's id, in the other community so it is a different event.

        The same id for the same member and day but other content is no replay: which one
        counts would depend on arrival order (the service) or event time (`hearth replay`).
        """
        earlier = self.valid[pick % len(self.valid)].event
        assert earlier is not None
        community = planned.community
        if community == earlier.community:
            community = next(c for c in COMMUNITIES if c != community)
        swapped = {"id": earlier.id, "community": community}
        pairs = tuple((k, swapped.get(k, v)) for k, v in body.pairs)
        return replace(body, pairs=pairs), replace(planned, community=community)

    def _replay(self, replay: Replay) -> Sent:
        pool = self.valid if replay.valid_only and self.valid else self.sent
        original = pool[replay.pick % len(pool)]
        key = replay.key
        if key == "same":
            key = original.key
        elif key == PROPER:
            key = original.event.key if original.event is not None else original.key
        assert not isinstance(key, str)
        return replace(original, key=key, shape=f"replay of {original.shape}")


def _named_key(body: Body | bytes | None) -> bytes:
    if isinstance(body, Body):
        community, actor = body.field("community"), body.field("actor")
        if isinstance(community, str) and isinstance(actor, str):
            return f"{community}/{actor}".encode(errors="surrogatepass")
    return b"demo/ghost"


# -- strategies: the pieces -------------------------------------------------------------------

# Printable text of any script: no C0/C1 controls, surrogates, private use or unassigned points.
_PRINTABLE = st.characters(exclude_categories=("Cc", "Cs", "Co", "Cn"))
_PRINTABLE_NO_SLASH = st.characters(
    exclude_categories=("Cc", "Cs", "Co", "Cn"), exclude_characters="/"
)
_CONTROLS = st.sampled_from([chr(c) for c in (*range(0x20), 0x7F)])
_OFFSETS = st.sampled_from((0, 0, 0, 60, 120, -300, 330, 840, -720, -59))


@functools.cache
def text(min_size: int = 1, max_size: int = 12, *, slash: bool = True) -> st.SearchStrategy[str]:
    return st.text(
        _PRINTABLE if slash else _PRINTABLE_NO_SLASH, min_size=min_size, max_size=max_size
    )


@functools.cache
def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Small JSON values (finite numbers, printable text)."""
    scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | text(0, 8)
    scalars |= st.floats(allow_nan=False, allow_infinity=False, width=64)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text(1, 6), inner, max_size=3),
        max_leaves=max_leaves,
    )


# How a time is written: precision, offset from UTC (minutes), date-time separator, "Z" spelling.
RENDERINGS = tuple(
    itertools.product(
        ("seconds", "milliseconds", "microseconds"),
        (0, 0, 60, 120, -300, 330, 840, -720, -59),
        ("T", "T", "t", " "),
        ("Z", "z", "+00:00"),
    )
)
WINDOW_MICROS = WINDOW_DAYS * 86400 * 10**6


def render_time(micros: int, rendering: tuple[str, int, str, str]) -> tuple[str, float]:
    """`micros` after the window start, written as `rendering` says (precision truncates)."""
    precision, offset, sep, zulu = rendering
    unit = {"seconds": 10**6, "milliseconds": 10**3, "microseconds": 1}[precision]
    instant = WINDOW_START + timedelta(microseconds=micros - micros % unit)
    local = instant.astimezone(timezone(timedelta(minutes=offset)))
    text = local.isoformat(sep=sep, timespec=precision)
    if offset == 0:
        text = text[:-6] + zulu
    return text, instant.timestamp()


@functools.cache
def window_time() -> st.SearchStrategy[tuple[str, float]]:
    """A time on one of the window's days, in any RFC 3339 form msgspec accepts."""
    return st.builds(render_time, st.integers(0, WINDOW_MICROS - 1), st.sampled_from(RENDERINGS))


@functools.cache
def utc_time(low: datetime, high: datetime) -> st.SearchStrategy[tuple[str, float]]:
    naive = st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None))

    def render(moment: datetime) -> tuple[str, float]:
        instant = moment.replace(tzinfo=UTC)
        spec = "microseconds" if instant.microsecond else "seconds"
        return instant.isoformat(timespec=spec).replace("+00:00", "Z"), instant.timestamp()

    return naive.map(render)


@functools.cache
def late_time() -> st.SearchStrategy[tuple[str, float]]:
    """Before the retention horizon: from year 1 to days before the window."""
    return utc_time(datetime(1, 1, 1, tzinfo=UTC), LAST_LATE)


@functools.cache
def future_time(now: float) -> st.SearchStrategy[tuple[str, float]]:
    """Well past the allowed clock skew (an hour at least, so a slow run stays in the future)."""
    low = datetime.fromtimestamp(now + 3600 + POLICY.spec.future_skew_seconds, UTC)
    return utc_time(low, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))


@functools.cache
def styles() -> st.SearchStrategy[Style]:
    spaces = ("", "", "", " ", "\n", "\r\n\t ")
    every = [
        Style(*style) for style in itertools.product((True, False), (True, False), spaces, spaces)
    ]
    return st.sampled_from(every)


@functools.cache
@st.composite
def valid_key(draw: st.DrawFn, community: str, actor: str) -> bytes | None:
    """Mostly community/actor; otherwise a key the worker must re-key."""
    kind = draw(st.sampled_from(("proper",) * 14 + ("null", "other", "bytes", "near")))
    if kind == "proper":
        return PROPER
    if kind == "null":
        return None
    if kind == "other":
        return f"{draw(st.sampled_from(COMMUNITIES))}/{draw(st.sampled_from(MEMBERS))}".encode()
    if kind == "near":  # almost right: extra slash, case, trailing space
        proper = f"{community}/{actor}"
        return draw(st.sampled_from((proper + "/", proper.upper(), proper + " ", actor))).encode()
    return draw(st.binary(max_size=24))


@functools.cache
def any_key() -> st.SearchStrategy[bytes | None]:
    return st.sampled_from((PROPER,) * 6 + (None,)) | st.binary(max_size=16)


_COMMUNITY = st.sampled_from(COMMUNITIES)
_TYPE = st.sampled_from(INTERACTIONS + TYPES)
_SOURCE = st.sampled_from(("forum", "chat", "offline", "twitter")) | text(1, 20)
# Drawn for a third of the events: a few choices, not a recursive strategy (drawing speed).
_SMALL_ATTRS = st.sampled_from(
    (None, {}, {"length": 420}, {"tags": ["a", "b"], "n": 1.5}, {"é": {"nested": [None, True]}})
)
_OPTIONAL = st.sampled_from(
    [set(c) for n in range(4) for c in itertools.combinations(("target", "source", "attrs"), n)]
)
# Field orders: a few fixed shuffles of every field (absent ones are skipped).
_ORDERS = st.sampled_from(
    [KNOWN_FIELDS, tuple(reversed(KNOWN_FIELDS))]
    + [tuple(random.Random(n).sample(KNOWN_FIELDS, len(KNOWN_FIELDS))) for n in range(6)]
)


@functools.cache
def _sampled(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


@functools.cache
def _others(member: str, *, none: bool = False) -> st.SearchStrategy[str | None]:
    others: list[str | None] = [m for m in MEMBERS if m != member]
    return st.sampled_from([None] * (len(others) if none else 0) + others)


@dataclass(frozen=True)
class Fields:
    """A valid event's JSON fields (id still to be numbered) and what it means."""

    pairs: tuple[tuple[str, Any], ...]
    planned: Planned


@functools.cache
@st.composite
def fields(
    draw: st.DrawFn,
    *,
    when: st.SearchStrategy[tuple[str, float]] | None = None,
    actors: tuple[str, ...] = MEMBERS,
    target: str = "any",
) -> Fields:
    community = draw(_COMMUNITY)
    actor = draw(_sampled(actors))
    kind = draw(_TYPE)
    time_text, t = draw(when if when is not None else window_time())
    if target == "self":
        who: str | None = actor
    elif target == "other":
        who = draw(_others(actor))
    else:
        who = draw(_others(actor, none=True))
    pairs: list[tuple[str, Any]] = [
        ("id", NewId(draw(text(0, 8)) + "-")),
        ("type", kind),
        ("community", community),
        ("actor", actor),
        ("time", time_text),
    ]
    optional = draw(_OPTIONAL)
    if who is not None or "target" in optional:
        pairs.append(("target", who))  # null is the same as absent
    if "source" in optional:
        pairs.append(("source", draw(_SOURCE)))
    if "attrs" in optional:
        pairs.append(("attrs", draw(_SMALL_ATTRS)))
    order = draw(_ORDERS)
    pairs.sort(key=lambda pair: order.index(pair[0]))
    return Fields(tuple(pairs), Planned(kind, community, actor, t, who))


def _set(pairs: tuple[tuple[str, Any], ...], name: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """Replace field `name` (added at the end when absent)."""
    if any(k == name for k, _ in pairs):
        return tuple((k, value if k == name else v) for k, v in pairs)
    return (*pairs, (name, value))


def _without(pairs: tuple[tuple[str, Any], ...], name: str) -> tuple[tuple[str, Any], ...]:
    return tuple((k, v) for k, v in pairs if k != name)


@functools.cache
def _bad_actor_fields() -> st.SearchStrategy[Fields]:
    """Fields for a rejected message: any member, or one that must never exist."""
    return fields(actors=MEMBERS + GHOSTS * 4)


# -- strategies: valid shapes -----------------------------------------------------------------


@st.composite
def valid(draw: st.DrawFn) -> Draft:
    f = draw(fields())
    return Draft(
        "valid",
        draw(valid_key(f.planned.community, f.planned.actor)),
        Body(f.pairs, draw(styles())),
        None,
        f.planned,
    )


@st.composite
def valid_odd_id(draw: st.DrawFn) -> Draft:
    """Ids the contract allows: the key separator, any script, C1 controls, 128 characters."""
    f = draw(fields())
    prefix = draw(st.sampled_from(("a/b/", "/", "é\u0085\u2028", "🔥", " ")) | text(1, 40))
    new_id = NewId(prefix, draw(st.sampled_from((None, MAX_LENGTH["id"]))))
    body = Body(_set(f.pairs, "id", new_id), draw(styles()))
    return Draft(
        "valid odd id", draw(valid_key(f.planned.community, f.planned.actor)), body, None, f.planned
    )


# Earlier occurrences of a field given twice: valid values the last occurrence overrides.
_DECOYS = {
    "id": "decoy-id",
    "type": "no.such.type",
    "community": "decoy",
    "actor": "ghost",
    "time": "2999-01-01T00:00:00Z",
}


@st.composite
def valid_extra(draw: st.DrawFn) -> Draft:
    """Unknown fields (ignored, even with invalid UTF-8 inside), a field given twice (last wins)."""
    f = draw(fields())
    pairs = f.pairs
    for n in range(draw(st.integers(1, 3))):
        pairs = (*pairs, (f"x_{n}{draw(text(0, 6))}", draw(json_values())))
    inject = b""
    if draw(st.booleans()):
        pairs = (*pairs, ("x_bytes", f"a{INJECT}b"))
        inject = draw(st.sampled_from((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80")))
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(_DECOYS)))
        real = [(k, v) for k, v in pairs if k == name]
        decoy = (name, _DECOYS[name])
        pairs = (*[(k, v) for k, v in pairs if k != name], decoy, *real)
    body = Body(pairs, replace(draw(styles()), ensure_ascii=False), inject)
    return Draft(
        "valid extra fields",
        draw(valid_key(f.planned.community, f.planned.actor)),
        body,
        None,
        f.planned,
    )


@st.composite
def valid_attrs(draw: st.DrawFn) -> Draft:
    """attrs up to the limit: nested, or exactly MAX_ATTRS_BYTES when encoded."""
    f = draw(fields())
    kind = draw(st.sampled_from(("nested", "limit", "limit-utf8")))
    if kind == "nested":
        depth = draw(st.integers(1, 40))
        attrs: dict[str, Any] = {"leaf": draw(json_values())}
        for _ in range(depth):
            attrs = {"n": attrs}
    else:
        char, width = ("x", 1) if kind == "limit" else ("é", 2)
        room = MAX_ATTRS_BYTES - len('{"blob":""}')
        attrs = {"blob": char * (room // width) + "x" * (room % width)}
    body = Body(_set(f.pairs, "attrs", attrs), draw(styles()))
    return Draft(
        f"valid attrs {kind}",
        draw(valid_key(f.planned.community, f.planned.actor)),
        body,
        None,
        f.planned,
    )


@st.composite
def valid_max_size(draw: st.DrawFn) -> Draft:
    f = draw(fields())
    body = Body((*f.pairs, ("x_pad", "")), draw(styles()), size=MAX_MESSAGE_BYTES)
    return Draft("valid at the size limit", PROPER, body, None, f.planned)


@st.composite
def self_interaction(draw: st.DrawFn) -> Draft:
    f = draw(fields(target="self", when=window_time() | late_time()))
    return Draft(
        "self interaction",
        draw(valid_key(f.planned.community, f.planned.actor)),
        Body(f.pairs, draw(styles())),
        None,
        f.planned,
    )


@st.composite
def too_late(draw: st.DrawFn) -> Draft:
    f = draw(fields(when=late_time(), actors=MEMBERS + GHOSTS))
    return Draft(
        "too late",
        draw(valid_key(f.planned.community, f.planned.actor)),
        Body(f.pairs, draw(styles())),
        None,
        f.planned,
    )


@st.composite
def reused_id(draw: st.DrawFn) -> Draft:
    """A new event with an earlier event's id, from another community: not a duplicate."""
    f = draw(fields())
    return Draft(
        "reused id",
        PROPER,
        Body(f.pairs, draw(styles())),
        None,
        f.planned,
        reuse=draw(st.integers(0, 2**16)),
    )


@functools.cache
def replays() -> st.SearchStrategy[Replay]:
    key = st.sampled_from(("same",) * 6 + (PROPER, None)) | st.binary(max_size=12)
    return st.builds(Replay, st.integers(0, 2**20), st.sampled_from((True,) * 4 + (False,)), key)


# -- strategies: one defect each --------------------------------------------------------------


def _rejected(draw: st.DrawFn, shape: str, reason: Reason, body: Body | bytes | None) -> Draft:
    return Draft(shape, draw(any_key()), body, reason)


@st.composite
def truncated(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    return _rejected(
        draw,
        "truncated",
        Reason.INVALID_JSON,
        # No trailing whitespace: cutting that off would leave the object whole.
        Body(f.pairs, replace(draw(styles()), trail=""), cut=draw(st.integers(0, 10_000))),
    )


@st.composite
def garbage(draw: st.DrawFn) -> Draft:
    first = draw(
        st.sampled_from((b"}", b"]", b"\xff", b"#", b"x", b"'", b"\x00", b",", b"\xef\xbb\xbf{"))
    )
    fixed = st.sampled_from(
        (
            b"not json at all",
            b"{'id': 'x'}",
            b'{"id": "x",}',
            b"[1, 2",
            b"{",
            b"nul",
            b"tru",
            b"   ",
            b"",
            b'{"id": "\\ud800"}',
            b'{"id" "x"}',
            b'{"a":1}{"b":2}',
        )
    )
    return _rejected(
        draw,
        "garbage",
        Reason.INVALID_JSON,
        draw(fixed | st.binary(max_size=60).map(lambda b: first + b)),
    )


@st.composite
def trailing(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    tail = draw(st.sampled_from((b"x", b"}", b"\x00", b",", b"{}", b" 1")))
    return _rejected(
        draw,
        "trailing bytes",
        Reason.INVALID_JSON,
        Body(f.pairs, replace(draw(styles()), trail=""), suffix=tail),
    )


@st.composite
def bad_number(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    value = draw(st.sampled_from((math.nan, math.inf, -math.inf, 1e400)))  # NaN / Infinity / 1e400
    return _rejected(
        draw,
        "number out of range",
        Reason.INVALID_JSON,
        Body(_set(f.pairs, "attrs", {"n": value}), draw(styles())),
    )


@st.composite
def raw_control(draw: st.DrawFn) -> Draft:
    """A control character written unescaped inside a string (JSON requires the escape)."""
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(("id", "type", "community", "actor", "source")))
    inject = draw(st.sampled_from([bytes([c]) for c in range(0x20)]))
    return _rejected(
        draw,
        "raw control character",
        Reason.INVALID_JSON,
        Body(
            _set(f.pairs, name, f"a{INJECT}b"), replace(draw(styles()), ensure_ascii=False), inject
        ),
    )


@st.composite
def tombstone(draw: st.DrawFn) -> Draft:
    return _rejected(draw, "tombstone", Reason.INVALID_JSON, None)


@st.composite
def too_deep(draw: st.DrawFn) -> Draft:
    depth = draw(st.integers(2_000, 5_000))  # far over the decoder's limit, far under 64 KiB
    where = draw(st.sampled_from(("top", "attrs", "unclosed")))
    if where == "top":
        return _rejected(draw, "nested too deep", Reason.INVALID_JSON, b"[" * depth + b"]" * depth)
    if where == "unclosed":
        return _rejected(
            draw, "nested too deep", Reason.INVALID_JSON, b'{"attrs": ' + b'{"a": [' * (depth // 2)
        )
    f = draw(_bad_actor_fields())
    raw, _ = build(Body(_without(f.pairs, "attrs")), 0)
    nested = b'{"deep": ' + b"[" * depth + b"]" * depth + b"}"
    return _rejected(
        draw, "nested too deep", Reason.INVALID_JSON, raw[:-1] + b', "attrs": ' + nested + b"}"
    )


@st.composite
def bad_encoding(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    raw, _ = build(Body(f.pairs, Style(ensure_ascii=False)), 0)
    codec = draw(st.sampled_from(("utf-16", "utf-16-le", "utf-32", "bom")))
    if codec == "bom":
        return _rejected(draw, "not UTF-8 JSON", Reason.INVALID_JSON, b"\xef\xbb\xbf" + raw)
    return _rejected(draw, "not UTF-8 JSON", Reason.INVALID_JSON, raw.decode().encode(codec))


_BAD_UTF8 = st.sampled_from(
    (
        b"\xff",
        b"\xfe",
        b"\x80",
        b"\xbf",
        b"\xc0\xaf",
        b"\xc3\x28",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xc3",
    )
)


@st.composite
def invalid_utf8(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    where = draw(
        st.sampled_from(
            (
                "id",
                "type",
                "community",
                "actor",
                "target",
                "source",
                "time",
                "attrs value",
                "attrs key",
                "field name",
            )
        )
    )
    pairs = f.pairs
    if where == "time":
        pairs = _set(pairs, "time", dict(pairs)["time"][:10] + INJECT + "10:00:00Z")
    elif where == "attrs value":
        pairs = _set(pairs, "attrs", {"k": INJECT})
    elif where == "attrs key":
        pairs = _set(pairs, "attrs", {INJECT: 1})
    elif where == "field name":
        name = draw(st.sampled_from(REQUIRED_FIELDS))
        pairs = tuple((f"{k[:1]}{INJECT}{k[1:]}" if k == name else k, v) for k, v in pairs)
    else:
        pairs = _set(pairs, where, f"{draw(text(0, 4, slash=False))}{INJECT}")
    return _rejected(
        draw, "invalid UTF-8", Reason.INVALID_UTF8, Body(pairs, draw(styles()), draw(_BAD_UTF8))
    )


@st.composite
def missing_field(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    return _rejected(
        draw,
        "missing field",
        Reason.SCHEMA,
        Body(_without(f.pairs, draw(st.sampled_from(REQUIRED_FIELDS))), draw(styles())),
    )


_NOT_STRINGS = st.sampled_from((0, -1, 1.5, True, False, [], ["x"], {}, {"a": "b"}))


@st.composite
def wrong_type(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(KNOWN_FIELDS))
    if name == "attrs":
        value = draw(st.sampled_from((0, 1.5, True, "x", "", [], [{"a": 1}])))
    elif name in REQUIRED_FIELDS:
        value = draw(_NOT_STRINGS | st.none())
    else:  # target, source: null means absent
        value = draw(_NOT_STRINGS)
    return _rejected(
        draw, "wrong type", Reason.SCHEMA, Body(_set(f.pairs, name, value), draw(styles()))
    )


@st.composite
def empty_string(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(("id", "type", "community", "actor", "target", "source", "time")))
    return _rejected(
        draw, "empty string", Reason.SCHEMA, Body(_set(f.pairs, name, ""), draw(styles()))
    )


@st.composite
def too_long(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(sorted(MAX_LENGTH)))
    length = MAX_LENGTH[name] + draw(st.integers(1, 200))
    char = draw(st.sampled_from(("a", "é", "🔥")))
    if name == "id":
        return _rejected(
            draw,
            "too long",
            Reason.SCHEMA,
            Body(_set(f.pairs, "id", NewId("x-", length)), draw(styles())),
        )
    return _rejected(
        draw, "too long", Reason.SCHEMA, Body(_set(f.pairs, name, char * length), draw(styles()))
    )


@st.composite
def control_char(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(("id", "type", "community", "actor", "target", "source")))
    base = draw(text(0, 6, slash=False))
    at = draw(st.integers(0, len(base)))
    value = base[:at] + draw(_CONTROLS) + base[at:]
    return _rejected(
        draw, "control character", Reason.SCHEMA, Body(_set(f.pairs, name, value), draw(styles()))
    )


@st.composite
def key_separator(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    name = draw(st.sampled_from(("community", "actor", "target")))
    value = draw(st.sampled_from(("a/b", "/", "/x", "x/", "demo/ann")))
    return _rejected(
        draw, "key separator", Reason.SCHEMA, Body(_set(f.pairs, name, value), draw(styles()))
    )


_BAD_TIMES = (
    "2026-01-20T10:00:00",
    "2026-01-20",
    "10:00:00Z",
    "2026-01-20T23:59:60Z",
    "2026-01-20T24:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-20T10:00:00+24:00",
    "10000-01-01T00:00:00Z",
    "yesterday",
    "now",
    "2026-01-20T10:00:00ZZ",
    "2026-1-20T10:00:00Z",
    "20260120T100000Z",
    "+2026-01-20T10:00:00Z",
    "2026-01-20T10:00Z",
    "1768903200",
)


@st.composite
def bad_time(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    return _rejected(
        draw,
        "bad time",
        Reason.SCHEMA,
        Body(_set(f.pairs, "time", draw(st.sampled_from(_BAD_TIMES))), draw(styles())),
    )


@st.composite
def not_object(draw: st.DrawFn) -> Draft:
    value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
    return _rejected(draw, "not an object", Reason.SCHEMA, json.dumps(value).encode())


@st.composite
def unknown_type(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    known = draw(st.sampled_from(TYPES))
    near = st.sampled_from(
        (
            known.upper(),
            f" {known}",
            f"{known} ",
            known.replace(".", "_"),
            f"{known}\u200b",
            f"{known}.v2",
        )
    )
    kind = draw((near | text(1, 64)).filter(lambda t: t not in POLICY.rules))
    return _rejected(
        draw, "unknown type", Reason.UNKNOWN_TYPE, Body(_set(f.pairs, "type", kind), draw(styles()))
    )


@st.composite
def attrs_too_large(draw: st.DrawFn) -> Draft:
    f = draw(_bad_actor_fields())
    over = draw(st.integers(1, 2_000))  # small enough that even \u escapes stay under 64 KiB
    kind = draw(st.sampled_from(("blob", "utf8", "many")))
    room = MAX_ATTRS_BYTES + over - len('{"blob":""}')
    if kind == "blob":
        attrs: dict[str, Any] = {"blob": "x" * room}
    elif kind == "utf8":  # counted in encoded bytes, not characters
        attrs = {"blob": "é" * (room // 2) + "x" * (room % 2)}
    else:
        attrs = {f"k{n:05d}": n for n in range((MAX_ATTRS_BYTES + over) // 10 + 1)}
    return _rejected(
        draw,
        "attrs too large",
        Reason.ATTRS_TOO_LARGE,
        Body(_set(f.pairs, "attrs", attrs), draw(styles())),
    )


@st.composite
def too_large(draw: st.DrawFn) -> Draft:
    size = MAX_MESSAGE_BYTES + draw(st.integers(1, 4096))
    if draw(st.sampled_from((False,) * 7 + (True,))):
        # Over the worker's fetch size (256 KiB) too: it must still get past the message.
        size = draw(st.sampled_from((300_000, 600_000)))
    kind = draw(st.sampled_from(("valid", "valid", "garbage", "deep")))
    if kind == "garbage":
        return _rejected(draw, "too large", Reason.TOO_LARGE, b"\xff" * size)
    if kind == "deep":
        return _rejected(draw, "too large", Reason.TOO_LARGE, b"[" * size)
    f = draw(_bad_actor_fields())
    return _rejected(
        draw,
        "too large",
        Reason.TOO_LARGE,
        Body((*f.pairs, ("x_pad", "")), draw(styles()), size=size),
    )


@st.composite
def future(draw: st.DrawFn, now: float) -> Draft:
    f = draw(fields(when=future_time(now), actors=MEMBERS + GHOSTS))
    return _rejected(draw, "future time", Reason.FUTURE_TIME, Body(f.pairs, draw(styles())))


# -- the mix ----------------------------------------------------------------------------------


@functools.cache
def drafts(now: float) -> st.SearchStrategy[Draft | Replay]:
    """One message of any shape: about 55% fresh events, 15% replays, 30% rejected.

    Weights out of 211. `one_of` would pick among distinct strategies evenly, whatever the
    repeats, so a weighted list is sampled instead. Its ends (which hypothesis favours) hold
    plain valid events.
    """
    weighted: list[tuple[int, st.SearchStrategy[Draft | Replay]]] = [
        (40, valid()),
        (6, valid_odd_id()),
        (6, valid_extra()),
        (6, valid_attrs()),
        (1, valid_max_size()),
        (6, self_interaction()),
        (8, too_late()),
        (4, reused_id()),
        (30, replays()),
        (6, truncated()),
        (5, garbage()),
        (2, trailing()),
        (2, bad_number()),
        (2, raw_control()),
        (2, tombstone()),
        (1, too_deep()),
        (2, bad_encoding()),
        (6, invalid_utf8()),
        (3, missing_field()),
        (5, wrong_type()),
        (2, empty_string()),
        (2, too_long()),
        (3, control_char()),
        (3, key_separator()),
        (3, bad_time()),
        (2, not_object()),
        (5, unknown_type()),
        (3, attrs_too_large()),
        (1, too_large()),
        (3, future(now)),
        (40, valid()),
    ]
    slots = [strategy for weight, strategy in weighted for _ in range(weight)]
    return st.sampled_from(slots).flatmap(lambda strategy: strategy)


def draw_drafts(count: int, now: float, *, chunk: int = 40) -> list[Draft | Replay]:
    """`count` drafts, drawn by hypothesis in chunks (one example cannot hold them all).

    Derandomized and without a database: the same drafts on every run and every machine (only
    future times move with the clock).
    """
    drawn: list[Draft | Replay] = []
    examples = -(-count // chunk) + 10

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(drafts(now), min_size=chunk, max_size=chunk))
    def collect(batch: list[Draft | Replay]) -> None:
        drawn.extend(batch)

    collect()
    if len(drawn) < count:
        raise AssertionError(f"hypothesis produced {len(drawn)} drafts, {count} wanted")
    return drawn[:count]
