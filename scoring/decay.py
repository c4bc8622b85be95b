"""Forward decay (Cormode, Shkapenyuk, Srivastava, Xu, ICDE 2009).

A mass N = sum(v_i * exp(rate * (t_i - L))) is kept against a landmark L; its value at t is
N * exp(-rate * (t - L)). Adding is O(1) and exact in any order, and all masses that share a
landmark keep their order as time passes.
"""

from __future__ import annotations

import math


def grow(rate: float, t: float, landmark: float) -> float:
    """Multiplier that turns a value credited at `t` into forward-decay mass."""
    return math.exp(rate * (t - landmark))


def value_at(mass: float, rate: float, t: float, landmark: float) -> float:
    """The decayed value at time `t` of a mass held against `landmark`."""
    return mass * math.exp(-rate * (t - landmark))


def rebase(mass: float, rate: float, old_landmark: float, new_landmark: float) -> float:
    """The same mass held against a later landmark (keeps exponents far from overflow)."""
    return mass * math.exp(-rate * (new_landmark - old_landmark))


def half_life_seconds(rate: float) -> float:
    return math.log(2) / rate
