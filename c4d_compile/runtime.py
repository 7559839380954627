"""The callable handed back to Dynamo: per step call, pick the context and step, ask the schedule,
run exactly one variant, keep its state.

Kept thin on purpose — it runs once per denoising step: one host read of the timestep, a dict
lookup, the schedule's integer test, one compiled call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .flops import LazyFlops
from .plan import CachePlan
from .policies.config import FixedSchedule
from .stats import CacheStats
from .steps import StepTracker


@dataclass
class ContextState:
    generation: int
    shape_key: tuple
    slots: list = field(default_factory=list)
    full_steps: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LoweredVariant:
    fn: Callable
    scalar_names: tuple[str, ...]
    num_outputs: int
    flops: LazyFlops


class Runtime:
    def __init__(
        self,
        plan: CachePlan,
        schedule: FixedSchedule,
        full: LoweredVariant,
        cached: LoweredVariant,
        timestep_positions: Sequence[int],
        tracker: StepTracker,
        stats: CacheStats,
        state_shapes: Callable[[tuple], list[tuple[int, ...]]],
        device_position: int,
        size_positions: Sequence[int] = (),
    ):
        self.plan = plan
        self.schedule = schedule
        self.full = full
        self.cached = cached
        self.timestep_positions = tuple(timestep_positions)
        self.tracker = tracker
        self.stats = stats
        self.state_shapes = state_shapes  # feature shapes of a call (dynamic graphs: from its size args)
        self.device_position = device_position
        self.size_positions = tuple(size_positions)  # int arguments of a dynamic-shape graph
        self.enabled = True
        self.states: dict[str, ContextState] = {}
        self._scalar_cache: dict[tuple, torch.Tensor] = {}

    def _scalar(self, value: float, device: torch.device) -> torch.Tensor:
        key = (value, device)
        tensor = self._scalar_cache.get(key)
        if tensor is None:
            tensor = self._scalar_cache[key] = torch.tensor(value, dtype=torch.float32, device=device)
        return tensor

    def _held_bytes(self) -> dict[str, int]:
        slots = self.plan.forecaster.num_slots
        held: dict[str, int] = {}
        for state in self.states.values():
            for i, tensor in enumerate(state.slots):
                kind = self.plan.features[i // slots].kind
                held[kind] = held.get(kind, 0) + tensor.numel() * tensor.element_size()
        return held

    def __call__(self, *args):
        if not self.enabled:  # the stack turned out to be split across graphs: compute, never cache
            self.stats.uncached_calls += 1
            return self.full.fn(*args, *self._zero_state(args), *self._update_scalars([0], args))[
                : self.full.num_outputs
            ]
        timesteps = [args[i] for i in self.timestep_positions]
        key = tuple(float(t.reshape(-1)[0]) for t in timesteps)  # one host read per call
        context, clock = self.tracker.observe(key)
        # Dynamic-shape graphs take sizes as int arguments: a state is valid only for its sizes.
        shape_key = tuple(args[i] for i in self.size_positions)
        state = self.states.get(context)
        if state is None or state.generation != clock.generation or state.shape_key != shape_key:
            state = self.states[context] = ContextState(clock.generation, shape_key)
        step = clock.step
        last_full = state.full_steps[-1] if state.full_steps else None
        if self.schedule.is_full(step, last_full):
            state.full_steps.append(step)
            slots = state.slots or self._zero_state(args)
            outs = self.full.fn(*args, *slots, *self._update_scalars(state.full_steps, args))
            n = self.full.num_outputs
            state.slots = list(outs[n:])
            del state.full_steps[:-8]  # forecasters look back a few full steps at most
            result = outs[:n]
            variant = self.full
        else:
            values = self.plan.forecaster.predict_scalars(step, state.full_steps)
            device = args[self.device_position].device
            scalars = [self._scalar(values[k], device) for k in self.cached.scalar_names]
            result = self.cached.fn(*args, *state.slots, *scalars)
            variant = self.cached
        self.stats.record(context, variant is self.full, variant.flops, self.full.flops)
        if variant is self.full:  # state changes only on full steps
            self.stats.cache_bytes_by_kind = self._held_bytes()
        return result

    def _update_scalars(self, full_steps: list[int], args) -> list[torch.Tensor]:
        values = self.plan.forecaster.update_scalars(full_steps)
        device = args[self.device_position].device
        return [self._scalar(values[k], device) for k in self.full.scalar_names]

    def _zero_state(self, args) -> list[torch.Tensor]:
        device = args[self.device_position].device
        return [
            torch.zeros(shape, dtype=f.dtype, device=device)
            for f, shape in zip(self.plan.features, self.state_shapes(args))
            for _ in range(self.plan.forecaster.num_slots)
        ]
