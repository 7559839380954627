"""The host inputs of a partial call: what the plan's token selection asks the host to draw each call.

A selection (``compiler/tokens/``) names its host inputs and how to draw each (random selection: K distinct
row indices per token space; cluster selection: one uniform draw per token; score selection: none, it ranks
the tokens inside the graph). Draws come from one generator seeded by the policy, so a run is reproducible;
the same rows serve every sample of a batch (both halves of batched guidance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HostDraw:
    """One host input of a partial call: its shape and dtype, and how it is drawn from the generator."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    draw: Callable[[torch.Generator], torch.Tensor]


class TokenPicker:
    def __init__(self, inputs: dict[str, HostDraw], seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.inputs = inputs  # host input name -> how to draw it

    def make(self, name: str, device: torch.device) -> torch.Tensor:
        return self.inputs[name].draw(self.generator).to(device)
