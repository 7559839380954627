"""Eager lowering: run the GraphModule as Python. The reference every other lowering is tested against."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.fx as fx


def lower_eager(gm: fx.GraphModule, example_inputs: Sequence, settings) -> Callable:
    return gm.forward
