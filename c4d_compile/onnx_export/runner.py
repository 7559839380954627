"""``load_exported(out_dir)``: run an exported cached model with onnxruntime, as the backend runs it.

The runner is the step program's interpreter without torch in the loop: per call it finds the guidance
context and the step from the timestep (the backend's own clocks: ``cache_context`` and
``begin_generation`` work the same), looks the step up in the program, feeds the variant the caller's
inputs, the state entries it reads and the step's forecast weights, and stores the state it writes
(history entries move by reference, as in the Runtime). Everything it checks is checked before a
variant runs: a wrong input name, shape or dtype, a fixed argument with another value, a step past the
exported program, or a history other than the one the step's weights assume — each raises an
``ExportedCallError`` instead of returning a wrong result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ExportedCallError, ExportFormatError, InvalidValueError
from ..runtime.clock import Clocks
from ..runtime.contexts import call_context, new_generation
from ..runtime.interpreter import StepCall
from ..runtime.state import StateTable
from ..runtime.state_names import FORCE, SIGNAL_FULL, WEIGHTS
from ..runtime.step_program import VariantKind, state_writes, stored_value
from .capture import flatten_kwargs
from .onnx_files import output_names
from .plan_file import ExportedPlan, read_plan

_NUMPY = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64, torch.int64: np.int64,
          torch.int32: np.int32, torch.bool: np.bool_}


def load_exported(out_dir: str | Path, providers: Sequence[str] | None = None, *, cached: bool = True,
                  verify_weights: bool = False) -> ExportedModel:
    """The exported model in ``out_dir``, validated against its ``plan.json``, on onnxruntime ``providers``
    (default: CPU). ``cached=False`` runs the full variant at every step: the uncached model, for comparison.
    ``verify_weights=True`` also hashes ``weights.bin`` against the plan (its size is always checked)."""
    import onnxruntime as ort

    directory = Path(out_dir)
    plan = read_plan(directory, verify_weights)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = {kind: ort.InferenceSession(str(directory / v.file), options,
                                           providers=list(providers or ["CPUExecutionProvider"]))
                for kind, v in plan.variants.items()}
    return ExportedModel(plan, sessions, cached=cached)


class ExportedModel:
    def __init__(self, plan: ExportedPlan, sessions: dict, *, cached: bool = True):
        if not isinstance(cached, bool):
            raise InvalidValueError("cached", cached, "True or False")
        self.plan = plan
        self.sessions = sessions
        self.cached = cached
        # uncached: FULL at every step, after the variants it reads from (the probe), as at a program's step 0
        first = next(step for step in plan.program if step.variant is VariantKind.FULL)
        self._every_step_full = StepCall(VariantKind.FULL, None, (), first.prelude)
        self.clocks = Clocks()
        self.states = StateTable()
        # calls since the last reset per variant kind (a DECIDE call counts as the kind it decided on)
        self.calls: dict[str, int] = {}
        self.step_records: list | None = None  # set to a list: (context, StepCall) of every call, as the Runtime's
        self._writes = {kind: state_writes(plan.state, kind, v.outputs) for kind, v in plan.variants.items()}
        self._fallback = {e.name: e.shifts_from for e in plan.state if e.shifts_from}
        self._zeros = {e.name: e for e in plan.state if e.initial_zeros}
        self._inputs = {x.name: x for x in plan.inputs}
        self._host = {x.name: _NUMPY[x.dtype] for x in plan.host_inputs}
        self._reads = {kind: [i.name for i in session.get_inputs()] for kind, session in sessions.items()}
        # the forecast weights are a row per batch row (the same row for every row here): the rows each file takes
        self._weight_rows = {kind: _rows_of(i.shape) for kind, session in sessions.items()
                             for i in session.get_inputs() if i.name == WEIGHTS}
        for kind, session in sessions.items():  # the files say what plan.json says they take
            variant = plan.variants[kind]
            expected = {*self._inputs, *variant.inputs}
            unknown = [i.name for i in session.get_inputs() if i.name not in expected]
            outputs = [o.name for o in session.get_outputs()]
            if unknown or outputs != output_names(variant):
                raise ExportFormatError(f"{variant.file} does not match plan.json: inputs {unknown} unknown, outputs "
                                        f"{outputs} (expected {output_names(variant)})")

    def __call__(self, **kwargs: Any):
        arrays = self._arrays(kwargs)
        key = tuple(float(arrays[name].reshape(-1)[0]) for name in self.plan.timesteps)
        tick = self.clocks.observe(None, key)
        clock = tick.clock
        scope = clock.scope.number if clock.scope is not None else None
        state = self.states.get((None, tick.context, scope), self, (), clock.generation)
        step = clock.step
        entry = self._entry(step, tick, state.full_steps, key)
        values: dict[str, np.ndarray] = {}  # named outputs of this call's variants so far
        for kind in entry.prelude:
            self._run(kind, arrays, values, state, entry)
        kind = entry.variant
        outs = self._run(kind, arrays, values, state, entry)
        if self.step_records is not None:
            self.step_records.append((tick.context, entry))
        for done in (*entry.prelude, kind):
            self._writes[done].apply(state.tensors, values)
        if kind is VariantKind.FULL:
            state.full_steps.append(step)
        ran = kind.value if SIGNAL_FULL not in values else "full" if bool(values[SIGNAL_FULL]) else "cached"
        self.calls[ran] = self.calls.get(ran, 0) + 1
        n = self.plan.variants[kind].num_outputs
        results = tuple(torch.from_numpy(x) for x in outs[:n])
        return results[0] if self.plan.outputs == "tensor" else results

    def _entry(self, step: int, tick, full_steps: list[int], key: tuple) -> StepCall:
        """The program's step for this call, once the call is known to be one the program was exported for."""
        if step >= self.plan.num_steps or (tick.num_steps is not None and tick.num_steps != self.plan.num_steps):
            raise ExportedCallError(
                f"step {step} of context {tick.context!r} (a generation of {tick.num_steps or 'unknown'} steps): the "
                f"model was exported for generations of {self.plan.num_steps} steps; call reset() or "
                "begin_generation() between generations, or export with num_steps= the sampler's")
        entry = self.plan.program[step] if self.cached else self._every_step_full
        if entry.weights is not None and tuple(reversed(full_steps[-len(entry.history):])) != entry.history:
            raise ExportedCallError(f"step {step} forecasts from full steps {list(entry.history)} but context "
                                    f"{tick.context!r} computed {full_steps}: steps were skipped or repeated")
        if entry.timestep is not None and not any(math.isclose(t, entry.timestep, rel_tol=1e-5, abs_tol=1e-6)
                                                  for t in key):
            raise ExportedCallError(f"step {step} was exported for timestep {entry.timestep:g} (variable='timestep'), "
                                    f"called with {key}: export with the sampler's timesteps")
        return entry

    def _run(self, kind: VariantKind, arrays: dict, values: dict, state, entry: StepCall) -> list:
        """Run one variant: the caller's inputs, the call's values, the step's host inputs, the state."""
        variant = self.plan.variants[kind]
        feeds = {}
        for name in self._reads[kind]:
            if name in arrays:
                feeds[name] = arrays[name]
            elif name in values:
                feeds[name] = values[name]
            elif name == WEIGHTS:
                row = np.asarray(entry.weights, dtype=np.float32)
                feeds[name] = np.ascontiguousarray(np.broadcast_to(row, (self._weight_rows[kind], row.size)))
            elif name == FORCE:
                feeds[name] = np.asarray(entry.force)
            elif name in entry.tokens:
                feeds[name] = np.asarray(entry.tokens[name], dtype=self._host[name])
            else:
                feeds[name] = self._state_input(name, state)
        outs = self.sessions[kind].run(None, feeds)
        values.update(zip(variant.outputs, outs[variant.num_outputs:]))
        return outs

    def _arrays(self, kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays = {}
        for name, value in flatten_kwargs(kwargs):
            if name in self.plan.fixed:
                if value != self.plan.fixed[name]:
                    raise ExportedCallError(f"{name}={value!r}: the model was exported with {name}="
                                            f"{self.plan.fixed[name]!r}")
                continue
            spec = self._inputs.get(name)
            if spec is None:
                raise ExportedCallError(f"unexpected input {name!r}; the exported inputs: {sorted(self._inputs)}"
                                        + (f", fixed: {sorted(self.plan.fixed)}" if self.plan.fixed else ""))
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if tuple(array.shape) != spec.shape or array.dtype != _NUMPY.get(spec.dtype):
                exported = f"{str(spec.dtype).removeprefix('torch.')}{list(spec.shape)}"
                raise ExportedCallError(f"input {name!r} is {array.dtype}{list(array.shape)}; exported as {exported} "
                                        "(shapes are static)")
            arrays[name] = array
        missing = sorted(set(self._inputs) - set(arrays))
        if missing:
            raise ExportedCallError(f"missing input(s) {missing}; the exported inputs: {sorted(self._inputs)}")
        return arrays

    def _state_input(self, name: str, state) -> np.ndarray:
        """A state entry; a history slot not written yet reads as the nearest younger one (zero weight)."""
        found = stored_value(state.tensors, name, self._fallback)
        if found is None and name in self._zeros:
            entry = self._zeros[name]
            found = np.zeros(entry.shape, dtype=_NUMPY[entry.dtype])
        if found is None:
            raise ExportedCallError(f"state entry {name!r} has no value at this step: the program does not start "
                                    "with a full step")
        return found

    def cache_context(self, name: str, step_index: int | None = None, num_steps: int | None = None):
        """Calls inside use the cache of context ``name`` ("cond", "uncond"), as ``backend.cache_context``."""
        return call_context(name, step_index, num_steps)

    def begin_generation(self, num_steps: int | None = None) -> None:
        """The next calls begin a new generation (of the exported step count)."""
        if num_steps is not None and num_steps != self.plan.num_steps:
            raise InvalidValueError("num_steps", num_steps, f"{self.plan.num_steps}, the exported step count")
        previous = self.clocks.generation_var.get()
        if previous is not None:
            self.states.forget(lambda slot: slot[2] == previous.number)
        self.clocks.begin(new_generation(self.plan.num_steps))

    def reset(self) -> None:
        """Forget every cache and clock: the next call is step 0 of a new generation."""
        self.clocks.reset()
        self.states.clear()
        self.calls.clear()

    def __repr__(self) -> str:
        kinds = ", ".join(self.sessions)
        return f"ExportedModel(policy={self.plan.policy.get('name')!r}, steps={self.plan.num_steps}, variants={kinds})"


def _rows_of(shape: list) -> int:
    """The rows of a ``[rows, slots]`` input as the file declares them: its size, or one where it is symbolic (one
    row broadcasts over the batch)."""
    return shape[0] if len(shape) == 2 and isinstance(shape[0], int) else 1
