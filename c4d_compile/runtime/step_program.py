"""The vocabulary of the step program: variant kinds, what one step call knows, and the state spec.

A cached model is a small program run once per step call: a scheduler picks a variant kind from
what the call knows (:class:`StepInfo`), the Runtime runs that variant with the state tensors it
reads and stores the ones it writes. Variant kinds and state entries are data, so a new kind of
step (a probe for signal-driven schedules, a token subset) is a new rewrite pass and a registry
entry, not a new branch in the Runtime.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch


class VariantKind(str, enum.Enum):
    FULL = "full"  # the original graph; writes the newest value of every cached feature
    CACHED = "cached"  # every cached feature forecast from its history; the work only it fed is gone
    PROBE = "probe"  # the cheapest prefix that yields a decision signal; FULL / CACHED continue from its values
    PARTIAL = "partial"  # a CACHED step that recomputes token-local branches on a few token rows (token subsets)
    VERIFY = "verify"  # a CACHED step that also computes the last block on its draft and measures the error (SpeCa)
    DECIDE = "decide"  # the probe, the decision and both continuations in one graph (torch.cond): the device decides


class StepInfo(NamedTuple):  # a tuple, not a dataclass: one is made per step call
    """What a scheduler may base its decision on, for one step call of one cache context."""

    step: int  # index of the step in this generation (the sampler's, when the pipeline says it)
    num_steps: int | None  # step calls of this generation per context, when known
    full_steps: Sequence[int]  # the latest steps this context computed in full (at least two kept), oldest first
    # the signal of every call of this context since its last full step, this call's last (signal-driven
    # schedules: a PROBE variant measured it); empty when the plan has no probe or nothing to compare with
    signals: Sequence[float] = ()
    # the sampler's timesteps of this generation, when the caller gave them (enable_cache does; in a loop of one's
    # own, backend.begin_generation(timesteps)): a schedule recorded over another grid resamples by them
    timesteps: Sequence[float] = ()


@dataclass(frozen=True)
class StateTensor:
    """One named tensor of cache state per context: who writes it, who reads it, its size.

    A state entry is written when a variant of ``written_by`` runs in a call, from the named value of
    that call it names (a variant's output, possibly of an earlier variant of the same call: the
    PROBE's signal value is kept as the reference of the next comparison when FULL runs).
    ``shifts_from`` makes a history: when a variant writes that entry, this one takes its previous
    value first (the Runtime moves references, no copy); an entry not written yet reads as the
    nearest younger one (forecast weights give it zero weight).
    """

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: str  # what it caches: output, stack, branch, block (per-kind memory in stats)
    written_by: tuple[VariantKind, ...]
    read_by: tuple[VariantKind, ...]
    shifts_from: str | None = None
    source: str | None = None  # the call value it takes when written (default: the value of its own name)
    shifted_by: tuple[VariantKind, ...] | None = None  # kinds whose writes shift it (default: any writing the source)
    initial_zeros: bool = False  # read as zeros before its first write (k-means centroids: "none yet")

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


class StateWrites(NamedTuple):
    """What a call that ran one variant kind does to the state: entries it stores, (entry, call value it
    takes), and the history entries that move first, oldest first, (dst, src): references move, no copy."""

    stores: tuple[tuple[str, str], ...]
    shifts: tuple[tuple[str, str], ...]

    def apply(self, tensors: dict, values: dict) -> None:
        """Store them into ``tensors`` (a context's state) from the call's named ``values``."""
        for dst, src in self.shifts:
            if src in tensors:
                tensors[dst] = tensors[src]
        for name, source in self.stores:
            tensors[name] = values[source]


def stored_value(tensors: dict, name: str, fallback: dict[str, str]):
    """The stored value of a state entry; a history slot not written yet reads as the nearest younger one
    (``fallback``: entry -> the entry it shifts from). None when neither is written."""
    found = tensors.get(name)
    while found is None and name in fallback:
        name = fallback[name]
        found = tensors.get(name)
    return found


def state_writes(state: Sequence[StateTensor], kind: VariantKind, outputs: Sequence[str]) -> StateWrites:
    """The writes of a call that ran ``kind`` (whose variant has the named ``outputs``), from the state spec."""
    shifts = {e.shifts_from: e.name for e in state
              if e.shifts_from and (e.shifted_by is None or kind in e.shifted_by)}
    stores = tuple((e.name, e.name if e.name in outputs else e.source or e.name)
                   for e in state if kind in e.written_by and not e.shifts_from)
    order = []
    for name, _ in stores:
        chain, src = [], name
        while src in shifts:
            chain.append((shifts[src], src))
            src = shifts[src]
        order += reversed(chain)
    return StateWrites(stores, tuple(order))
