"""What ``c4d calibrate MODEL`` records: a bundled trained reference model sampled on given seeds, or
``module:factory`` returning ``(model_or_pipeline, run)`` as ``calibrate`` takes them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..reference.registry import check_model_name, load_reference_model
from ..reference.sampling import class_labels, sample


def reference_target(name: str, steps: int, seeds: Sequence[int], per_class: int, shift: float) -> tuple[Any, Callable]:
    model = load_reference_model(name)
    labels = class_labels(per_class)

    def run(call: Callable) -> torch.Tensor:  # the final samples: what policy="auto" measures
        return torch.cat([sample(model, labels, steps, seed, transformer_call=call, shift=shift) for seed in seeds])

    return model.transformer, run


def load_target(target: str, steps: int, seeds: Sequence[int], per_class: int, shift: float) -> tuple[Any, Callable]:
    if ":" in target:
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)()

    check_model_name(target)  # a typed error that lists the reference models
    return reference_target(target, steps, seeds, per_class, shift)
