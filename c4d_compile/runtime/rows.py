"""A batched call whose rows are requests (``runtime/requests.py``): each row decided on its own, the rows that
need the same variant computed together.

Per row: its request's step in its guidance context, that (model, context)'s state, and the step interpreter's
answer, as a call of that request alone would get it. A signal-driven plan first runs its PROBE on the rows whose
decision needs it (one sub-batch) and measures each row's signal against that row's own reference. Rows that then
run the same variant (with the same force flag) form one sub-batch: their rows of every batched input, of the
probe's values, of their states and of the forecast weights (a row each: rows forecast at their own distances from
their full steps) are gathered, the variant run once, its outputs
scattered back in row order and each row's new state kept as its own. So the FLOPs of a batched call are the sum
of its rows' variants', and a row's result is the one its request gets alone (up to the float rounding of another
batch size).

Rows that need different variants split the batch, so its size must be dynamic (``torch.compile(...,
dynamic=True)``): a static graph has the traced batch size written into its ops. What stays one decision per
batch is refused with a typed error: the device decision (``decision="device"`` takes it inside the graph, for the
whole batch), token subsets (they pick their rows for the whole batch) and a signal measured over the whole
batch (SpeCa's verification error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError, InvalidValueError
from .interpreter import StepCall, TimeAxis
from .requests import Request, Row
from .state import ContextState
from .state_names import FORCE, WEIGHTS
from .stats import NO_SIGNAL
from .step_program import StepInfo, VariantKind

if TYPE_CHECKING:
    from .executor import Runtime


def check_rows_supported(runtime: Runtime) -> None:
    plan, sig, name = runtime.plan, runtime.signature, runtime.policy.name
    if plan.decided_on_device:
        raise ConfigError(f"{name!r} decides on the device, one decision for the whole batch: per-row batches "
                          "decide each row on the host (decision='host')")
    if plan.tokens is not None:
        raise ConfigError(f"{name!r} picks the token rows it recomputes for the whole batch (clusters and scores "
                          "are taken over every row, random rows drawn once per call): per-row batches serve the step, "
                          "output and signal presets (taylorseer, foca, taylorseer-lite, teacache, ...)")
    if plan.signal is not None and not plan.signal.per_row:
        raise ConfigError(f"{name!r} measures its signal over the whole batch, not per row: per-row batches serve "
                          "the probe-measured signals (fbcache, teacache, customcache, easycache, ...)")
    if sig.carried:
        raise ConfigError("per-row batches need the whole model in one graph (this one takes its timestep from a "
                          "graph before it)")


class _Decided:
    """One row of the call: its request, context, state, step, and what the interpreter answered."""

    __slots__ = ("call", "context", "key", "measured", "request", "slot", "state", "step", "values")

    def __init__(self, request: Request, context: str, slot: tuple, state: ContextState, step: int, key: tuple):
        self.request, self.context, self.slot, self.state, self.step = request, context, slot, state, step
        self.key = key  # the row's timestep values
        self.values: dict = {}  # the row's named values of this call: views of its sub-batches' outputs
        self.measured = NO_SIGNAL
        self.call: StepCall | None = None


def run_rows(runtime: Runtime, args: tuple, rows: tuple[Row, ...]):
    check_rows_supported(runtime)
    sig, session = runtime.signature, runtime.session
    batch = args[sig.device].shape[0]
    if len(rows) != batch:
        raise InvalidValueError("rows", len(rows), f"{batch}: one request (or (request, context)) per row of the batch")
    if len({(id(request), context) for request, context in rows}) != len(rows):
        raise InvalidValueError("rows", [(r.rid, c) for r, c in rows], "each (request, context) once per batch")
    decided = _rows(runtime, args, rows, batch)
    device = args[sig.device].device
    infos = [StepInfo(d.step, d.request.num_steps, d.state.full_steps, d.state.signals, d.request.timesteps)
             for d in decided]
    interpreters = [d.request.interpreter(runtime) for d in decided]  # the backend's, or a request's own policy's
    probed = [i for i, (info, interpreter) in enumerate(zip(infos, interpreters)) if interpreter.needs_prelude(info)]
    probing = set(probed)
    for kind in runtime.plan.prelude if probed else ():  # the probe of the rows whose decision needs it
        _run_group(runtime, args, probed, batch, [decided[i] for i in probed], kind, None, device)
    groups: dict[tuple, list[int]] = {}
    for i, (d, info, interpreter) in enumerate(zip(decided, infos, interpreters)):
        d.call = interpreter.step(info, (lambda d=d: _measure(runtime, d)) if i in probing else None,
                                  (lambda d=d: _axis(d)) if interpreter.by_time else None)
        # rows that forecast at different distances from their full steps share a sub-batch where the weights are
        # an input per row; otherwise (a feature without the batch as dim 0) the weights split it too
        weights = None if sig.row_weights else d.call.weights
        groups.setdefault((d.call.variant, weights, d.call.force), []).append(i)
    if (len(groups) > 1 or 0 < len(probed) < batch) and not sig.batched:
        raise ConfigError(f"this batch's rows need {len(groups)} different steps, and the graph has its batch size "
                          "written into it: compile the model with torch.compile(model, backend=backend, dynamic=True)")
    for d in decided:  # the call goes ahead: each row takes its step (a refused call took none)
        d.request.states[d.slot] = d.state
        d.request.steps[d.context] = d.step + 1
        d.request.first_keys.setdefault(d.context, d.key)
    session.cached_calls += 1
    results: list | None = None
    for (kind, _, force), members in groups.items():
        outs, n = _run_group(runtime, args, members, batch, [decided[i] for i in members], kind, force, device)
        if results is None:
            results = [torch.empty((batch, *o.shape[1:]), dtype=o.dtype, device=o.device) for o in outs[:n]]
        index = torch.tensor(members, device=device)
        for result, out in zip(results, outs[:n]):
            result.index_copy_(0, index, out)
    for d in decided:
        _keep(runtime, d)
    return tuple(results)


def _rows(runtime: Runtime, args: tuple, rows: tuple[Row, ...], batch: int) -> list[_Decided]:
    """Each row's state (a fresh one where the sizes or the graph changed), step and timestep values."""
    sig = runtime.signature
    model = id(args[sig.parameter]) if sig.parameter is not None else None
    # a row's sizes, the batch dim left out: found from the graph's symbolic batch size, or in a static graph (which
    # has one: batch one) by size, so that a request's state passes between the two graphs
    batched = sig.batched or tuple(i for i in sig.sized if args[i].dim() and args[i].shape[0] == batch)
    shape = tuple(tuple(args[i].shape[1:] if i in batched else args[i].shape) for i in sig.sized)
    graph = runtime.plan.fingerprint["graph"]  # a state serves every graph of the model's structure (batch sizes)
    # the rows' timestep values, one host read per timestep input (a forecast in the timestep reads them)
    columns = [args[i].reshape(-1).tolist() for i in sig.timesteps]
    columns = [c if len(c) == batch else c * batch for c in columns]
    decided = []
    for row, (request, context) in enumerate(rows):
        slot = (model, context)
        state = request.states.get(slot)
        if state is None or state.shape_key != shape or state.owner != graph:
            state = ContextState(graph, shape, request.number)
        step = request.step(context)  # nothing is taken before every row is decided: a refused call takes nothing
        decided.append(_Decided(request, context, slot, state, step, tuple(c[row] for c in columns)))
    return decided


