"""Run the user's ``run`` with the model served by a given backend: what every calibration records and measures.

``model`` is a diffusers pipeline (``run(pipe)`` runs one or more generations; its denoisers are set up
with the backend for the duration and restored after) or a transformer module (``run(call)`` samples
with ``call`` standing in for it). What ``run`` returned is handed back: ``policy="auto"`` reads the
final sample from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..compiler.backend import C4DBackend
from ..pipelines import enable_cache_with


def run_through(model: Any, run: Callable, backend: C4DBackend | None) -> Any:
    """``run`` with ``model`` compiled by ``backend``, or as it is (uncached, uncompiled) when it is None."""
    with torch.no_grad():
        if backend is None:
            return run(model)
        if isinstance(model, torch.nn.Module):
            return run(torch.compile(model, backend=backend))
        undo = enable_cache_with(model, backend)
        try:
            return run(model)
        finally:
            undo()  # the pipeline as it was: its own transformer(s) and scheduler
