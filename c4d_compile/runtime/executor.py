"""The callable handed back to Dynamo: it walks the step program once per step call.

Per call: read the timestep (one host read), find the model, context and step (``runtime/clock.py``), the
state of that slot (``runtime/state.py``); for a signal-driven plan run the PROBE and measure its signal
(unless the schedule lets the device decide); ask the schedule which variant to run, resolve the
variant's named inputs (the probe's values, state tensors, host inputs such as the forecast weights),
run it, store the state the call writes, count it. Variants are compiled callables with named inputs
and outputs (``compiler/passes/variants.py``); the Runtime names two kinds only where their meaning requires:
FULL (its steps are what forecasts count from) and DECIDE (its decision stays on the device until the
stats are read). Kept thin on purpose — it runs once per denoising step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..policies.config import Policy
from ..policies.schedules.base import RunFacts
from .interpreter import StepCall, StepInterpreter, TimeAxis
from .requests import ROWS
from .rows import run_rows
from .state import ContextState
from .state_names import FORCE, SIGNAL_FULL, SIGNAL_VALUE, WEIGHTS
from .stats import NO_SIGNAL
from .step_program import StateWrites, StepInfo, VariantKind, state_writes, stored_value

if TYPE_CHECKING:  # the compiler's products, read here (the runtime never imports the compiler)
    from ..compiler.flops import LazyFlops
    from ..compiler.plan import CachePlan
    from .session import Session

# the kinds the Runtime names, read once: an enum member looked up on its class costs ~0.2 µs (Python 3.11)
_FULL, _DECIDE = VariantKind.FULL, VariantKind.DECIDE


@dataclass(frozen=True)
class LoweredVariant:
    kind: VariantKind
    fn: Callable
    num_outputs: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    flops: LazyFlops
    shared: frozenset[str] = frozenset()  # named outputs without the batch as dim 0: one value for all rows


class CallFlops:
    """The FLOPs of one call that runs these variants in turn (a prelude, then the decided variant)."""

    def __init__(self, variants: Sequence[LoweredVariant]):
        self._parts = tuple(v.flops for v in variants)

    @property
    def value(self) -> int:
        return sum(part.value for part in self._parts)


@dataclass(frozen=True)
class CallSignature:
    """Where the Runtime finds what it needs among a call's positional arguments."""

    timesteps: tuple[int, ...]  # timestep inputs (the clock and the forecast variable read them)
    carried: bool  # no timestep input: the prologue graph of the same forward lends its key (graph break)
    parameter: int | None  # one parameter of the model: its identity tells two models apart
    sized: tuple[int, ...]  # tensor inputs whose sizes key the state
    sizes: tuple[int, ...]  # int inputs of a dynamic-shape graph (sizes that vary between calls)
    device: int  # an input on the model's device (host inputs are put there)
    # a graph with a dynamic batch size: the inputs whose dim 0 is the batch, and the size inputs that are it (a
    # batch of requests is split by rows: ``runtime/rows.py``)
    batched: tuple[int, ...] = ()
    batch_sizes: tuple[int, ...] = ()
    # every cached feature has the batch as dim 0, so the forecast weights are an input per row (``[batch,
    # slots]``): rows a forecast at different distances from their full steps still run as one sub-batch
    row_weights: bool = False


class _KindCall:
    """What a call that ends in one variant kind does around the variant, worked out once per compiled graph:
    the per-call path makes one lookup for the kind instead of one per table."""

    __slots__ = ("force_at", "from_call", "full_flops", "flops", "is_full", "num_outputs", "outputs", "per_call",
                 "tokens_at", "value", "variant", "weights_at", "writes")

    def __init__(self, kind: VariantKind, variant: LoweredVariant, produced: set[str], token_dtypes: dict,
                 writes: StateWrites, flops: dict):
        self.variant = variant
        self.num_outputs = variant.num_outputs
        self.outputs = variant.outputs
        self.value = kind.value  # the stats' name of the kind (an enum's .value costs ~0.3 µs)
        self.is_full = kind is _FULL
        self.writes = writes if writes.stores else None  # None: stores nothing
        self.flops = flops.get(kind)
        self.full_flops = flops.get(_FULL)
        # which compiled inputs are filled per call: host inputs, the prelude's values, token rows
        inputs = variant.inputs
        self.weights_at = inputs.index(WEIGHTS) if WEIGHTS in inputs else None
        self.force_at = inputs.index(FORCE) if FORCE in inputs else None
        self.from_call = tuple((i, name) for i, name in enumerate(inputs) if name in produced)
        self.tokens_at = tuple((i, name, token_dtypes[name]) for i, name in enumerate(inputs) if name in token_dtypes)
        # the others reuse the state's resolved input list as it is
        self.per_call = (self.weights_at is not None or self.force_at is not None or bool(self.from_call)
                         or bool(self.tokens_at))


