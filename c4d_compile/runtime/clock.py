"""Which context and step a call is: from the caller when it says, else from the timestep.

A clock counts the step calls of one guidance context in the current generation, for every model of the
session: a ControlNet and its transformer called at one timestep are at one step, and the second expert of
Wan 2.2, which takes over in the middle of a generation, goes on at the generation's step (a model's
*state* stays its own: ``runtime/state.py``).

* Every call of a context is its next step (or the step the pipeline passes). A sampler that calls
  the model twice per step (Heun: t0, t1, t1, t2, ...) therefore gets one clock tick per call, which is
  what its schedule is planned over (``len(scheduler.timesteps)`` calls).
* Context named by the caller (``contexts.CallContext``): that context.
* No context named: a call with the same timestep as this model's previous call is the next
  guidance branch (separate cond / uncond calls), each branch with its own clock; the number of
  branches is learned from the first step, so a timestep evaluated twice (Heun) is not a new branch.
* A call at the timestep of its clock's step by a model that has not been called at that step yet is
  at that step; any other call is the clock's next step.
* Generations: ``begin_generation`` starts one explicitly; a timestep that moves against the
  direction this generation has been moving also starts a new one (most samplers lower the
  timestep, some raise it: the direction is learned from the first two steps, never assumed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .contexts import CALL_CONTEXT, Generation, generation_variable


@dataclass
class Clock:
    generation: int  # backend-wide generation number this clock is in
    scope: Generation | None
    step: int = -1
    last_key: tuple | None = None
    direction: int = 0  # -1, +1, 0 = not learned yet
    first_step: int = 0
    first_key: tuple = ()  # timestep values of the first call this generation
    models: set = field(default_factory=set)  # the models called at the current step


class Tick(NamedTuple):  # one per step call
    context: str
    clock: Clock
    num_steps: int | None  # from the caller, when it says


_BRANCHES = tuple(f"branch{i}" for i in range(8))  # context names of the guidance branches, made once


def _direction(old: tuple, new: tuple) -> int:
    for a, b in zip(old, new):
        if a != b:
            return 1 if b > a else -1
    return 0


class Clocks:
    def __init__(self) -> None:
        self.generation_var = generation_variable()  # this backend's begun generation, per thread / task
        self.clocks: dict[tuple, Clock] = {}  # (context, generation scope) -> its clock
        self.generation = 0  # backend-wide: the number of the newest generation any context began
        self._last_key: dict[object, tuple] = {}  # per model: timestep of its previous call
        self._branch: dict[object, int] = {}  # per model: how many calls in a row had its current timestep, - 1
        self._width: dict[object, int] = {}  # per model: guidance branches per step in this generation

    def observe(self, model: object, key: tuple) -> Tick:
        call, scope = CALL_CONTEXT.get(), self.generation_var.get()
        last = self._last_key.get(model)
        self._last_key[model] = key
        if call is not None:
            name = call.name
        else:
            # the guidance branch of a call that names none: the i-th call with the same timestep is branch i,
            # modulo the number of branches the generation's first step had (learned when the timestep first
            # moves), so a sampler that evaluates one timestep twice (Heun: t0, t1, t1, t2, ...) stays in its
            # branches instead of opening new ones (inline: this runs on every call)
            if key == last:
                repeat = self._branch.get(model, -1) + 1
            else:
                repeat = 0
                if last is not None and model not in self._width:
                    self._width[model] = self._branch.get(model, 0) + 1
            self._branch[model] = repeat
            width = self._width.get(model)
            branch = repeat % width if width else repeat
            name = _BRANCHES[branch] if branch < len(_BRANCHES) else f"branch{branch}"
        slot = (name, scope.number if scope else None)
        clock = self.clocks.get(slot)
        if clock is None or clock.scope is not scope:
            if call is not None and call.step_index is not None:
                step = call.step_index
            else:  # a context that starts mid-generation (its graph compiled late) joins at its timestep's step
                step = scope.step_of(key[0]) if scope is not None and key else 0
            clock = self._begin(slot, scope, step, key)
        elif call is not None and call.step_index is not None:
            if call.step_index < clock.step:
                clock = self._begin(slot, scope, call.step_index, key)
            elif call.step_index != clock.step:
                clock.models.clear()
            clock.step = call.step_index
        elif key != clock.last_key or model in clock.models:
            clock = self._advance(slot, clock, key)
        clock.models.add(model)  # (another model at this timestep: the same step)
        clock.last_key = key
        num_steps = (call.num_steps if call else None) or (scope.num_steps if scope else None)
        return Tick(name, clock, num_steps)

    def _advance(self, slot: tuple, clock: Clock, key: tuple) -> Clock:
        """The next call of a clock is its next step, unless its timestep moved backwards: a new generation."""
        last = clock.last_key
        if last is not None and key != last:
            # the first timestep that differs says which way; keys of one length compare as tuples do
            moved = (1 if key > last else -1) if len(key) == len(last) else _direction(last, key)
            if clock.direction and moved != clock.direction:
                self._width.clear()  # the new generation learns its branch counts again
                return self._begin(slot, clock.scope, 0, key)
            clock.direction = clock.direction or moved
        clock.step += 1
        clock.models.clear()
        return clock

    def _begin(self, slot: tuple, scope: Generation | None, step: int, key: tuple) -> Clock:
        old = self.clocks.get(slot)
        if self.generation == 0 or (old is not None and old.generation == self.generation):
            self.generation += 1  # the first context to start over begins the backend's next generation
        clock = self.clocks[slot] = Clock(self.generation, scope, step=step, first_step=step, first_key=key)
        return clock

    def forget_scope(self, scope: Generation) -> None:
        """Drop the clocks of a generation a caller has replaced."""
        for slot in [s for s, c in self.clocks.items() if c.scope is scope]:
            del self.clocks[slot]

    def begin(self, generation: Generation) -> None:
        """A caller began a generation: every context that calls next (in this thread) is in a new one."""
        previous = self.generation_var.get()
        if previous is not None:
            self.forget_scope(previous)
        self.generation_var.set(generation)
        self.generation += 1
        self._last_key.clear()  # a repeated timestep across the boundary is not a second guidance branch
        self._branch.clear()
        self._width.clear()

    def reset(self) -> None:
        self.clocks.clear()
        self._last_key.clear()
        self._branch.clear()
        self._width.clear()
        self.generation += 1
