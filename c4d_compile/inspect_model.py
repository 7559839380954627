"""Trace a model with Dynamo and return what the passes found, without compiling anything."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from .errors import InvalidValueError
from .passes.analyze import GraphAnalysis, analyze
from .plan import CachePlan, make_plan
from .policies import get_policy


def load_target(target: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``name`` of a bundled tiny config, or ``module:factory`` returning (model, forward kwargs)."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        model, inputs = factory()
        return model, inputs
    from .zoo.tiny_diffusers import get_tiny_model

    spec = get_tiny_model(target)
    return spec.build(), spec.make_inputs()


def trace(model: torch.nn.Module, inputs: dict[str, Any], fullgraph: bool = False) -> list[tuple]:
    """Dynamo's graphs of one forward on ``inputs`` and the example inputs of each, nothing compiled."""
    graphs: list[tuple] = []

    def capture(gm, example_inputs):
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    torch._dynamo.reset()
    with torch.no_grad():
        torch.compile(model, backend=capture, fullgraph=fullgraph)(**inputs)
    return graphs


def trace_graphs(model: torch.nn.Module, inputs: dict[str, Any]) -> list[torch.fx.GraphModule]:
    return [gm for gm, _ in trace(model, inputs)]


def inspect_target(target: str, policy: str = "taylorseer-lite") -> list[tuple[GraphAnalysis, CachePlan | None]]:
    model, inputs = load_target(target)
    if not isinstance(inputs, dict):
        raise InvalidValueError("factory result", type(inputs).__name__, "(model, dict of forward kwargs)")
    resolved = get_policy(policy)
    results = []
    for gm in trace_graphs(model, inputs):
        analysis = analyze(gm)
        results.append((analysis, make_plan(gm, analysis, resolved) if analysis.cacheable else None))
    return results
