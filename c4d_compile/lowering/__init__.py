"""Lowerings: turn one variant GraphModule into a callable. A new target is a new entry here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.fx as fx

from .eager import lower_eager
from .inductor import lower_inductor
from .npu import lower_npu, require_torchair

Lowering = Callable[[fx.GraphModule, Sequence, Any], Callable]  # (graph, example inputs, the backend's Settings)

LOWERINGS: dict[str, Lowering] = {"eager": lower_eager, "inductor": lower_inductor, "npu": lower_npu}
# what a lowering needs installed, checked when the backend is made rather than at the first graph
REQUIREMENTS: dict[str, Callable[[], object]] = {"npu": require_torchair}


def get_lowering(name: str) -> Lowering:
    require = REQUIREMENTS.get(name)
    if require is not None:
        require()
    return LOWERINGS[name]  # Settings validated the name against LOWERINGS
