"""A step-level server: requests join and leave between steps, and each step of the loop is one batched call per
size of the active requests, every row its own request (``backend.rows``).

    server = StepServer(compiled, backend, template=example_inputs)    # a batch-one call of the model
    future = server.submit(inputs, timesteps)     # a concurrent.futures.Future of the final latent
    server.start()                                # or server.run_until_idle() in the caller's thread
    server.cancel(future.rid)

A request is checked when it is submitted against the template (same inputs, dtypes, ranks, one row): a malformed
one is refused there with a typed error and never reaches a batch. Requests of other sizes (another resolution, a
longer prompt) are batched apart. A batch that fails anyway fails its own rows' requests only, with the error; the
others go on. A request ends — its cache state freed — when it completes, is cancelled or fails.
Without a backend (``backend=None``) the same loop serves the plain compiled model: the baseline a cached server
is measured against.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import torch

from ..errors import C4DError, InvalidValueError

Update = Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]


class RequestFailedError(C4DError):
    """A batch holding the request's rows raised; the cause is chained. The other requests were not affected."""


def euler_flow(latent: torch.Tensor, output: torch.Tensor, t: float, t_next: float, scale: float = 1.0):
    """A flow-matching Euler step from timestep ``t`` to ``t_next`` (``scale``: the timestep of sigma 1)."""
    return latent + (t_next - t) / scale * output


class RequestFuture(Future):
    """The future of one request: its final latent, or the error that ended it; ``rid`` names it for ``cancel``."""

    def __init__(self, rid: Hashable):
        super().__init__()
        self.rid = rid


@dataclass
class Served:
    """One request on the server."""

    rid: Hashable
    inputs: dict
    timesteps: tuple[float, ...]
    size: tuple  # what a batch must share with it
    future: RequestFuture
    done: int = 0
    cancelled: bool = False


