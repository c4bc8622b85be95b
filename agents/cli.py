"""The `hearth` command line."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import click

from scoring.policy import Policy, PolicyError, load_policy

EPILOG_REPLAY = """\b
Example:
  hearth replay events.jsonl --out scores.jsonl --dead-letters rejected.jsonl
  hearth replay events.jsonl --as-of 2024-06-30T00:00:00Z --out scores.jsonl
"""


def _policy(path: Path | None) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from exc


def _parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset (add Z or +00:00)")
    return parsed.timestamp()


@click.group()
@click.version_option(package_name="hearth")
def main() -> None:
    """Hearth: live, explainable engagement scores for communities."""


@main.command(epilog=EPILOG_REPLAY)
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="Policy YAML.")
@click.option("--as-of", "as_of", help="RFC 3339 time to score at (default: latest event).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dead-letters", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--top", default=15, show_default=True, help="Rows of the printed leaderboard.")
def replay(
    events: Path,
    policy: Path | None,
    as_of: str | None,
    out: Path,
    dead_letters: Path | None,
    top: int,
) -> None:
    """Score a JSONL file of v1 events and write one JSON line per member."""
    from agents.replay import replay_file, write_scores
    from agents.report import leaderboard, print_tables

    result = replay_file(
        events, _policy(policy), as_of=_parse_time(as_of), dead_letters=dead_letters
    )
    write_scores(result.scores, out)
    print_tables(leaderboard(result.scores, top))
    rejected = sum(result.dead_letters.values())
    reasons = ", ".join(f"{r} {n}" for r, n in result.dead_letters.most_common())
    ignored = ", ".join(f"{o} {n}" for o, n in result.outcomes.items() if n and o != "applied")
    click.echo(
        f"{result.lines} lines, {result.outcomes['applied']} applied"
        + (f", not applied: {ignored}" if ignored else "")
        + f", {rejected} dead-lettered"
        + (f" ({reasons})" if reasons else "")
        + f"; {len(result.scores)} members, {len(result.changes)} score changes; "
        f"{result.seconds:.2f} s -> {out}",
        err=True,
    )


@main.command()
@click.option("--seed", default=7, show_default=True)
@click.option("--days", default=90, show_default=True)
@click.option("--out-dir", default=Path("out/demo"), type=click.Path(path_type=Path))
def demo(seed: int, days: int, out_dir: Path) -> None:
    """Generate a synthetic community, score it, and compare with a volume ranking."""
    from datetime import UTC

    from agents.replay import replay_file, write_scores
    from agents.report import print_tables, side_by_side
    from stream.synthetic import generate_community, write_jsonl

    events = generate_community(seed=seed, days=days, start=datetime(2026, 1, 5, tzinfo=UTC))
    events_path = out_dir / "events.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(events, events_path)
    result = replay_file(events_path, _policy(None), as_of=None, dead_letters=None)
    write_scores(result.scores, out_dir / "scores.jsonl")
    volume = Counter(str(e["actor"]) for e in events)
    print_tables(side_by_side(volume, result.scores))
    click.echo(
        f"{len(events)} events from {len(volume)} members over {days} days; "
        f"events and scores in {out_dir}/ (try: hearth replay {events_path} --out scores.jsonl)",
        err=True,
    )


@main.command("import-stackexchange")
@click.argument("posts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--community", default="beer.stackexchange", show_default=True)
def import_stackexchange(posts: Path, out: Path, community: str) -> None:
    """Convert a Stack Exchange Posts.xml dump into v1 events (JSONL)."""
    from stream.importers.stackexchange import ImportStats, convert_posts
    from stream.synthetic import write_jsonl

    stats = ImportStats()
    out.parent.mkdir(parents=True, exist_ok=True)
    count = write_jsonl(convert_posts(posts, community=community, stats=stats), out)
    click.echo(f"{count} events -> {out} ({stats})", err=True)


@main.command()
@click.option("--loglevel", default="info", show_default=True)
def worker(loglevel: str) -> None:
    """Run a scoring worker against Kafka and Redis (settings from HEARTH_* variables).

    \b
    Example:
      HEARTH_KAFKA__BOOTSTRAP=127.0.0.1:9092 HEARTH_REDIS_URL=redis://127.0.0.1:6379/0 \\
        HEARTH_WEB_PORT=6066 hearth worker
    """
    import asyncio

    import faust

    from agents.service import Hearth
    from agents.settings import Settings
    from agents.web import register_views
    from stream.topics import ensure_topics, topic_specs

    settings = Settings()
    hearth = Hearth(settings, _policy(settings.policy))
    register_views(hearth)
    specs = topic_specs(hearth.topics, settings.partitions)
    asyncio.run(
        ensure_topics(
            settings.kafka.bootstrap,
            specs,
            replication_factor=settings.replication_factor,
            security=settings.kafka.security(),
        )
    )
    faust.Worker(hearth.app, loglevel=loglevel).execute_from_commandline()


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bootstrap", envvar="HEARTH_KAFKA__BOOTSTRAP", default="127.0.0.1:9092")
@click.option("--topic", default="hearth.activity", show_default=True)
@click.option(
    "--security-protocol",
    envvar="HEARTH_KAFKA__SECURITY_PROTOCOL",
    default="PLAINTEXT",
    show_default=True,
    type=click.Choice(["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"]),
)
@click.option("--sasl-mechanism", envvar="HEARTH_KAFKA__SASL_MECHANISM", help="PLAIN, SCRAM-...")
@click.option("--username", envvar="HEARTH_KAFKA__USERNAME", help="SASL user.")
@click.option(
    "--password",
    envvar="HEARTH_KAFKA__PASSWORD",
    help="SASL password; prefer the variable (a command line is visible to other users).",
)
@click.option(
    "--ssl-cafile",
    envvar="HEARTH_KAFKA__SSL_CAFILE",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle of the brokers' certificates (SSL protocols).",
)
def publish(
    file: Path,
    bootstrap: str,
    topic: str,
    security_protocol: str,
    sasl_mechanism: str | None,
    username: str | None,
    password: str | None,
    ssl_cafile: str | None,
) -> None:
    """Publish events from a JSONL file (or CSV of offline activity) to Kafka.

    Credentials come from the same HEARTH_KAFKA__* variables as the worker's, or the options.

    \b
    Example:
      hearth publish out/demo/events.jsonl
      hearth publish committee.csv --topic hearth.activity
      HEARTH_KAFKA__SECURITY_PROTOCOL=SASL_SSL HEARTH_KAFKA__SASL_MECHANISM=PLAIN \\
        HEARTH_KAFKA__USERNAME=hearth HEARTH_KAFKA__PASSWORD=... hearth publish events.jsonl
    """
    import asyncio

    from rich.progress import Progress

    from stream.kafka_security import KafkaSecurity
    from stream.publisher import publish as send
    from stream.publisher import read_csv, read_jsonl

    try:
        security = KafkaSecurity(security_protocol, sasl_mechanism, username, password, ssl_cafile)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        records = list(read_csv(file) if file.suffix.lower() == ".csv" else read_jsonl(file))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    with Progress(transient=True) as progress:
        task = progress.add_task("publishing", total=len(records))
        result = asyncio.run(
            send(
                bootstrap,
                topic,
                records,
                progress=lambda n: progress.update(task, completed=n),
                security=security,
            )
        )
    click.echo(f"{result.sent} sent, {result.failed} failed -> {topic}", err=True)
    for line, problem in result.errors:
        click.echo(f"  line {line}: {problem}", err=True)
    if result.failed:
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
