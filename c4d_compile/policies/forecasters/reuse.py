"""Reuse: a cached step returns the value of the last full step (FORA, arXiv 2407.01425; the
TeaCache / MagCache residual reuse)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reuse:
    num_slots = 1

    def weights(self, target: float, history: Sequence[float]) -> tuple[float, ...]:
        return (1.0,)
