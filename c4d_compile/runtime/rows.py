"""A batched call whose rows are requests (``runtime/requests.py``): each row decided on its own, the rows that
need the same variant computed together.

Per row: its request's step in its guidance context, that (model, context)'s state, and the step interpreter's
answer, as a call of that request alone would get it. Rows that run the same variant with the same host inputs
(forecast weights, force flag) form one sub-batch: their rows of every batched input are gathered, their states
concatenated, the variant run once, its outputs scattered back in row order and each row's new state kept as its
own. So the FLOPs of a batched call are the sum of its rows' variants', and a row's result is the one its request
gets alone (up to the float rounding of another batch size).

Rows that need different variants split the batch, so its size must be dynamic (``torch.compile(...,
dynamic=True)``): a static graph has the traced batch size written into its ops. Decided on the host from the
step alone: signal-driven presets, token subsets and forecasts in the timestep are refused with a typed error
(they keep per-row signals or time axes, not here yet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError, InvalidValueError
from .requests import Row
from .state import ContextState
from .state_names import FORCE, WEIGHTS
from .step_program import StepInfo, VariantKind

if TYPE_CHECKING:
    from .executor import Runtime


def check_rows_supported(runtime: Runtime) -> None:
    plan, sig = runtime.plan, runtime.signature
    if plan.signal is not None or plan.tokens is not None or runtime.interpreter.by_time:
        raise ConfigError(f"per-row batches decide each row from its step alone; {runtime.policy.name!r} needs a "
                          "signal, token rows or a time axis per row, not supported per row yet: use a fixed-schedule "
                          "preset (taylorseer, taylorseer-lite, foca, fora, ...)")
    if sig.carried:
        raise ConfigError("per-row batches need the whole model in one graph (this one takes its timestep from a "
                          "graph before it)")


def run_rows(runtime: Runtime, args: tuple, rows: tuple[Row, ...]):
    check_rows_supported(runtime)
    sig, session = runtime.signature, runtime.session
    batch = args[sig.device].shape[0]
    if len(rows) != batch:
        raise InvalidValueError("rows", len(rows), f"{batch}: one request (or (request, context)) per row of the batch")
    if len({(id(request), context) for request, context in rows}) != len(rows):
        raise InvalidValueError("rows", [(r.rid, c) for r, c in rows], "each (request, context) once per batch")
    model = id(args[sig.parameter]) if sig.parameter is not None else None
    # a row's sizes, the batch dim left out: found from the graph's symbolic batch size, or in a static graph (which
    # has one: batch one) by size, so that a request's state passes between the two graphs
    batched = sig.batched or tuple(i for i in sig.sized if args[i].dim() and args[i].shape[0] == batch)
    shape = tuple(tuple(args[i].shape[1:] if i in batched else args[i].shape) for i in sig.sized)
    graph = runtime.plan.fingerprint["graph"]  # a state serves every graph of the model's structure (batch sizes)
    groups: dict[tuple, list[int]] = {}
    decided = []
    for i, (request, context) in enumerate(rows):
        state = request.states.get((model, context))
        if state is None or state.shape_key != shape or state.owner != graph:
            state = ContextState(graph, shape, request.number)
        step = request.step(context)  # nothing is taken before every row is decided: a refused call takes nothing
        call = runtime.interpreter.step(StepInfo(step, request.num_steps, state.full_steps, state.signals), None)
        decided.append((state, step, call))
        groups.setdefault((call.variant, call.weights, call.force), []).append(i)
    if len(groups) > 1 and not sig.batched:
        raise ConfigError(f"this batch's rows need {len(groups)} different steps, and the graph has its batch size "
                          "written into it: compile the model with torch.compile(model, backend=backend, dynamic=True)")
    for (request, context), (state, step, _) in zip(rows, decided):  # the call goes ahead: each row takes its step
        request.states[(model, context)] = state
        request.steps[context] = step + 1
    session.cached_calls += 1
    results: list | None = None
    device = args[sig.device].device
    for (kind, weights, force), members in groups.items():
        outs, n = _run_group(runtime, args, members, batch, [decided[i][0] for i in members], kind, weights, force,
                             device)
        if results is None:
            results = [torch.empty((batch, *o.shape[1:]), dtype=o.dtype, device=o.device) for o in outs[:n]]
        index = torch.tensor(members, device=device)
        for result, out in zip(results, outs[:n]):
            result.index_copy_(0, index, out)
        variant = runtime.variants[kind]
        named = dict(zip(variant.outputs, outs[n:]))
        for j, i in enumerate(members):
            (request, context), (state, step, _) = rows[i], decided[i]
            runtime.store(kind, state.tensors, {k: v[j: j + 1].clone() for k, v in named.items()})
            if kind is VariantKind.FULL:
                runtime.interpreter.keep_full(state.full_steps, step)
            session.recorder.record(session.clocks.generation, f"{request.rid}/{context}", step, kind.value,
                                    kind is VariantKind.FULL, runtime.flops[kind], runtime.flops[VariantKind.FULL])
    return tuple(results)


def _run_group(runtime: Runtime, args: tuple, members: list[int], batch: int, states: list[ContextState],
               kind: VariantKind, weights, force, device) -> tuple[tuple, int]:
    """One variant on the rows ``members`` of the batch: their inputs gathered, their states concatenated."""
    sig, variant = runtime.signature, runtime.variants[kind]
    sub = list(args)
    if len(members) != batch:
        index = torch.tensor(members, device=device)
        for i in sig.batched:
            sub[i] = args[i].index_select(0, index)
        for i in sig.batch_sizes:
            sub[i] = len(members)
    inputs = []
    for name in variant.inputs:
        if name == WEIGHTS:
            inputs.append(runtime.on_device(weights, torch.float32, device))
        elif name == FORCE:
            inputs.append(runtime.on_device(force, torch.bool, device))
        else:
            inputs.append(torch.cat([runtime.stored(s.tensors, name) for s in states]))
    return variant.fn(*sub, *inputs), variant.num_outputs
