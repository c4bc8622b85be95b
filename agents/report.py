"""Terminal tables for people: leaderboards and the volume-versus-Hearth comparison."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from scoring.records import MemberScore

TOP_DIMENSIONS = 2


def _strongest(score: MemberScore) -> str:
    dims = sorted(score.dimensions.items(), key=lambda kv: -kv[1])[:TOP_DIMENSIONS]
    return ", ".join(f"{name} {value:.1f}" for name, value in dims if value > 0)


def leaderboard(scores: Sequence[MemberScore], limit: int = 15, title: str = "Hearth") -> Table:
    table = Table(title=title)
    for column in ("#", "member", "score", "tier", "strongest", "flags"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for rank, score in enumerate(scores[:limit], start=1):
        table.add_row(
            str(rank),
            score.member,
            f"{score.score:.1f}",
            score.tier,
            _strongest(score),
            ", ".join(score.flags),
        )
    return table


def side_by_side(volume: Counter[str], scores: Sequence[MemberScore], limit: int = 15) -> Table:
    """The ranking a volume count gives beside Hearth's, row by row."""
    table = Table(title="Who ranks first? Volume (Klout-style) versus Hearth")
    table.add_column("#", justify="right")
    table.add_column("by volume: member", style="red")
    table.add_column("events", justify="right", style="red")
    table.add_column("by Hearth: member", style="green")
    table.add_column("score", justify="right", style="green")
    table.add_column("tier / flags", style="green")
    by_volume = volume.most_common(limit)
    for rank in range(min(limit, max(len(by_volume), len(scores)))):
        member, count = by_volume[rank] if rank < len(by_volume) else ("", 0)
        hearth = scores[rank] if rank < len(scores) else None
        table.add_row(
            str(rank + 1),
            member,
            str(count) if member else "",
            hearth.member if hearth else "",
            f"{hearth.score:.1f}" if hearth else "",
            (hearth.tier + (" " + ", ".join(hearth.flags) if hearth.flags else ""))
            if hearth
            else "",
        )
    return table


def print_tables(*tables: Table) -> None:
    console = Console()
    for table in tables:
        console.print(table)
