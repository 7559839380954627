"""Lowerings: turn one variant GraphModule into a callable. A new target is a new entry here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch.fx as fx

from .eager import lower_eager
from .inductor import lower_inductor
from .npu import lower_npu, require_torchair

if TYPE_CHECKING:
    from ..settings import Settings

Lowering = Callable[[fx.GraphModule, Sequence, "Settings"], Callable]

LOWERINGS: dict[str, Lowering] = {"eager": lower_eager, "inductor": lower_inductor, "npu": lower_npu}
# what a lowering needs installed, checked when the backend is made rather than at the first graph
REQUIREMENTS: dict[str, Callable[[], object]] = {"npu": require_torchair}


def get_lowering(settings: Settings) -> Lowering:
    require = REQUIREMENTS.get(settings.lowering)
    if require is not None:
        require()
    return LOWERINGS[settings.lowering]  # Settings validated the name against LOWERINGS