class Runtime:
    def __init__(self, session: Session, policy: Policy, plan: CachePlan,
                 variants: dict[VariantKind, LoweredVariant], signature: CallSignature, reduce=None):
        self.session = session
        self.policy = policy
        self.plan = plan
        self.variants = variants
        self.full = variants[VariantKind.FULL]
        self.signature = signature
        self.enabled = True
        self.reduce = reduce  # context parallelism: sums a signal's tensor over the ranks
        # a signal measured after the variant ran (AdaCache, SpeCa, EasyCache's rate): only then is it asked
        self.measures_after = plan.signal is not None and plan.signal.measures_after
        self._prelude_kinds = plan.prelude
        self.prelude = tuple(variants[kind] for kind in plan.prelude)  # run before the decision (the PROBE)
        self._unmeasured = NO_SIGNAL if plan.probe is None else None  # a call's signal until it is measured
        # call values the others read: what the prelude outputs that is not state it writes
        self.produced = {name for v in self.prelude for name in v.outputs} - {e.name for e in plan.state}
        self.shared = {name for v in self.prelude for name in v.shared}  # of those, one value for a batch's rows
        self._writes = {kind: state_writes(plan.state, kind, v.outputs) for kind, v in variants.items()}
        self._fallback = {e.name: e.shifts_from for e in plan.state if e.shifts_from}  # read of a missing slot
        self.interpreter = StepInterpreter(policy, plan, variants)
        self._host = self.interpreter.host_inputs
        self._tensors: dict[tuple, torch.Tensor] = {}  # host values on the device, memoised (weights, force)
        self._zeros = {e.name: e for e in plan.state if e.initial_zeros}  # state read as zeros before its first write
        # FLOPs of a call that ends in each kind (the prelude counted in), and of an uncached call
        self.flops = {kind: CallFlops((*self.prelude, v)) for kind, v in variants.items()
                      if kind not in plan.prelude and kind is not VariantKind.DECIDE}
        token_dtypes = {name: dtype for name, (_, dtype) in self.interpreter.token_inputs.items()}
        self._calls = {kind: _KindCall(kind, v, self.produced, token_dtypes, self._writes[kind], self.flops)
                       for kind, v in variants.items()}

    def use(self, policy: Policy) -> None:
        """Serve the same compiled variants with another policy of the same compiled shape (``backend.retarget``):
        the forecast weights it memoised belong to the old forecaster and schedule."""
        self.policy = policy
        self.interpreter.use(policy)

    def __call__(self, *args):
        if not self.enabled:  # the stack turned out to be split across graphs: compute, never cache
            return self._uncached(args)
        rows = ROWS.get()
        if rows is not None:  # a batch of requests, each row at its own step
            return run_rows(self, args, rows)
        sig = self.signature
        session = self.session
        if sig.carried:
            key = session.carrier.get()
            session.carrier.set(None)
            if key is None:  # no prologue graph ran in this forward: nothing tells the step
                return self._uncached(args)
        else:
            key = ()
            for i in sig.timesteps:  # the one host read of the call
                t = args[i]
                values = t.tolist() if t.dim() == 1 else t.reshape(-1).tolist()  # (a reshape costs 2 µs)
                first = values[0]
                if len(values) > 1 and values.count(first) != len(values):
                    return self._uncached(args)  # per-sample timesteps: one batch, several steps; no cache
                key += (first,)
        model = id(args[sig.parameter]) if sig.parameter is not None else None
        session.cached_calls += 1  # (Session.observe, without its frame)
        tick = session.clocks.observe(model, key)
        clock = tick.clock
        # a static graph is only ever called at the sizes it was traced at (Dynamo guards them): its key is ()
        shape_key = tuple(args[i].shape for i in sig.sized) + tuple(args[i] for i in sig.sizes) if sig.sizes else ()
        scope = clock.scope
        state = session.states.get((model, tick.context, scope.number if scope is not None else None), self,
                                   shape_key, clock.generation)
        num_steps = tick.num_steps or self.policy.num_steps
        if num_steps is None:
            session.note_no_step_count(self.policy.schedule)
        step = clock.step
        values: dict = {}  # named values of this call: the prelude's outputs
        signals = state.signals
        grid = scope.timesteps if scope is not None else ()  # the sampler's, when the caller said
        info = StepInfo(step, num_steps, state.full_steps, signals, grid)  # sees the signal appended below
        measured = self._unmeasured
        run_prelude = None
        if self.prelude:  # made only where there is one: most plans' calls create no closure

            def run_prelude():
                nonlocal measured
                for variant in self.prelude:
                    self._run(self._calls[variant.kind], args, state, values, None)
                measured = self.plan.measure(values, state, self.reduce)  # the one extra host read of the call
                if measured is not None:
                    signals.append(measured)

        interpreter = self.interpreter
        call = interpreter.step(info, run_prelude,
                                (lambda: self._axis(key, clock, state)) if interpreter.by_time else None)
        kind = call.variant
        does = self._calls[kind]
        outs = self._run(does, args, state, values, call)
        n = does.num_outputs
        after = None  # a signal this call's variant measured (AdaCache, SpeCa), read before its state is stored
        if self.measures_after:
            after = self.plan.measure_after(kind, values, state, self.reduce)
        if session.step_records is not None:
            session.step_records.append((tick.context, call))
        for done in call.prelude:
            self._commit(done, state, values)
        if does.writes is not None:  # (what _commit does, without the lookups: most cached kinds store nothing)
            state.resolved.clear()
            does.writes.apply(state.tensors, values)
        label = state.label
        if label is None:
            label = state.label = session.context_label(model, tick.context)
        if kind is _DECIDE:  # the device decided: its decision is read when stats are asked for
            session.recorder.record_pending(clock.generation, label, step, values[SIGNAL_FULL], values[SIGNAL_VALUE],
                                            does.full_flops, self.flops[VariantKind.CACHED])
            return outs[:n] if len(outs) != n else outs
        full = does.is_full
        if full:
            if not state.full_steps:  # the first full call of this run: a calibrated schedule checks it was made for it
                self._check_run(num_steps, grid, outs[n : n + len(self.plan.features)])
            signal = None if measured is NO_SIGNAL else measured
            for recorder in session.recorders:  # calibration: the trajectory of the cached features
                recorder(self.plan, clock.generation, tick.context, clock, step, key, outs[n:], signal)
            interpreter.keep_full(state.full_steps, step)
            interpreter.keep_full(state.full_keys, key)
        if after is not None:
            measured = after
        session.recorder.record(clock.generation, label, step, does.value, full, does.flops, does.full_flops, measured)
        if full:
            signals.clear()
        if after is not None:
            signals.append(after)
        return outs[:n] if len(outs) != n else outs

    def _check_run(self, num_steps: int | None, grid: tuple, features: Sequence[torch.Tensor]) -> None:
        """Once per run (generation, context and size): the schedule sees the step count, the sampler's grid and the
        cached features' sizes this call computed — a dynamic-shape graph serves other sizes than it was compiled at,
        and ``backend.retarget`` hands a schedule to graphs compiled before it, so the plan's own check
        (``check_plan``, at compile time) cannot see them."""
        fingerprint = self.plan.fingerprint
        self.policy.schedule.check_run(RunFacts(num_steps, tuple(grid), tuple(tuple(f.shape[1:]) for f in features),
                                                fingerprint.get("graph", ""), fingerprint.get("shards")))

    def _run(self, does: _KindCall, args, state: ContextState, values: dict, call: StepCall | None):
        """Run ``does``'s variant with its named inputs (the state's, the call's values, ``call``'s host inputs); its
        named outputs join the call's values."""
        variant = does.variant
        inputs = state.resolved.get(variant.kind)  # state inputs change only when a call writes state
        if inputs is None:
            device = args[self.signature.device].device
            inputs = state.resolved[variant.kind] = [self.state_input(name, state, device) for name in variant.inputs]
        if does.per_call:
            inputs = list(inputs)
            latent = args[self.signature.device]
            device = latent.device
            if does.weights_at is not None:  # on_device's memo read here: a cached call of a run always finds it
                batch = latent.shape[0]  # a row of weights per batch row
                tensor = self._tensors.get((call.weights, device, batch))
                inputs[does.weights_at] = tensor if tensor is not None else self.on_device(call.weights, torch.float32,
                                                                                           device, batch)
            if does.force_at is not None:
                inputs[does.force_at] = self.on_device(call.force, torch.bool, device)
            for i, name in does.from_call:
                inputs[i] = values[name]
            for i, name, dtype in does.tokens_at:
                inputs[i] = torch.tensor(call.tokens[name], dtype=dtype, device=device)
        outs = variant.fn(*args, *inputs)  # (read here, not kept: a timing harness may wrap the variant's fn)
        if does.outputs:
            values.update(zip(does.outputs, outs[does.num_outputs:]))
        return outs

    def on_device(self, value, dtype: torch.dtype, device, rows: int | None = None) -> torch.Tensor:
        """A host value (forecast weights, a force flag) as a device tensor, memoised: a repeated schedule moves
        each value once. ``rows``: the value is one row of a ``[rows, ...]`` input (the forecast weights)."""
        memo = (value, device) if rows is None else (value, device, rows)
        tensor = self._tensors.get(memo)
        if tensor is None:
            if len(self._tensors) > 4096:  # timestep-dependent weights of many generations: stay bounded
                self._tensors.clear()
            tensor = torch.tensor(value if rows is None else [value] * rows, dtype=dtype, device=device)
            self._tensors[memo] = tensor
        return tensor

    def store_row(self, kind: VariantKind, tensors: dict, values: dict) -> None:
        """Store into a request's state ``tensors`` what a call that ran ``kind`` writes, from its row's named
        ``values`` (views of a batch's outputs): copied, so a row's state does not keep the whole batch alive."""
        writes = self._writes[kind]
        writes.apply(tensors, {source: values[source].clone() for _, source in writes.stores})

    def _commit(self, kind: VariantKind, state: ContextState, values: dict) -> None:
        """Store the state entries a call that ran ``kind`` writes; older history slots move first."""
        writes = self._writes[kind]
        if not writes.stores:
            return
        state.resolved.clear()
        writes.apply(state.tensors, values)

    def state_input(self, name: str, state: ContextState, device) -> torch.Tensor | None:
        """A named input from the state; a history slot not written yet reads as the nearest younger one.
        Host inputs (the forecast weights) and the prelude's values are filled in per call (None here)."""
        if name in self._host or name in self.produced:
            return None
        found = stored_value(state.tensors, name, self._fallback)
        if found is None and name in self._zeros:
            entry = self._zeros[name]
            found = torch.zeros(entry.shape, dtype=entry.dtype, device=device)
        if found is None:
            raise KeyError(f"c4d: variant input {name!r} has no value")  # a plan/variant mismatch: a bug
        return found

    def _axis(self, key: tuple, clock, state: ContextState) -> TimeAxis:
        """This call's time axis for a forecast in the timestep: the timestep input that moves (a guidance-scale
        input next to it stays put), at this call, the clock's first step and the full steps kept."""
        i = next((i for i, (a, b) in enumerate(zip(clock.first_key, key)) if a != b), 0)
        keys = state.full_keys[-self.plan.num_slots:]
        return TimeAxis(key[i], clock.first_step, clock.first_key[i], tuple(k[i] for k in reversed(keys)))

    def _uncached(self, args):
        """The model's outputs without touching any state: the prelude, then FULL."""
        self.session.uncached()
        values: dict = {}
        for variant in self.prelude:
            outs = variant.fn(*args)
            values.update(zip(variant.outputs, outs))
        outs = self.full.fn(*args, *(values[name] if name in values else None for name in self.full.inputs))
        return outs[: self.full.num_outputs]

