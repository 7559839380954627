"""What lives across step calls of every graph one backend compiled: the session.

A backend compiles graphs; a session runs them. Every compiled graph of a backend (each expert of Wan 2.2,
a ControlNet beside its transformer, the fragments of a model that graph breaks split, the graphs of a
recompile) is handed the same session, which owns what outlives one call:

* the generation and each guidance context's step position (``runtime/clock.py``): one clock per context for every
  model, so a second expert that takes over in the middle of a generation goes on at the generation's step;
* the cache state per (model, context, generation) (``runtime/state.py``);
* the stats of every call (``runtime/stats.py``) and the calibration recorders that see every full step;
* the names that stats give to the models it serves, and the timestep a prologue fragment lends the stack
  graph of the same forward.

The Runtime of a compiled graph reads and writes only this; it never sees the backend that compiled it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar

import torch

from ..errors import InvalidValueError
from .clock import Clocks
from .contexts import new_generation
from .requests import Requests
from .state import StateTable
from .stats import StatsRecorder


class Session:
    def __init__(self, warn: Callable[[str, str], None]):
        self.clocks = Clocks()
        self.states = StateTable()
        self.recorder = StatsRecorder()
        self.recorders: list[Callable] = []  # called with every FULL step's feature values (calibration)
        self.requests = Requests()  # a serving loop's requests, each row of a batch one of them
        self.step_records: list | None = None  # set to a list: (context, StepCall) of every cached call
        # the timestep of the prologue fragment of the current forward, for a stack graph without one
        self.carrier: ContextVar[tuple | None] = ContextVar(f"c4d_carried_timestep_{id(self)}", default=None)
        self.cached_calls = 0  # calls served by a cached graph (uncached fragments stay quiet once there are)
        self.uncached_calls = 0  # calls of graphs that run without a cache
        self._warn = warn  # (key, message): says each thing once
        self._calls_at_begin = 0  # calls that had reached the session when the current generation began
        self._empty_generations = 0  # begun generations in a row that no call reached
        self._models: dict[object, int | str] = {}  # model key -> its index among the unnamed, or its name
        self._model_names: list[tuple[weakref.ref, str]] = []  # (a module, the name its contexts carry)

    # -- per call (the Runtime) ------------------------------------------------------------------
    def uncached(self) -> None:
        """A graph without a cache was called."""
        self.uncached_calls += 1
        self.recorder.uncached()

    def context_label(self, model: object, context: str) -> str:
        """The context's name in stats; the second and later models a session serves are told apart, and a model
        given a name (``name_model``: ``enable_cache`` names a pipeline's ControlNet) says it."""
        index = self._models.get(model)
        if index is None:
            name = next((n for m, n in self._model_names
                         if m() is not None and any(id(p) == model for p in m().parameters())), None)
            index = self._models[model] = name if name is not None else sum(
                isinstance(i, int) for i in self._models.values())
        if isinstance(index, str):
            return f"{context}[{index}]"
        return context if index == 0 else f"{context}[model {index}]"

    def note_no_step_count(self, schedule) -> None:
        """A call found no step count; a schedule that can do without says what it does instead."""
        if schedule.without_step_count:
            self._warn("steps", f"c4d: the number of steps is unknown, so the {schedule.kind!r} schedule runs "
                                f"{schedule.without_step_count}; pass num_steps=, call backend.begin_generation"
                                "(timesteps), or use c4d_compile.enable_cache(pipe, ...)")

    # -- the caller's API (the backend hands these on) ---------------------------------------------
    def name_model(self, module: torch.nn.Module, name: str) -> None:
        """Stats name the contexts of ``module`` ``context[name]``; the unnamed models are numbered apart."""
        self._model_names.append((weakref.ref(module), name))

    def generation(self):
        """This thread's begun generation (None before the first ``begin_generation``)."""
        return self.clocks.generation_var.get()

    def begin_generation(self, timesteps: Sequence | torch.Tensor | None = None, *,
                         num_steps: int | None = None) -> bool:
        """The next calls are a new generation; this thread's previous one is freed. True when the last
        generations went by without a call reaching the session (the backend says why that may be)."""
        given = ()
        if timesteps is not None:
            num_steps = len(timesteps)
            given = tuple(float(t) for t in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps))
        if num_steps is not None and (isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1):
            raise InvalidValueError("num_steps", num_steps, "an integer >= 1")
        idle = False
        previous = self.clocks.generation_var.get()
        if previous is not None:
            self.states.forget(lambda slot: slot[2] == previous.number)
            idle = self._note_calls()
        self.clocks.begin(new_generation(num_steps, given))
        return idle

    def _note_calls(self) -> bool:
        """Two begun generations in a row without a call: a pipeline may begin one twice before its loop
        (``set_timesteps``, then ``set_begin_index``), a third is not that."""
        calls = self.cached_calls + self.uncached_calls
        self._empty_generations = self._empty_generations + 1 if calls == self._calls_at_begin else 0
        self._calls_at_begin = calls
        return self._empty_generations >= 2

    def reset(self) -> None:
        """Forget every cache and clock: the next call starts a new generation at step 0."""
        self.clocks.reset()
        self.states.clear()

    def reset_stats(self) -> None:
        """Zero the stats; what the compiled graphs are (planned bytes, coarse blocks, the schedule) stays."""
        old, self.recorder = self.recorder.total, StatsRecorder()
        total = self.recorder.total
        total.planned_bytes_per_context, total.coarse_blocks = old.planned_bytes_per_context, old.coarse_blocks
        total.schedule = self.recorder.last.schedule = old.schedule

    def invalidate(self, module: torch.nn.Module | None = None) -> None:
        """Forget cached features (all, or ``module``'s), keep the clocks."""
        if module is None:
            self.states.clear()
            return
        keys = {id(p) for p in module.parameters()}  # a state's model key is one of its parameters
        self.states.forget(lambda slot: slot[0] in keys)
