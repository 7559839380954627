"""Cache state per model, guidance context and shape: who holds which tensors.

A state belongs to one (model, context, generation scope) slot — never to a graph: two modules that
share one compiled graph (two experts of Wan 2.2, two copies of a transformer) are told apart by
the identity of their parameters, which are inputs of the graph. A state is valid for the graph
that wrote it and for the sizes of the call that created it (text length, batch, resolution,
frames): a call with other sizes or through another graph starts a fresh state and the old one is
freed, whether Dynamo specialised or went dynamic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ContextState:
    owner: object  # the Runtime (graph) whose variants wrote it
    shape_key: tuple
    generation: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    full_steps: list[int] = field(default_factory=list)  # this generation's full steps, oldest first
    full_keys: list[tuple] = field(default_factory=list)  # their timestep values (the forecast variable)
    signals: list[float] = field(default_factory=list)  # signal of every call since the last full one
    scalars: dict[str, float] = field(default_factory=dict)  # host floats a measure keeps (EasyCache's rate)
    resolved: dict = field(default_factory=dict)  # per variant kind: its state inputs, until state is written
    label: str | None = None  # the context's name in stats, once asked


class StateTable:
    def __init__(self) -> None:
        self.states: dict[tuple, ContextState] = {}

    def get(self, slot: tuple, owner: object, shape_key: tuple, generation: int) -> ContextState:
        state = self.states.get(slot)
        if state is None or state.owner is not owner or state.shape_key != shape_key or state.generation != generation:
            state = self.states[slot] = ContextState(owner, shape_key, generation)
        return state

    def held_bytes(self, kinds: dict[str, str]) -> dict[str, int]:
        """Bytes held, per kind of state entry; a tensor referenced by several history slots counts once."""
        held: dict[str, int] = {}
        seen: set[int] = set()
        for state in self.states.values():
            for name, tensor in state.tensors.items():
                ptr = tensor.untyped_storage().data_ptr()
                if ptr in seen:
                    continue
                seen.add(ptr)
                kind = kinds.get(name, "other")
                held[kind] = held.get(kind, 0) + tensor.untyped_storage().nbytes()
        return held

    def forget(self, predicate) -> None:
        for slot in [s for s in self.states if predicate(s)]:
            del self.states[slot]

    def clear(self) -> None:
        self.states.clear()
