"""Lowerings: turn one variant GraphModule into a callable. A new target is a new entry here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.fx as fx

from ..errors import InvalidValueError
from .eager import lower_eager
from .inductor import lower_inductor

Lowering = Callable[[fx.GraphModule, Sequence], Callable]

LOWERINGS: dict[str, Lowering] = {"eager": lower_eager, "inductor": lower_inductor}


def get_lowering(name: str) -> Lowering:
    if name not in LOWERINGS:
        raise InvalidValueError("lowering", name, f"one of {sorted(LOWERINGS)}")
    return LOWERINGS[name]
