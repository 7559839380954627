"""What the backend did: steps computed and forecast per guidance context, cache memory, and the
ideal speedup of the schedule actually run (counted FLOPs, not time)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ContextStats:
    steps: int = 0
    full_steps: int = 0
    cached_steps: int = 0


@dataclass
class CacheStats:
    contexts: dict[str, ContextStats] = field(default_factory=dict)
    cache_bytes: int = 0  # state held now, all contexts and graphs
    planned_bytes_per_context: int = 0
    flops_run: int = 0  # FLOPs of the variants that ran
    flops_uncached: int = 0  # FLOPs had every call run the full graph
    uncached_calls: int = 0  # calls of graphs that are not cached (no stack, split stack, ...)

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
        return self.flops_uncached / self.flops_run if self.flops_run else 1.0

    def record(self, context: str, full: bool, flops: int, full_flops: int) -> None:
        ctx = self.contexts.setdefault(context, ContextStats())
        ctx.steps += 1
        ctx.full_steps += full
        ctx.cached_steps += not full
        self.flops_run += flops
        self.flops_uncached += full_flops

    def as_dict(self) -> dict:
        return {
            "steps": self.steps,
            "full_steps": self.full_steps,
            "cached_steps": self.cached_steps,
            "contexts": {k: vars(v).copy() for k, v in self.contexts.items()},
            "cache_bytes": self.cache_bytes,
            "planned_bytes_per_context": self.planned_bytes_per_context,
            "ideal_speedup": round(self.ideal_speedup, 4),
            "uncached_calls": self.uncached_calls,
        }

    def __str__(self) -> str:
        head = (
            f"steps {self.steps} (full {self.full_steps}, cached {self.cached_steps}), "
            f"ideal speedup {self.ideal_speedup:.2f}x, cache {self.cache_bytes / 2**20:.2f} MiB"
        )
        rows = [f"  {name}: {c.steps} steps, {c.full_steps} full, {c.cached_steps} cached"
                for name, c in self.contexts.items()]
        return "\n".join([head, *rows])
