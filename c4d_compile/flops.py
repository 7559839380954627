"""FLOP count of a graph at its example shapes, without running real compute.

Runs the graph on fake tensors under ``FlopCounterMode`` (matmuls, attention, convolutions), so
the ideal speedup of a schedule is a ratio of counted work, not of wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from .passes.graph_utils import size_hint


def _fake(mode: FakeTensorMode, x):
    if isinstance(x, torch.Tensor):
        return mode.from_tensor(x, static_shapes=True)
    return size_hint(x) if isinstance(x, torch.SymInt) else x


def count_flops(gm: fx.GraphModule, example_inputs: Sequence) -> int:
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        fakes = [_fake(mode, x) for x in example_inputs]
    counter = FlopCounterMode(display=False)
    with mode, counter, torch.no_grad():
        gm(*fakes)
    return int(counter.get_total_flops())


class LazyFlops:
    """The FLOP count of a variant, computed the first time someone asks (stats), not at compile time."""

    def __init__(self, gm: fx.GraphModule, example_inputs: Sequence):
        self._gm, self._examples = gm, list(example_inputs)

    @cached_property
    def value(self) -> int:
        count = count_flops(self._gm, self._examples)
        self._examples = []  # drop the example tensors once counted
        return count
