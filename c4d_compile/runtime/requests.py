"""Requests: what a serving loop drives — each row of a batched call is its own request, at its own step.

A serving engine batches the current step of several requests into one forward call. Every request keeps
what a generation of its own would keep: a step count, its position per guidance context, and the cache state
of each (model, context), so a row of a batch is decided and forecast exactly as it would be alone::

    backend.begin_request("a", num_steps=28)
    with backend.rows(["a", ("b", "uncond"), ...]):     # row i of the next call: that request (and context)
        out = compiled(**batched_inputs)
    backend.end_request("a")                            # frees its state

A request's state holds its own rows only (batch size one per guidance context), whatever batch it was computed
in; the executor of a batched call is ``runtime/rows.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError, InvalidValueError
from ..policies.config import Policy
from .interpreter import StepInterpreter
from .state import ContextState

if TYPE_CHECKING:
    from .executor import Runtime

DEFAULT_CONTEXT = "cond"


@dataclass
class Request:
    rid: Hashable
    num_steps: int
    number: int  # a generation number of its own (stats, state generations)
    timesteps: tuple[float, ...] = ()  # the sampler's, when the loop said (a calibrated schedule resamples by them)
    steps: dict[str, int] = field(default_factory=dict)  # per guidance context: the calls it has made
    first_keys: dict[str, tuple] = field(default_factory=dict)  # per context: its first call's timestep values
    policy: Policy | None = None  # its own options (None: the backend's policy)
    interpreters: dict[int, StepInterpreter] = field(default_factory=dict)  # its policy's, per Runtime (graph)

    def interpreter(self, runtime: Runtime) -> StepInterpreter:
        """What decides this request's calls through ``runtime``: the graph's own, or one for its policy."""
        if self.policy is None:
            return runtime.interpreter
        found = self.interpreters.get(id(runtime))
        if found is None:
            slots = runtime.plan.num_slots
            if self.policy.forecaster.num_slots > slots:  # a graph compiled after the request began
                raise InvalidValueError("forecaster", self.policy.forecaster, f"a forecaster reading at most the "
                                        f"{slots} history slot(s) this graph was compiled with (request {self.rid!r})")
            found = self.interpreters[id(runtime)] = StepInterpreter(self.policy, runtime.plan, runtime.variants)
        return found
    states: dict[tuple, ContextState] = field(default_factory=dict)  # per (model, context)

    def step(self, context: str) -> int:
        """The step its next call in ``context`` is at (taken when the call goes ahead); past the count, an error."""
        step = self.steps.get(context, 0)
        if step >= self.num_steps:
            raise ConfigError(f"request {self.rid!r} has made its {self.num_steps} step calls in context {context!r}: "
                              "end it, or begin it with more steps")
        return step

    @property
    def state_bytes(self) -> int:
        return sum(t.untyped_storage().nbytes() for s in self.states.values() for t in s.tensors.values())


class Requests:
    def __init__(self) -> None:
        self.active: dict[Hashable, Request] = {}
        self._numbers = 0

    def begin(self, rid: Hashable, num_steps: int | None = None, timesteps: Sequence[float] | None = None,
              policy: Policy | None = None) -> Request:
        if timesteps is not None:
            timesteps = tuple(float(t) for t in timesteps)
            if num_steps is not None and num_steps != len(timesteps):
                raise InvalidValueError("num_steps", num_steps, f"{len(timesteps)}, the number of timesteps given "
                                                                "(or leave it out)")
            num_steps = len(timesteps)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise InvalidValueError("num_steps", num_steps, "an integer >= 1: the request's step calls per context "
                                                            "(or timesteps=, the sampler's)")
        if rid in self.active:
            raise ConfigError(f"request {rid!r} is already active: end it before beginning it again")
        self._numbers += 1
        request = Request(rid, num_steps, -self._numbers, timesteps or (), policy=policy)  # numbers apart
        self.active[rid] = request
        return request

    def get(self, rid: Hashable) -> Request:
        request = self.active.get(rid)
        if request is None:
            raise InvalidValueError("request", rid, f"an active request ({', '.join(map(repr, self.active)) or 'none'}"
                                                    "): begin it with backend.begin_request")
        return request

    def end(self, rid: Hashable) -> None:
        self.get(rid)
        del self.active[rid]

    @property
    def state_bytes(self) -> int:
        """Bytes of cache state every active request holds."""
        return sum(r.state_bytes for r in self.active.values())


Row = tuple[Request, str]  # a batch row: its request and guidance context
ROWS: ContextVar[tuple[Row, ...] | None] = ContextVar("c4d_rows", default=None)


@contextlib.contextmanager
def rows(requests: Requests, spec: Sequence) -> Iterator[None]:
    """Calls inside are batches whose row i belongs to ``spec[i]``: a request id, or (request id, context)."""
    resolved = []
    for item in spec:
        rid, context = item if isinstance(item, tuple) else (item, DEFAULT_CONTEXT)
        if not isinstance(context, str) or not context:
            raise InvalidValueError("row context", context, "a non-empty string, e.g. 'cond' or 'uncond'")
        resolved.append((requests.get(rid), context))
    if not resolved:
        raise InvalidValueError("rows", list(spec), "one request (or (request, context)) per row of the batch")
    token = ROWS.set(tuple(resolved))
    try:
        yield
    finally:
        ROWS.reset(token)
