"""What the backend did: per guidance context, the steps computed and forecast and which ones; cache
memory; the ideal speedup of what actually ran (counted FLOPs, not time). ``backend.stats()`` gives
the totals since the last ``reset(stats=True)``, and ``.last`` the newest generation on its own."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

NO_SIGNAL = object()  # a call of a plan without a probe: no entry in ``signals``


@dataclass
class ContextStats:
    steps: int = 0
    full_steps: int = 0
    cached_steps: int = 0
    by_kind: Counter = field(default_factory=Counter)  # calls per variant kind (partial, verify: kinds of cached)
    # per call, in order, for one generation (``stats().last``; the totals keep counts only)
    kinds: list[str] = field(default_factory=list)  # the variant kind each call ran
    computed: list[int] = field(default_factory=list)  # the steps computed in full: the schedule that ran
    # per call, the signal a probe measured (None: nothing to compare with yet); empty for fixed schedules
    signals: list[float | None] = field(default_factory=list)


@dataclass
class CacheStats:
    contexts: dict[str, ContextStats] = field(default_factory=dict)
    cache_bytes_by_kind: dict[str, int] = field(default_factory=dict)  # state held now, per kind of feature
    planned_bytes_per_context: int = 0
    schedule: str = ""  # the schedule that ran, as it describes itself
    coarse_blocks: tuple[str, ...] = ()  # blocks cached whole because their branches are not proven
    # module class -> instances called opaquely because graph breaks in them split the stack (compiler/split_stack.py)
    opaque_modules: dict[str, int] = field(default_factory=dict)
    uncached_calls: int = 0  # calls of graphs that are not cached (no stack, split stack, mixed timesteps...)
    # since the backend was made: graphs Dynamo handed it (a split model's fragments, recompiles for new shapes or
    # guards), and how many of them run cached
    graphs: int = 0
    cached_graphs: int = 0
    # how often each variant ran, and how often its graph's FULL variant would have (LazyFlops keys)
    runs: Counter = field(default_factory=Counter)
    runs_uncached: Counter = field(default_factory=Counter)
    last: CacheStats | None = field(default=None, repr=False)  # the newest generation alone (totals only)

    @property
    def flops_run(self) -> int:
        """FLOPs of the variants that ran."""
        return sum(flops.value * n for flops, n in self.runs.items())

    @property
    def flops_uncached(self) -> int:
        """FLOPs had every call run the full graph."""
        return sum(flops.value * n for flops, n in self.runs_uncached.items())

    @property
    def cache_bytes(self) -> int:
        """Cache state held now, all contexts and graphs."""
        return sum(self.cache_bytes_by_kind.values())

    @property
    def steps(self) -> int:
        return sum(c.steps for c in self.contexts.values())

    @property
    def full_steps(self) -> int:
        return sum(c.full_steps for c in self.contexts.values())

    @property
    def cached_steps(self) -> int:
        return sum(c.cached_steps for c in self.contexts.values())

    @property
    def ideal_speedup(self) -> float:
        run = self.flops_run
        return self.flops_uncached / run if run else 1.0

    def record(
        self, context: str, step: int, kind: str, full: bool, flops: Any, full_flops: Any, detail: bool = True,
        signal: float | None | object = NO_SIGNAL,
    ) -> None:
        """One call. ``detail`` keeps the per-call kinds and computed steps (one generation's worth)."""
        ctx = self.contexts.get(context)
        if ctx is None:
            ctx = self.contexts[context] = ContextStats()
        ctx.steps += 1
        ctx.full_steps += full
        ctx.cached_steps += not full
        ctx.by_kind[kind] += 1
        if detail:
            ctx.kinds.append(kind)
            if signal is not NO_SIGNAL:
                ctx.signals.append(signal)
            if full:
                ctx.computed.append(step)
        self.runs[flops] += 1
        self.runs_uncached[full_flops] += 1

    def as_dict(self) -> dict:
        return {
            "steps": self.steps,
            "full_steps": self.full_steps,
            "cached_steps": self.cached_steps,
            "contexts": {k: vars(v).copy() for k, v in self.contexts.items()},
            "cache_bytes": self.cache_bytes,
            "cache_bytes_by_kind": dict(self.cache_bytes_by_kind),
            "planned_bytes_per_context": self.planned_bytes_per_context,
            "schedule": self.schedule,
            "coarse_blocks": list(self.coarse_blocks),
            "opaque_modules": dict(self.opaque_modules),
            "ideal_speedup": round(self.ideal_speedup, 4),
            "uncached_calls": self.uncached_calls,
        }

    def __str__(self) -> str:
        head = (
            f"steps {self.steps} (full {self.full_steps}, cached {self.cached_steps}), "
            f"ideal speedup {self.ideal_speedup:.2f}x, cache {self.cache_bytes / 2**20:.2f} MiB"
        )
        rows = [f"  schedule: {self.schedule}"] if self.schedule else []
        if self.coarse_blocks:
            rows.append(f"  cached as whole blocks (branches not proven): {', '.join(self.coarse_blocks)}")
        if self.opaque_modules:
            rows.append("  called opaquely (graph breaks split the stack): "
                        + ", ".join(f"{name} x{n}" for name, n in self.opaque_modules.items()))
        rows += [f"  {name}: {c.steps} steps, {c.full_steps} full" + (f" {c.computed}" if c.computed else "")
                 + f", {c.cached_steps} cached" + _cached_kinds(c) for name, c in self.contexts.items()]
        rows += [f"  cache {kind}: {n / 2**20:.2f} MiB" for kind, n in self.cache_bytes_by_kind.items()]
        return "\n".join([head, *rows])


def _cached_kinds(c: ContextStats) -> str:
    """The kinds of cached call beyond plain forecasts (partial, verify), when any ran."""
    others = {kind: n for kind, n in c.by_kind.items() if kind not in ("full", "cached", "decide")}
    return f" ({', '.join(f'{n} {kind}' for kind, n in others.items())})" if others else ""


class StatsRecorder:
    """Totals plus the newest generation on its own; the Runtime records every call here.

    A call is appended as it is, and the stats are summed when they are read (``flush``: ``backend.stats()``), or
    every few thousand calls: the sampling loop pays for an append only. A call whose decision the device took
    (``decision="device"``) keeps its decision and signal on the device until then, so the loop never waits for
    them; they are read in one go.
    """

    def __init__(self) -> None:
        self.total = CacheStats()
        self.last = CacheStats()
        self._generation: int | None = None
        self._pending: list[tuple] = []  # calls not summed yet, in order: (how, *what the call says)

    def record(self, generation: int, context: str, step: int, kind: str, full: bool, flops, full_flops,
               signal: float | None | object = NO_SIGNAL) -> None:
        """One call; ``signal`` only from a plan that probes (``None`` there: nothing to compare with yet)."""
        pending = self._pending  # (what _append does, without its frame: every cached call comes here)
        pending.append((_HOST, generation, context, step, kind, full, flops, full_flops, signal))
        if len(pending) >= _MAX_PENDING:
            self.flush()

    def record_pending(self, generation: int, context: str, step: int, full, signal, full_flops,
                       cached_flops) -> None:
        """One call whose decision (``full``) and ``signal`` are 0-d tensors on the device."""
        self._append((_DEVICE, generation, context, step, full, signal, full_flops, cached_flops))

    def uncached(self) -> None:
        self._append(_UNCACHED_CALL)

    def _append(self, call: tuple) -> None:
        self._pending.append(call)
        if len(self._pending) >= _MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        on_device = [p for p in pending if p[0] is _DEVICE]
        if on_device:
            fulls = iter(torch.stack([p[4].reshape(()) for p in on_device]).tolist())
            signals = iter(torch.stack([p[5].reshape(()).float() for p in on_device]).tolist())
        for call in pending:
            how = call[0]
            if how is _HOST:
                self._record(*call[1:])
            elif how is _DEVICE:
                _, generation, context, step, _, _, full_flops, cached_flops = call
                full = bool(next(fulls))
                self._record(generation, context, step, "full" if full else "cached", full,
                             full_flops if full else cached_flops, full_flops, next(signals))
            else:
                self.total.uncached_calls += 1
                self.last.uncached_calls += 1

    def _record(self, generation: int, context: str, step: int, kind: str, full: bool, flops, full_flops,
                signal: float | None | object) -> None:
        if generation != self._generation:
            self._generation = generation
            self.last = CacheStats(planned_bytes_per_context=self.total.planned_bytes_per_context,
                                   schedule=self.total.schedule, coarse_blocks=self.total.coarse_blocks)
        self.total.record(context, step, kind, full, flops, full_flops, detail=False)
        self.last.record(context, step, kind, full, flops, full_flops, signal=signal)


_HOST, _DEVICE, _UNCACHED = "host", "device", "uncached"  # how a pending call was recorded
_UNCACHED_CALL = (_UNCACHED,)
_MAX_PENDING = 4096  # calls kept unsummed: bounded in a long loop that never reads its stats
