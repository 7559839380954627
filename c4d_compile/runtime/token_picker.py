"""The host inputs of a partial call, per token space: which rows it recomputes.

``random``: ``tokens.<N>.index``, K distinct rows drawn uniformly (DuCa v2, arXiv 2412.18911, found
importance scores no better than random), sorted so the gather reads memory in order. ``cluster``:
``tokens.<N>.noise``, one uniform draw per token; the PARTIAL graph picks each cluster's token from it
on the device (``compiler/passes/clusters.py``). ``score`` needs nothing from the host: the PARTIAL graph ranks the
tokens itself (``compiler/passes/token_scores.py``). Draws come from a generator seeded by the policy, so a run is
reproducible; the same rows serve every sample of a batch (both halves of batched guidance).
"""

from __future__ import annotations

import torch

from ..policies.tokens import Selection, TokenSubset
from .state_names import token_index_name, token_noise_name


class TokenPicker:
    def __init__(self, subset: TokenSubset, token_rows: tuple[tuple[int, int], ...]):
        self.generator = torch.Generator().manual_seed(subset.token_seed)
        draw = self._noise if subset.selection is Selection.CLUSTER else self._rows
        name = token_noise_name if subset.selection is Selection.CLUSTER else token_index_name
        # host input name -> how to make it; score selection picks its rows inside the graph: none
        self.inputs = {} if subset.selection is Selection.SCORE else {name(n): (draw, n, k) for n, k in token_rows}

    def specs(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of each host input: K row indices, or one draw per token."""
        return {name: ((tokens,), torch.float32) if draw == self._noise else ((count,), torch.int64)
                for name, (draw, tokens, count) in self.inputs.items()}

    def make(self, name: str, device: torch.device) -> torch.Tensor:
        draw, tokens, count = self.inputs[name]
        return draw(tokens, count).to(device)

    def _rows(self, tokens: int, count: int) -> torch.Tensor:
        return torch.randperm(tokens, generator=self.generator)[:count].sort().values

    def _noise(self, tokens: int, count: int) -> torch.Tensor:
        return torch.rand(tokens, generator=self.generator)
