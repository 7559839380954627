"""Inductor lowering (CPU and CUDA): ``compile_fx`` on each variant, once, with the settings' config patches."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.fx as fx


def lower_inductor(gm: fx.GraphModule, example_inputs: Sequence, settings) -> Callable:
    from torch._inductor.compile_fx import compile_fx

    patches = settings.inductor_config()
    if patches:
        return compile_fx(gm, list(example_inputs), config_patches=patches)
    return compile_fx(gm, list(example_inputs))
