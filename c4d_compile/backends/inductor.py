"""Inductor lowering (CPU and CUDA): ``compile_fx`` on each variant, once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.fx as fx


def lower_inductor(gm: fx.GraphModule, example_inputs: Sequence) -> Callable:
    from torch._inductor.compile_fx import compile_fx

    return compile_fx(gm, list(example_inputs))