class StepServer:
    """Serves batch-one requests of ``compiled`` as batches of their current steps, at most ``max_batch`` rows.

    ``template``: one valid batch-one call of the model (its keyword inputs). ``batched``: the inputs that carry the
    batch (default: the template's tensors whose first size is 1). ``update``: the sampler's step, from the latent,
    the model output and this and the next timestep (the next of the last step is 0)."""

    def __init__(self, compiled, backend, template: Mapping, *, latent_key: str, timestep_key: str,
                 max_batch: int = 16, batched: Iterable[str] | None = None, update: Update = euler_flow):
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise InvalidValueError("max_batch", max_batch, "an integer >= 1: the rows of one batched call")
        for key in (latent_key, timestep_key):
            if key not in template:
                raise InvalidValueError("template", sorted(template), f"inputs holding {key!r}")
        self.compiled, self.backend, self.max_batch, self.update = compiled, backend, max_batch, update
        self.latent_key, self.timestep_key = latent_key, timestep_key
        self.template = dict(template)
        self.batched = frozenset(batched if batched is not None else (
            k for k, v in template.items() if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == 1))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: list[Served] = []
        self._active: list[Served] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.calls = 0  # batched calls made
        self.rows = 0  # rows they computed (rows / calls: how full the batches were)

    # -- the caller's side -----------------------------------------------------------------------
    def submit(self, inputs: Mapping, timesteps: Sequence[float], rid: Hashable | None = None) -> RequestFuture:
        """Queue a request; its future gets the final latent (batch one), or the error that ended it."""
        rid = next(self._ids) if rid is None else rid
        inputs = dict(inputs)
        served = Served(rid, inputs, self._check_timesteps(timesteps), self._check_inputs(inputs), RequestFuture(rid))
        served.inputs[self.latent_key] = served.inputs[self.latent_key].clone()
        with self._lock:
            if any(s.rid == served.rid for s in (*self._waiting, *self._active)):
                raise InvalidValueError("rid", served.rid, "an id no waiting or active request has")
            self._waiting.append(served)
            self._wake.notify()
        return served.future

    def cancel(self, rid: Hashable) -> bool:
        """Cancel a waiting or active request between steps (its state is freed); False when it is not here."""
        with self._lock:
            for served in (*self._waiting, *self._active):
                if served.rid == rid:
                    served.cancelled = True
                    self._wake.notify()
                    return True
        return False

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._active)

    @property
    def state_bytes(self) -> int:
        """Cache state its requests hold now (0 for the plain model)."""
        return self.backend.session.requests.state_bytes if self.backend is not None else 0

    @property
    def alive(self) -> bool:
        """Whether the background loop runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Serve in a background thread until ``stop``."""
        self._stopping = False
        self._thread = threading.Thread(target=self._serve_forever, name="c4d-step-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_until_idle(self) -> None:
        """Serve in the caller's thread until no request waits or runs."""
        while self.step():
            pass

    # -- the loop --------------------------------------------------------------------------------
    def _serve_forever(self) -> None:
        while True:
            with self._lock:
                while not (self._stopping or self._waiting or self._active):
                    self._wake.wait()
                if self._stopping:
                    return
            self.step()

    def step(self) -> bool:
        """One iteration: admit, drop the cancelled, run one batch per size of the active requests. False when
        there was nothing to do."""
        with self._lock:
            for served in [s for s in self._waiting if s.cancelled]:
                self._waiting.remove(served)
                served.future.cancel()
            while self._waiting and len(self._active) < self.max_batch:
                served = self._waiting.pop(0)
                self._begin(served)
                self._active.append(served)
            for served in [s for s in self._active if s.cancelled]:
                self._finish(served, cancelled=True)
            active = list(self._active)
        if not active:
            return False
        by_size: dict[tuple, list[Served]] = {}
        for served in active:
            by_size.setdefault(served.size, []).append(served)
        for group in by_size.values():
            self._run(group)
        return True

    def _run(self, group: list[Served]) -> None:
        parts = [{**s.inputs, self.timestep_key: self._timestep(s, s.done)} for s in group]
        batch = {k: torch.cat([p[k] for p in parts]) if k in self.batched else parts[0][k] for k in parts[0]}
        try:
            with torch.no_grad():
                if self.backend is not None:
                    with self.backend.rows([s.rid for s in group]):
                        out = self.compiled(**batch)
                else:
                    out = self.compiled(**batch)
        except Exception as error:  # this batch's requests fail; the loop and the other sizes go on
            with self._lock:
                for served in group:
                    self._finish(served, error=error)
            return
        self.calls += 1
        self.rows += len(group)
        out = out[0] if isinstance(out, (tuple, list)) else out
        with self._lock:
            for i, served in enumerate(group):
                t = served.timesteps[served.done]
                following = served.timesteps[served.done + 1] if served.done + 1 < len(served.timesteps) else 0.0
                latent = self.update(served.inputs[self.latent_key], out[i: i + 1], t, following)
                served.inputs[self.latent_key] = latent
                served.done += 1
                if served.done == len(served.timesteps):
                    self._finish(served, result=latent)

    def _begin(self, served: Served) -> None:
        if self.backend is not None:
            self.backend.begin_request(served.rid, timesteps=served.timesteps)

    def _finish(self, served: Served, result=None, error: BaseException | None = None, cancelled: bool = False):
        """End a request (under the lock): its state freed, its future settled."""
        self._active.remove(served)
        if self.backend is not None:
            self.backend.end_request(served.rid)
        if cancelled:
            served.future.cancel()
        elif error is not None:
            failure = RequestFailedError(f"request {served.rid!r} failed in a batch: {type(error).__name__}: {error}")
            failure.__cause__ = error
            served.future.set_exception(failure)
        else:
            served.future.set_result(result)

    def _timestep(self, served: Served, step: int) -> torch.Tensor:
        like = self.template[self.timestep_key]
        return torch.full((1,), served.timesteps[step], dtype=like.dtype, device=like.device)

    # -- what a request must be ------------------------------------------------------------------
    @staticmethod
    def _check_timesteps(timesteps: Sequence[float]) -> tuple[float, ...]:
        try:
            values = tuple(float(t) for t in timesteps)
        except (TypeError, ValueError):
            values = ()
        if not values or not all(math.isfinite(t) for t in values):
            raise InvalidValueError("timesteps", timesteps, "a non-empty sequence of finite numbers, one per step")
        return values

    def _check_inputs(self, inputs: dict) -> tuple:
        """A request's inputs against the template; returns the size it batches by."""
        expected = set(self.template) - {self.timestep_key}
        if set(inputs) - {self.timestep_key} != expected:
            raise InvalidValueError("inputs", sorted(inputs), f"the inputs {sorted(expected)} (the timestep is the "
                                                              "server's)")
        inputs.pop(self.timestep_key, None)
        size = []
        for key in sorted(expected):
            value, like = inputs[key], self.template[key]
            if not isinstance(like, torch.Tensor):
                if value != like:
                    raise InvalidValueError(key, value, f"{like!r}, as the template")
                continue
            if not isinstance(value, torch.Tensor) or value.dtype != like.dtype or value.dim() != like.dim():
                raise InvalidValueError(key, _describe(value), f"a {like.dtype} tensor of {like.dim()} dims")
            if key in self.batched:
                if value.shape[0] != 1:
                    raise InvalidValueError(key, _describe(value), "one row (batch one): the server batches")
                size.append((key, tuple(value.shape)))
            else:  # shared by a batch's rows: requests batch together only where it is the same
                size.append((key, tuple(value.shape), value.detach().cpu().numpy().tobytes()))
        return tuple(size)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
