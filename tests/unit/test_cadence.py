"""Burstiness of inter-event gaps: periodic ~ -1, Poisson ~ 0, bursty > 0."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import cadence


def burstiness(times: list[float]) -> float | None:
    stats = cadence.new_stats()
    cadence.fold(stats, times)
    return cadence.burstiness(stats)


def uncorrected(times: list[float]) -> float:
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    r = statistics.pstdev(gaps) / statistics.fmean(gaps)
    return (r - 1) / (r + 1)


def poisson(rng: random.Random, n: int, mean_gap: float = 600.0) -> list[float]:
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(1 / mean_gap)
        out.append(t)
    return out


def clustered(rng: random.Random, sessions: int) -> list[float]:
    """Human-like: runs of a few actions minutes apart, then hours or days of silence."""
    t, out = 0.0, []
    for _ in range(sessions):
        t += rng.expovariate(1 / 86_400)
        for _ in range(rng.randint(2, 8)):
            t += rng.expovariate(1 / 120)
            out.append(t)
    return out


@pytest.mark.parametrize("n", [4, 12, 100, 1000])
def test_a_periodic_series_is_minus_one(n: int) -> None:
    assert burstiness([1_700_000_000 + 1800.0 * i for i in range(n)]) == pytest.approx(
        -1.0, abs=1e-6
    )


@pytest.mark.parametrize("seed", range(5))
def test_a_jittered_timer_is_near_minus_one(seed: int) -> None:
    rng = random.Random(seed)
    times = [1800.0 * i + rng.uniform(-5, 5) for i in range(50)]
    b = burstiness(times)
    assert b is not None and b < -0.95


@pytest.mark.parametrize("seed", range(5))
def test_a_poisson_series_is_near_zero(seed: int) -> None:
    b = burstiness(poisson(random.Random(seed), 3000))
    assert b is not None and abs(b) < 0.08


@pytest.mark.parametrize("seed", range(5))
def test_clustered_human_activity_is_bursty(seed: int) -> None:
    b = burstiness(clustered(random.Random(seed), 60))
    assert b is not None and b > 0.3


@pytest.mark.parametrize("seed", range(5))
def test_heavy_tailed_gaps_are_bursty(seed: int) -> None:
    rng = random.Random(seed)
    t, times = 0.0, []
    for _ in range(2000):
        t += 60 * rng.paretovariate(1.2)
        times.append(t)
    b = burstiness(times)
    assert b is not None and b > 0.2


def test_bias_correction_centres_short_poisson_series_on_zero() -> None:
    """Short series underestimate the CV; the Kim & Jo correction removes most of that bias."""
    corrected, raw = [], []
    for seed in range(300):
        times = poisson(random.Random(seed), 13)
        b = burstiness(times)
        assert b is not None
        corrected.append(b)
        raw.append(uncorrected(times))
    assert statistics.fmean(raw) < -0.05
    assert abs(statistics.fmean(corrected)) < abs(statistics.fmean(raw)) / 1.5


def test_uncorrected_limit_for_long_series() -> None:
    rng = random.Random(9)
    times = poisson(rng, 20_000)
    b = burstiness(times)
    assert b is not None and b == pytest.approx(uncorrected(times), abs=2e-3)


def test_too_few_gaps_or_no_spread_in_time_gives_no_verdict() -> None:
    assert burstiness([]) is None
    assert burstiness([1.0]) is None
    assert burstiness([1.0, 2.0, 3.0]) is None  # two gaps
    assert burstiness([1.0, 2.0, 3.0, 4.0]) is not None
    assert burstiness([5.0] * 20) is None  # all at the same instant: mean gap 0


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=2, max_size=60),
    cut=st.integers(0, 61),
)
def test_folding_in_pieces_equals_folding_at_once(gaps: list[float], cut: int) -> None:
    times, t = [], 1_700_000_000.0
    for gap in gaps:
        t += gap
        times.append(t)
    whole = cadence.new_stats()
    cadence.fold(whole, times)
    pieces = cadence.new_stats()
    cadence.fold(pieces, times[:cut])
    cadence.fold(pieces, times[cut:])
    for a, b in zip(whole, pieces, strict=True):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    assert whole[0] == len(times) and whole[2] == len(times) - 1
    mean = statistics.fmean(gaps[1:])
    assert math.isclose(whole[3], mean, rel_tol=1e-9, abs_tol=1e-6)
