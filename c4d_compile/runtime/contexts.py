"""What the caller says about a step call: its guidance context and its generation.

Both live in ``contextvars``, so two threads (or two asyncio tasks) driving two pipelines never see
each other's context:

* ``CallContext``: the guidance branch a call belongs to ("cond", "uncond", ...), optionally with
  the pipeline's own step index and step count. ``backend.cache_context(name)`` sets it, and so do
  diffusers pipelines set up by ``enable_cache`` through their ``transformer.cache_context(...)``.
* ``Generation``: one sampling run of one backend, begun by ``backend.begin_generation(timesteps)`` (``enable_cache``
  calls it from the pipeline scheduler's ``set_timesteps``): it fixes the step count and starts every
  context's clock at step 0.

Without either, the Runtime infers both from the timestep values (``runtime/clock.py``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from ..errors import InvalidValueError


@dataclass(frozen=True)
class CallContext:
    name: str
    step_index: int | None = None  # the pipeline's step index, when it passes one
    num_steps: int | None = None  # the pipeline's step count, when it passes one


@dataclass(frozen=True)
class Generation:
    number: int  # increases with every begin_generation, process-wide
    num_steps: int | None
    timesteps: tuple[float, ...] = ()  # the sampler's, when the caller gave them

    def step_of(self, timestep: float) -> int:
        """The step a context first seen mid-generation is at: its timestep's place in the sampler's list (as
        given, or divided by 1000 as flow-matching pipelines pass it); 0 when not found or not one place
        (AuraFlow's first timestep divided by 1000 is its last one as given)."""
        places = {i for scale in (1.0, 1000.0) for i, t in enumerate(self.timesteps)
                  if abs(t / scale - timestep) <= 1e-5 * max(1.0, abs(timestep))}
        return places.pop() if len(places) == 1 else 0


# The guidance context applies to whichever model runs inside it; a generation belongs to one backend
# (each backend has its own variable, ``generation_variable()``), so two backends never share one.
CALL_CONTEXT: ContextVar[CallContext | None] = ContextVar("c4d_call_context", default=None)
_numbers = itertools.count(1)


def generation_variable() -> ContextVar[Generation | None]:
    return ContextVar(f"c4d_generation_{next(_numbers)}", default=None)


def new_generation(num_steps: int | None, timesteps: tuple[float, ...] = ()) -> Generation:
    return Generation(next(_numbers), num_steps, timesteps)


def _optional_int(field: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError(field, value, "an integer >= 0 or None")
    return value


@contextlib.contextmanager
def call_context(name: str, step_index: int | None = None, num_steps: int | None = None) -> Iterator[None]:
    """Calls inside use the cache of context ``name``. Nesting the same name is a no-op; another name
    switches for the inner block and the outer one is restored after it."""
    if not isinstance(name, str) or not name:
        raise InvalidValueError("cache context name", name, "a non-empty string, e.g. 'cond' or 'uncond'")
    context = CallContext(name, _optional_int("step_index", step_index), _optional_int("num_steps", num_steps))
    token = CALL_CONTEXT.set(context)
    try:
        yield
    finally:
        CALL_CONTEXT.reset(token)
