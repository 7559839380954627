"""The step interpreter: what one step call of a cached model runs, decided in one place.

Per call it answers, from the plan, the policy, the clock's position and the context's history and
signals: which variants run (the prelude, then the decided kind), with which host inputs (the forecast
weights and the full steps they assume, the force flag of a device decision, a partial call's token
rows). The answer is a :class:`StepCall`, which is also the step's record.

Three executors run its answers and decide nothing themselves: the torch Runtime (``runtime/executor.py``) on
compiled variants, the exporter (``onnx_export/program.py``) which asks it for every step of a
generation and writes the answers into ``plan.json``, and the ONNX runner (``onnx_export/runner.py``)
which executes the written answers on onnxruntime sessions. Their step records are compared
exactly in ``tests/runtime/test_interpreter.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

from ..policies.config import Policy
from ..policies.forecasters.base import slot_weights
from ..policies.variable import Variable, coordinates
from .state_names import FORCE, WEIGHTS
from .step_program import StepInfo, VariantKind
from .token_picker import TokenPicker

if TYPE_CHECKING:
    from ..compiler.plan import CachePlan


class _Named(Protocol):
    inputs: Sequence[str]
    outputs: Sequence[str]


class StepCall(NamedTuple):  # a tuple, not a dataclass: the Runtime makes one per step call
    """What one step call runs: the executors' instruction and the step's record."""

    variant: VariantKind  # the variant whose model outputs the call returns
    weights: tuple[float, ...] | None  # its forecast weights input, when it reads one
    history: tuple[int, ...]  # the full steps the weights are over, newest first (empty without weights)
    prelude: tuple[VariantKind, ...] = ()  # run first in the same call; ``variant`` reads their named outputs
    force: bool | None = None  # DECIDE's input: true where the schedule computes whatever the signal says
    tokens: Mapping[str, tuple] = {}  # a partial call's host inputs: rows, or draws  # noqa: RUF012 - never mutated
    timestep: float | None = None  # a forecast in the timestep: the timestep the weights were computed for

    def to_json(self) -> dict:
        return {"variant": self.variant.value, "weights": None if self.weights is None else list(self.weights),
                "history": list(self.history), "prelude": [k.value for k in self.prelude], "force": self.force,
                "tokens": {name: list(values) for name, values in self.tokens.items()}, "timestep": self.timestep}


class TimeAxis(NamedTuple):
    """Where a forecast in the timestep reads the time: this call's, the generation's first step's, and
    those of the full steps in the history (newest first)."""

    time: float
    first_step: int
    first_time: float
    history: tuple[float, ...]


class NeedsSignalError(RuntimeError):
    """The schedule decides from a signal measured after the prelude, and the executor cannot measure one."""


NO_TOKENS: Mapping[str, tuple] = {}
_READS_NOTHING = (False, False, ())  # a kind without a variant of its own here reads no host input


class StepInterpreter:
    """Decides the step calls of one compiled plan under one policy (``use`` swaps the policy).

    ``variants``: each variant kind's named inputs and outputs (``.inputs``, ``.outputs``), which tell the host
    inputs a kind reads and whether it reads the prelude's values.
    """

    def __init__(self, policy: Policy, plan: CachePlan, variants: Mapping[VariantKind, _Named]):
        self.plan = plan
        self.prelude = plan.prelude  # run before the decision (the PROBE) when the decision or the variant needs it
        # call values the prelude hands on: what it outputs that is not state it writes
        produced = {name for kind in plan.prelude for name in variants[kind].outputs} - {e.name for e in plan.state}
        inputs = {kind: tuple(v.inputs) for kind, v in variants.items()}
        self._reads_prelude = {kind for kind, names in inputs.items() if any(name in produced for name in names)}
        # token subsets: which cached calls are partial, and the draws of the rows each partial call recomputes
        self._picker = None
        if VariantKind.PARTIAL in inputs:
            self._picker = TokenPicker(plan.tokens.host_inputs(), policy.tokens.token_seed)
        picked = self._picker.inputs if self._picker is not None else {}
        self.host_inputs = frozenset({WEIGHTS, FORCE, *picked})
        # per kind, the host inputs it reads (weights, force, token names): one lookup per call
        self._reads = {kind: (WEIGHTS in names, FORCE in names, tuple(name for name in names if name in picked))
                       for kind, names in inputs.items()}
        # the forecast's history in the full steps: the last num_slots, newest first (one slice, made once)
        self._history = slice(None, -plan.num_slots - 1 if plan.num_slots else None, -1)
        # full steps kept per context: the forecast's history, and the two last ones a schedule may space by
        self.kept = max(plan.num_slots, 2)
        self._weights: dict[tuple, tuple[float, ...]] = {}
        self._calls: dict[tuple, StepCall] = {}  # the answers that depend on the step and history alone
        self.use(policy)

    @property
    def token_inputs(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of each token host input."""
        picked = self._picker.inputs if self._picker is not None else {}
        return {name: (draw.shape, draw.dtype) for name, draw in picked.items()}

    def use(self, policy: Policy) -> None:
        """Decide with another policy of the same compiled shape (``backend.retarget``): the weights memoised
        belong to the old forecaster and schedule."""
        self.policy = policy
        self._weights.clear()
        self._calls.clear()
        self._early = policy.schedule.early if self.prelude else None
        self._refine = policy.tokens.refine if self._picker is not None else None
        # whether the forecast weights depend on the timesteps (the executor passes a :class:`TimeAxis`); an
        # attribute, not a property: every call reads it
        self.by_time = policy.variable is not Variable.STEP

    def needs_prelude(self, info: StepInfo) -> bool:
        """Whether the call at ``info`` runs the prelude (``step`` runs it then): its signal decides, or the
        variant decided without it reads its values. A batch of requests runs the prelude on those rows only."""
        if not self.prelude:
            return False
        kind = self._early(info) if self._early is not None else self.policy.schedule.decide(info)
        return kind is None or kind in self._reads_prelude

    def step(self, info: StepInfo, run_prelude: Callable[[], None] | None,
             axis: Callable[[], TimeAxis] | None = None) -> StepCall:
        """The call at ``info``. ``run_prelude`` runs the prelude and appends the signal it measured to
        ``info.signals`` (None: the executor measures nothing; a schedule that needs a signal raises
        ``NeedsSignalError``); ``axis``: this call's time axis, asked only for a forecast in the timestep."""
        schedule = self.policy.schedule
        kind = self._early(info) if self._early is not None else schedule.decide(info)  # no prelude: decide now
        ran = ()
        if kind is None or kind in self._reads_prelude:
            if kind is None and run_prelude is None:
                raise NeedsSignalError("the schedule decides from a measured signal on the host")
            ran = self.prelude
            if run_prelude is not None:
                run_prelude()
            if kind is None:
                kind = schedule.decide(info)  # info.signals holds the signal the prelude measured
        if self._refine is not None:
            kind = self._refine(kind, info)
        reads_weights, reads_force, token_names = self._reads.get(kind, _READS_NOTHING)
        weights, history, time = None, (), None
        if reads_weights:
            history = tuple(info.full_steps[self._history])
            time_axis = axis() if self.by_time else None
            if not reads_force and not token_names:  # the whole answer follows from these: made once per run
                memo = (kind, info.step, history, time_axis, ran)
                found = self._calls.get(memo)
                if found is None:
                    if len(self._calls) > 4096:  # timestep-dependent answers of many generations: stay bounded
                        self._calls.clear()
                    weights = self.weights(info.step, history, time_axis)
                    time = time_axis.time if time_axis is not None else None
                    found = self._calls[memo] = StepCall(kind, weights, history, ran, None, NO_TOKENS, time)
                return found
            weights = self.weights(info.step, history, time_axis)
            time = time_axis.time if time_axis is not None else None
        force = schedule.forced(info) if reads_force else None
        tokens = NO_TOKENS
        if token_names:
            tokens = {name: tuple(self._picker.make(name, "cpu").tolist()) for name in token_names}
        return StepCall(kind, weights, history, ran, force, tokens, time)

    def weights(self, step: int, history: tuple[int, ...], axis: TimeAxis | None) -> tuple[float, ...]:
        """The forecast weights of ``step`` over the full steps ``history`` (newest first), memoised on all they
        depend on: a repeated schedule (every generation of a run) computes them once."""
        memo = (step, history, axis)
        found = self._weights.get(memo)
        if found is not None:
            return found
        if axis is None:
            target, coords = float(step), [float(s) for s in history]
        else:
            target, coords = coordinates(self.policy.variable, step, axis.time, axis.first_step, axis.first_time,
                                         history, axis.history)
        # a forecaster reading fewer slots than were compiled (``backend.retarget``) sees its own history only
        forecaster = self.policy.forecaster
        values = slot_weights(forecaster, target, coords[: forecaster.num_slots], self.plan.num_slots)
        if len(self._weights) > 4096:  # timestep-dependent weights of many generations: stay bounded
            self._weights.clear()
        self._weights[memo] = values
        return values

    def keep_full(self, full_steps: list, step: int) -> None:
        """Add a full step to a context's history, keeping what forecasts and schedules read."""
        full_steps.append(step)
        if len(full_steps) > self.kept:
            del full_steps[0]
