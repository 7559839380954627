"""``c4d_backend(policy, **overrides)``: the torch.compile backend.

For every graph Dynamo hands over: analyze -> plan -> rewrite -> lower -> Runtime (design.md §3).
A graph with nothing to cache is lowered as it is, with one warning that says why.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.fx as fx

from .backends import get_lowering
from .errors import InvalidValueError, NotCacheableError
from .flops import LazyFlops
from .passes.analyze import GraphAnalysis, analyze
from .passes.graph_utils import example_value, tensor_meta, user_inputs
from .passes.rewrite_variants import RewriteResult, Variant, VariantKind, rewrite_variants
from .plan import CachePlan, make_plan
from .policies import Policy, get_policy
from .runtime import LoweredVariant, Runtime
from .shapes import state_shape_resolver
from .stats import CacheStats
from .steps import StepTracker

log = logging.getLogger("c4d_compile")


class C4DWarning(UserWarning):
    """The model runs, but (part of) it is not cached; the message says why."""


class C4DBackend:
    """A torch.compile backend that caches per ``policy``. Pass it as ``torch.compile(m, backend=...)``."""

    def __init__(self, policy: str | Policy, *, lowering: str = "inductor", strict: bool = False, **overrides: Any):
        self.policy = get_policy(policy, **overrides)
        self.lowering = lowering
        self._lower = get_lowering(lowering)
        if not isinstance(strict, bool):
            raise InvalidValueError("strict", strict, "True or False")
        self.strict = strict
        self.tracker = StepTracker()
        self._stats = CacheStats()
        self.analysis: GraphAnalysis | None = None
        self.plan: CachePlan | None = None
        self.rewrite: RewriteResult | None = None
        self.runtimes: list[Runtime] = []
        self.compile_seconds = 0.0
        self._lists_seen: dict[str, list[Runtime]] = {}
        self._warned: set[str] = set()
        self._graphs = 0

    # -- torch.compile entry point ---------------------------------------------------------------
    def __call__(self, gm: fx.GraphModule, example_inputs: Sequence) -> Any:
        started = time.perf_counter()
        try:
            return self._compile(gm, example_inputs)
        finally:
            self.compile_seconds += time.perf_counter() - started

    def _compile(self, gm: fx.GraphModule, example_inputs: Sequence):
        self._graphs += 1
        analysis = self.analysis = analyze(gm)
        if log.isEnabledFor(logging.INFO):
            log.info("c4d analysis:\n%s", analysis.report())
        split = self._note_split(analysis)
        if split or not analysis.cacheable:
            reasons = "; ".join(analysis.problems) or "no stack output reaches the graph's outputs"
            if self.strict:
                raise NotCacheableError(f"nothing to cache in this graph: {reasons}")
            if split or self._graphs > 1:
                self._warn(
                    "split",
                    f"c4d: {self._graphs} graphs compiled for this model and one has nothing to cache "
                    f"({reasons}): graph breaks split the model and its block stack across several graphs, "
                    "which run uncached; compile with fullgraph=True to see where the graph breaks",
                )
            else:
                self._warn(reasons, f"c4d: running a graph without cache: {reasons}")
            return self._uncached(gm, example_inputs)

        plan = self.plan = make_plan(analysis, self.policy)
        self._stats.planned_bytes_per_context = plan.state_bytes
        rewrite = self.rewrite = rewrite_variants(gm, plan)
        lowered = {kind: self._lower_variant(v, plan, gm, example_inputs) for kind, v in rewrite.variants.items()}
        inputs = user_inputs(gm)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        latent = next(n for n in inputs if (m := tensor_meta(n)) is not None and m.is_floating_point() and m.dim() >= 2)
        runtime = Runtime(
            plan,
            self.policy.schedule,
            lowered[VariantKind.FULL],
            lowered[VariantKind.CACHED],
            [t.position for t in analysis.timesteps],
            self.tracker,
            self._stats,
            state_shape_resolver(gm, [f.name for f in plan.features]),
            placeholders.index(latent),
            [i for i, n in enumerate(placeholders) if isinstance(example_value(n), torch.SymInt)],
        )
        self.runtimes.append(runtime)
        for name in analysis.stack.lists:
            self._lists_seen.setdefault(name, []).append(runtime)
        if log.isEnabledFor(logging.INFO):
            log.info("c4d plan:\n%s", plan.describe())
        return runtime

    def _lower_variant(self, variant: Variant, plan: CachePlan, gm: fx.GraphModule, example_inputs: Sequence):
        by_name = {n.name: n for n in gm.graph.nodes}
        state = []
        for f in plan.features:
            meta = tensor_meta(by_name[f.name])
            symbolic = any(not isinstance(d, int) for d in meta.shape)
            example = meta if symbolic else torch.zeros(f.shape, dtype=f.dtype, device=meta.device)
            state += [example] * plan.forecaster.num_slots
        scalars = [torch.tensor(1.0) for _ in variant.scalar_names]
        device = next(x.device for x in example_inputs if isinstance(x, torch.Tensor))
        scalars = [s.to(device) for s in scalars]
        examples = [*example_inputs, *state, *scalars]
        fn = self._lower(variant.gm, examples)
        return LoweredVariant(fn, variant.scalar_names, variant.num_outputs, LazyFlops(variant.gm, examples))

    def _uncached(self, gm: fx.GraphModule, example_inputs: Sequence):
        fn = self._lower(gm, list(example_inputs))
        stats = self._stats

        def run(*args):
            stats.uncached_calls += 1
            return fn(*args)

        return run

    def _note_split(self, analysis: GraphAnalysis) -> bool:
        """A fragment of a split stack also disables the cache of graphs holding other fragments.

        A graph that holds a whole stack again (a recompile for a new shape) is not a split.
        """
        if analysis.split:
            for name in analysis.stack.lists:
                for runtime in self._lists_seen.get(name, []):
                    runtime.enabled = False
        return analysis.split

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, C4DWarning, stacklevel=3)

    # -- user API -----------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        return self._stats

    def reset(self, *, stats: bool = False) -> None:
        """Forget every cache: the next call starts a new generation. ``stats=True`` also zeroes the stats.

        ``torch._dynamo.reset()`` calls this too (it resets every backend it has cached), so stats
        survive it unless asked.
        """
        self.tracker.reset()
        for runtime in self.runtimes:
            runtime.states.clear()
        if stats:
            planned = self._stats.planned_bytes_per_context
            self._stats = CacheStats(planned_bytes_per_context=planned)
            for runtime in self.runtimes:
                runtime.stats = self._stats

    @contextlib.contextmanager
    def cache_context(self, name: str) -> Iterator[None]:
        """Calls inside use the cache of context ``name`` (e.g. "cond" / "uncond")."""
        previous, self.tracker.explicit_context = self.tracker.explicit_context, name
        try:
            yield
        finally:
            self.tracker.explicit_context = previous

    def __repr__(self) -> str:
        return f"C4DBackend(policy={self.policy.name!r}, lowering={self.lowering!r}, options={self.policy.options()})"


def c4d_backend(
    policy: str | Policy, *, lowering: str = "inductor", strict: bool = False, **overrides: Any
) -> C4DBackend:
    """The one verb: a torch.compile backend that caches with ``policy`` (a preset name or a Policy)."""
    return C4DBackend(policy, lowering=lowering, strict=strict, **overrides)
