"""What every forecaster provides.

A forecaster turns the values of a feature at past full steps into a value at a cached step. It
is split in two halves:

* host side (``*_scalars``): from the step indices, compute the few numbers the math needs; they
  enter the variants as 0-dim tensors so nothing recompiles when they change;
* graph side (``update`` / ``predict``): plain torch arithmetic. The rewrite passes call these
  with ``torch.fx.Proxy`` values, so the arithmetic is traced into the FULL and CACHED variants
  and fused by the lowering; the same functions run on real tensors in reference tests.

Slots are the state tensors kept per cached feature; they have the feature's shape and dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch


class Forecaster(Protocol):
    @property
    def num_slots(self) -> int: ...

    update_scalar_names: tuple[str, ...]
    predict_scalar_names: tuple[str, ...]

    def update_scalars(self, full_steps: Sequence[int]) -> dict[str, float]:
        """``full_steps``: indices of the full steps so far, the current one last."""

    def update(self, feature: Any, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> list:
        """New slot values after a full step that produced ``feature``."""

    def predict_scalars(self, step: int, full_steps: Sequence[int]) -> dict[str, float]: ...

    def predict(self, slots: Sequence[Any], scalars: dict[str, Any], dtype: torch.dtype) -> Any:
        """The forecast of the feature at a cached step, in ``dtype``."""