def _measure(runtime: Runtime, d: _Decided) -> None:
    """The row's signal from its probe values against its own reference (the interpreter's ``run_prelude``)."""
    measured = runtime.plan.measure(d.values, d.state)
    d.measured = measured
    if measured is not None:
        d.state.signals.append(measured)


def _axis(d: _Decided) -> TimeAxis:
    """The row's time axis: its timestep, its request's first one in this context, its full steps' (the timestep
    input that moves: the first whose value differs from the first step's)."""
    first = d.request.first_keys.get(d.context, d.key)
    i = next((i for i, (a, b) in enumerate(zip(first, d.key)) if a != b), 0)
    return TimeAxis(d.key[i], 0, first[i], tuple(k[i] for k in reversed(d.state.full_keys)))


def _keep(runtime: Runtime, d: _Decided) -> None:
    """After the call: the row's signal measured after its variant, its state written, its full step kept, the call
    recorded."""
    plan, call, state = runtime.plan, d.call, d.state
    kind = call.variant
    after = plan.measure_after(kind, d.values, state) if runtime.measures_after else None
    for done in (*call.prelude, kind):
        runtime.store_row(done, state.tensors, d.values)
    if kind is VariantKind.FULL:
        runtime.interpreter.keep_full(state.full_steps, d.step)
        runtime.interpreter.keep_full(state.full_keys, d.key)
        state.signals.clear()
    if after is not None:
        state.signals.append(after)
    session = runtime.session
    session.recorder.record(session.clocks.generation, f"{d.request.rid}/{d.context}", d.step, kind.value,
                            kind is VariantKind.FULL, runtime.flops[kind], runtime.flops[VariantKind.FULL],
                            d.measured if after is None else after)


def _weights(runtime: Runtime, weights: list[tuple], device) -> torch.Tensor:
    """The forecast weights input of a sub-batch, a row per row: memoised where every row has the same."""
    if weights.count(weights[0]) == len(weights):
        return runtime.on_device(weights[0], torch.float32, device, len(weights))
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _run_group(runtime: Runtime, args: tuple, members: list[int], batch: int, rows: list[_Decided],
               kind: VariantKind, force: bool | None, device) -> tuple[tuple, int]:
    """One variant on the rows ``members`` of the batch: their inputs gathered, their states, probe values and
    forecast weights concatenated; each row's share of its named outputs joins that row's values."""
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
            inputs.append(_weights(runtime, [d.call.weights for d in rows], device))
        elif name == FORCE:
            inputs.append(runtime.on_device(force, torch.bool, device))
        elif name in runtime.produced:
            inputs.append(rows[0].values[name] if name in runtime.shared else torch.cat([d.values[name] for d in rows]))
        else:
            inputs.append(torch.cat([runtime.state_input(name, d.state, device) for d in rows]))
    outs = variant.fn(*sub, *inputs)
    n = variant.num_outputs
    for name, value in zip(variant.outputs, outs[n:]):
        shared = name in variant.shared
        for j, d in enumerate(rows):
            d.values[name] = value if shared else value[j: j + 1]
    return outs, n
