"""`hearth replay` and `hearth demo` through click's test runner."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agents.cli import main

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "scoring" / "policies" / "default.yaml"
Hostile = tuple[Path, dict[int, str], int]  # path, {line: reason} of bad lines, valid events
SCORE_KEYS = {"community", "member", "score", "tier", "dimensions", "flags"}


def event(i: int, kind: str, actor: str, day: int, hour: int, target: str | None = None) -> bytes:
    record: dict[str, Any] = {
        "id": f"e{i}",
        "type": kind,
        "community": "demo",
        "actor": actor,
        "time": f"2024-03-{day:02d}T{hour:02d}:{i % 60:02d}:00Z",
    }
    if target:
        record["target"] = target
    return json.dumps(record).encode()


def valid_events() -> list[bytes]:
    lines, i = [], 0
    for day in range(1, 11):
        for member in ("alice", "bob", "carol"):
            i += 1
            lines.append(event(i, "session.started", member, day, 9))
        i += 1
        lines.append(event(i, "answer.accepted", "bob", day, 10, "alice"))
        i += 1
        lines.append(event(i, "reaction.added", "carol", day, 11, "bob"))
    return lines


# (line, reason) for every bad line of the hostile file
BAD_LINES: list[tuple[bytes, str]] = [
    (b"this is not json", "invalid_json"),
    (b'{"id": "x1", "type": "post.created"', "invalid_json"),
    (
        b'{"id": "x2", "type": "post.created", "community": "demo", "actor": "d\xff", '
        b'"time": "2024-03-02T10:00:00Z"}',
        "invalid_utf8",
    ),
    (b"\xff\xfe\xfd", "invalid_json"),
    (
        b'{"id": "x3", "type": "post.created", "community": "demo", "actor": "a/b", '
        b'"time": "2024-03-02T10:00:00Z"}',
        "schema_violation",
    ),
    (
        b'{"id": "x4", "type": "post.created", "community": "demo", "actor": "dave", '
        b'"time": "2024-03-02T10:00:00"}',
        "schema_violation",
    ),
    (
        b'{"id": "x5", "type": "karma.farmed", "community": "demo", "actor": "dave", '
        b'"time": "2024-03-02T10:00:00Z"}',
        "unknown_type",
    ),
    (
        b'{"id": "x6", "type": "post.created", "community": "demo", "actor": "dave", '
        b'"time": "2999-03-02T10:00:00Z"}',
        "future_time",
    ),
]


@pytest.fixture
def hostile(tmp_path: Path) -> Hostile:
    """A JSONL file mixing valid events, garbage, invalid UTF-8 and blank lines.

    Returns the path, {line number: reason} of the bad lines and the number of valid events.
    """
    good = valid_events()
    good.append(good[3])  # a duplicate delivery
    lines: list[bytes] = []
    bad: dict[int, str] = {}
    bad_iter = iter(BAD_LINES)
    for n, line in enumerate(good):
        lines.append(line)
        if n % 4 == 1:
            lines.append(b"")
        if n % 4 == 2:
            lines.append(b"   \t")
        if n % 5 == 3 and (item := next(bad_iter, None)) is not None:
            lines.append(item[0])
            bad[len(lines)] = item[1]
    assert len(bad) == len(BAD_LINES)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines[:5]) + b"\r\n" + b"\n".join(lines[5:]))  # mixed endings
    return path, bad, len(good)


def run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def test_replay_a_hostile_file(tmp_path: Path, hostile: Hostile) -> None:
    path, bad, good = hostile
    out, dlq = tmp_path / "scores.jsonl", tmp_path / "dlq" / "rejected.jsonl"
    result = run(["replay", str(path), "--out", str(out), "--dead-letters", str(dlq)])
    assert result.exit_code == 0, result.output
    scores = read_jsonl(out)
    assert {s["member"] for s in scores} == {"alice", "bob", "carol"}
    for s in scores:
        assert SCORE_KEYS <= s.keys()
        assert s["community"] == "demo"
        assert 0 <= s["score"] <= 100
        assert s["tier"] in ("newcomer", "participant", "regular", "pillar", "leader")
        assert isinstance(s["flags"], list)
        assert set(s["dimensions"]) == {
            "contribution",
            "help",
            "presence",
            "offline",
            "recognition",
            "external",
        }
    assert [s["member"] for s in scores][0] == "alice"  # ten accepted answers
    letters = read_jsonl(dlq)
    assert {letter["line"]: letter["reason"] for letter in letters} == bad
    assert len(letters) == len(bad)
    assert all(letter["detail"] and "raw" in letter for letter in letters)
    utf8 = next(letter for letter in letters if letter["reason"] == "invalid_utf8")
    assert "\\xff" in utf8["raw"]
    # the summary on stderr counts applied events, the duplicate and the dead letters
    assert f"{good - 1} applied" in result.stderr
    assert "duplicate 1" in result.stderr
    assert f"{len(bad)} dead-lettered" in result.stderr
    for reason, n in Counter(bad.values()).items():
        assert f"{reason} {n}" in result.stderr
    assert "3 members" in result.stderr
    assert "alice" in result.stdout  # the leaderboard


def test_replay_is_deterministic(tmp_path: Path, hostile: Hostile) -> None:
    path, _, _ = hostile
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for out in outs:
        assert run(["replay", str(path), "--out", str(out)]).exit_code == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_replay_of_shuffled_lines_gives_the_same_scores(tmp_path: Path) -> None:
    lines = valid_events()
    ordered, shuffled = tmp_path / "ordered.jsonl", tmp_path / "shuffled.jsonl"
    ordered.write_bytes(b"\n".join(lines) + b"\n")
    random.Random(3).shuffle(lines)
    shuffled.write_bytes(b"\n".join(lines) + b"\n")
    results = []
    for source in (ordered, shuffled):
        out = tmp_path / f"{source.stem}.scores.jsonl"
        assert run(["replay", str(source), "--out", str(out)]).exit_code == 0
        results.append(out.read_bytes())
    assert results[0] == results[1]


def test_a_later_as_of_lowers_scores(tmp_path: Path, hostile: Hostile) -> None:
    path, _, _ = hostile
    scores = {}
    for as_of in ("2024-03-11T00:00:00Z", "2024-06-01T00:00:00+02:00"):
        out = tmp_path / f"{as_of[:10]}.jsonl"
        result = run(["replay", str(path), "--out", str(out), "--as-of", as_of])
        assert result.exit_code == 0, result.output
        scores[as_of[:10]] = {s["member"]: s for s in read_jsonl(out)}
    early, late = scores["2024-03-11"], scores["2024-06-01"]
    assert early.keys() == late.keys()
    for member in early:
        assert 0 < late[member]["score"] < early[member]["score"], member
        assert late[member]["as_of"] == "2024-05-31T22:00:00Z"


def test_an_as_of_before_the_last_event_does_not_count_later_events(tmp_path: Path) -> None:
    """Scoring "at" an earlier time must not use events from after it.

    replay_events applies every event and then reads the state at `as_of`; an event after
    `as_of` is then worth more than its credit (decay run backwards), so the score at day 6 of a
    ten-day log is higher than at its end. Acceptable: ignore events after `as_of`, or refuse
    such an `as_of` with a usage error.
    """
    lines = valid_events()
    full, cut = tmp_path / "full.jsonl", tmp_path / "cut.jsonl"
    full.write_bytes(b"\n".join(lines) + b"\n")
    as_of = "2024-03-06T00:00:00Z"
    cut.write_bytes(b"\n".join(x for x in lines if json.loads(x)["time"] < as_of) + b"\n")
    outs = {}
    for source in (full, cut):
        out = tmp_path / f"{source.stem}.scores.jsonl"
        result = run(["replay", str(source), "--out", str(out), "--as-of", as_of])
        if source is full and result.exit_code == 2:
            return  # refusing an as-of inside the log is fine too
        assert result.exit_code == 0, result.output
        outs[source.stem] = {s["member"]: s["score"] for s in read_jsonl(out)}
    assert outs["full"] == pytest.approx(outs["cut"], rel=1e-9)


@pytest.mark.parametrize(
    ("as_of", "message"),
    [("yesterday", "is not an RFC 3339 time"), ("2024-03-11T00:00:00", "has no UTC offset")],
)
def test_a_bad_as_of_is_a_usage_error(
    tmp_path: Path, hostile: Hostile, as_of: str, message: str
) -> None:
    path, _, _ = hostile
    out = tmp_path / "scores.jsonl"
    result = run(["replay", str(path), "--out", str(out), "--as-of", as_of])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_a_bad_policy_is_a_usage_error(tmp_path: Path, hostile: Hostile) -> None:
    path, _, _ = hostile
    policy = tmp_path / "policy.yaml"
    text = DEFAULT_POLICY.read_text("utf-8")
    bad = text.replace("help:         {half_life_days: 60", "help:         {half_life_days: -60")
    assert bad != text
    policy.write_text(bad)
    out = tmp_path / "scores.jsonl"
    result = run(["replay", str(path), "--out", str(out), "--policy", str(policy)])
    assert result.exit_code == 2
    assert "dimensions.help.half_life_days" in result.stderr
    assert str(policy) in result.stderr
    assert not out.exists()


def test_a_missing_policy_file_is_a_usage_error(tmp_path: Path, hostile: Hostile) -> None:
    path, _, _ = hostile
    missing = tmp_path / "missing.yaml"
    result = run(
        ["replay", str(path), "--out", str(tmp_path / "s.jsonl"), "--policy", str(missing)]
    )
    assert result.exit_code == 2
    assert "cannot read policy" in result.stderr


def test_a_missing_events_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run(["replay", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "s.jsonl")])
    assert result.exit_code == 2


def test_an_empty_file_gives_no_scores(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"\n\n")
    out = tmp_path / "scores.jsonl"
    result = run(["replay", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b""
    assert "0 members" in result.stderr


def test_demo_ranks_helpers_above_bots_and_prolific_posters(tmp_path: Path) -> None:
    result = run(["demo", "--days", "30", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "events.jsonl").stat().st_size > 0
    scores = read_jsonl(tmp_path / "scores.jsonl")

    def of(prefix: str) -> list[dict[str, Any]]:
        found = [s for s in scores if s["member"].startswith(prefix)]
        assert found, prefix
        return found

    helpers, bots, posters = of("helper-"), of("bot-"), of("prolific-poster-")
    best_helper = max(s["score"] for s in helpers)
    assert best_helper > max(s["score"] for s in bots + posters)
    assert min(s["score"] for s in helpers) > max(s["score"] for s in bots)
    for bot in bots:
        assert "automation_suspected" in bot["flags"], bot
    for member in helpers + posters:
        assert "automation_suspected" not in member["flags"], member["member"]
    # scores.jsonl is sorted by score within the community
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
