"""Find the timestep input(s): the small input tensors that feed a sinusoidal embedding.

Why: the Runtime infers the step index, the guidance branch and a new generation from the
timestep value of each call, so it must know which argument carries it. A timestep is a graph
input of at most one dimension (one value per batch item) from which a ``sin``/``cos`` is reached
through a few elementwise or shape ops (``t[:, None].float() * freqs``). Rotary position tables
also use sin/cos but come from 2-D position ids, so they are not mistaken for it. Models with an
embedded guidance scale have two such inputs; the Runtime keys on both, and the one that moves
sets the direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx

from .graph_utils import tensor_meta, user_inputs

MAX_DEPTH = 8
_TRIG = {torch.sin, torch.cos, "sin", "cos"}


@dataclass(frozen=True)
class TimestepInput:
    name: str
    position: int  # index among the graph's placeholders (= the argument index at call time)


def _reaches_trig(node: fx.Node) -> bool:
    frontier, seen = [node], {node}
    for _ in range(MAX_DEPTH):
        nxt = []
        for n in frontier:
            for u in n.users:
                if u.target in _TRIG:
                    return True
                if u not in seen:
                    seen.add(u)
                    nxt.append(u)
        frontier = nxt
    return False


def find_timestep(gm: fx.GraphModule) -> tuple[TimestepInput, ...]:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    found = []
    for node in user_inputs(gm):
        meta = tensor_meta(node)
        if meta is not None and meta.dim() <= 1 and _reaches_trig(node):
            found.append(TimestepInput(node.name, placeholders.index(node)))
    return tuple(found)
