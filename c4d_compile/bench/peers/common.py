"""What every peer adapter needs: a private copy of the transformer, a step mask, state bytes."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ...policies import get_policy
from ..workloads import Workload


def private_transformer(workload: Workload) -> nn.Module:
    """Peers install hooks or swap modules in place; a deep copy keeps the shared transformer clean for
    the uncached and c4d rows that alternate with it."""
    return copy.deepcopy(workload.transformer)


def preset_mask(preset: str, steps: int, **overrides: Any) -> list[int]:
    """1 where the c4d preset's schedule computes step i in full, else 0: a peer given this mask spends
    exactly the preset's full computations, so the two compare at equal compute."""
    planned = set(get_policy(preset, num_steps=steps, **overrides).schedule.planned(steps))
    return [int(step in planned) for step in range(steps)]


def reachable_tensor_bytes(*roots: Any, max_depth: int = 12) -> int:
    """Bytes of the distinct tensor storages reachable from ``roots`` through containers and attributes.

    Neither library reports the memory its cache holds, so it is measured from the outside: walk the
    hook / context objects, never descending into modules (those are the model's weights).
    """
    seen_objects: set[int] = set()
    storages: dict[int, int] = {}

    def walk(obj: Any, depth: int) -> None:
        if depth > max_depth or id(obj) in seen_objects or isinstance(obj, (nn.Module, str, bytes, type)):
            return
        seen_objects.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        else:
            children = list(getattr(obj, "__dict__", {}).values())
        for child in children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return sum(storages.values())
