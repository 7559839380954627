"""Lowerings: turn one variant GraphModule into a callable. A new target is a new entry here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch.fx as fx

from .eager import lower_eager
from .inductor import lower_inductor

if TYPE_CHECKING:
    from ..settings import Settings

Lowering = Callable[[fx.GraphModule, Sequence, "Settings"], Callable]

LOWERINGS: dict[str, Lowering] = {"eager": lower_eager, "inductor": lower_inductor}


def get_lowering(settings: Settings) -> Lowering:
    return LOWERINGS[settings.lowering]  # Settings validated the name against settings.LOWERINGS
