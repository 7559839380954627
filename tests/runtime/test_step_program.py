"""The state write program of the step program: what a call that ran one variant stores, in which order the
history moves, and what a slot not written yet reads — against a three-slot history written out by hand."""

from __future__ import annotations

import torch

from c4d_compile.runtime.step_program import StateTensor, VariantKind, state_writes, stored_value

FULL, CACHED = VariantKind.FULL, VariantKind.CACHED


def _history(slots: int) -> list[StateTensor]:
    names = [f"h@{i}" for i in range(slots)]
    return [StateTensor(name, (1,), torch.float32, "branch", written_by=(FULL,), read_by=(CACHED,),
                        shifts_from=names[i - 1] if i else None) for i, name in enumerate(names)]


def test_a_full_call_moves_the_history_oldest_first_then_stores_the_newest():
    writes = state_writes(_history(3), FULL, ("h@0",))
    assert writes.stores == (("h@0", "h@0"),)
    assert writes.shifts == (("h@2", "h@1"), ("h@1", "h@0"))  # h@2 takes h@1 before h@1 takes h@0
    tensors = {}
    for value in (1.0, 2.0, 3.0, 4.0):  # four full steps, written out: the newest three stay, newest first
        writes.apply(tensors, {"h@0": torch.tensor([value])})
    assert [float(tensors[f"h@{i}"]) for i in range(3)] == [4.0, 3.0, 2.0]


def test_a_cached_call_writes_nothing():
    writes = state_writes(_history(3), CACHED, ())
    assert writes.stores == () and writes.shifts == ()


def test_a_slot_not_written_yet_reads_as_the_nearest_younger_one():
    fallback = {e.name: e.shifts_from for e in _history(3) if e.shifts_from}
    tensors = {"h@0": torch.tensor([7.0])}
    assert float(stored_value(tensors, "h@2", fallback)) == 7.0
    assert stored_value({}, "h@2", fallback) is None
