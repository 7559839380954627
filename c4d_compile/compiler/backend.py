"""``c4d_backend(policy, **overrides)``: the torch.compile backend.

For every graph Dynamo hands over: analyze -> plan -> rewrite -> lower -> Runtime. A graph with
nothing to cache runs compiled without a cache, with one warning that says why; a failure in any
stage does the same (the warning names the stage), unless ``strict=True`` asks for the error.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch._dynamo.exc import RestartAnalysis

from ..errors import (
    C4DCompileError,
    C4DError,
    C4DWarning,
    ConfigError,
    InvalidValueError,
    NotCacheableError,
    UnknownOptionError,
)
from ..lowering import get_lowering
from ..policies import Policy, get_policy
from ..runtime.contexts import call_context
from ..runtime.executor import LoweredVariant, Runtime
from ..runtime.requests import rows as request_rows
from ..runtime.session import Session
from ..runtime.stats import CacheStats
from .call_signature import call_signature, shared_outputs
from .flops import LazyFlops
from .passes.analyze import GraphAnalysis, analyze
from .passes.check_collectives import check_collectives, is_parallel, sum_over_ranks
from .passes.rewrite import RewriteResult, build_variants
from .passes.variants import Variant
from .plan import CachePlan, make_plan
from .settings import Settings
from .split_stack import SplitRepair
from .variant_examples import named_examples, static_fakes

log = logging.getLogger("c4d_compile")


class C4DBackend:
    """A torch.compile backend that caches per ``policy``. Pass it as ``torch.compile(m, backend=...)``."""

    def __init__(self, policy: str | Policy, *, settings: Settings | None = None, **options: Any):
        setting_names = Settings.names()
        given = {k: v for k, v in options.items() if k in setting_names}
        if settings is not None and given:
            raise InvalidValueError("settings", sorted(given), "either settings=Settings(...) or keywords, not both")
        self.settings = Settings(**given) if settings is None else settings
        base = get_policy(policy)
        overrides = {k: v for k, v in options.items() if k not in setting_names}
        for key in overrides:
            if key not in base.valid_options():
                raise UnknownOptionError(key, [*base.valid_options(), *setting_names], where="c4d_backend")
        self.policy = base.with_overrides(**overrides)
        self.policy.schedule.check_ready()  # a fitted policy without its calibration file says how to get one
        self._lower = get_lowering(self.settings.lowering)
        self._warned: set[str] = set()
        self.session = Session(self._warn)  # what lives across calls of every graph compiled here
        self.session.recorder.total.schedule = self.session.recorder.last.schedule = self._schedule_described()
        self.analysis: GraphAnalysis | None = None
        self.plan: CachePlan | None = None
        self.rewrite: RewriteResult | None = None
        self.runtimes: list[Runtime] = []
        self.compile_seconds = 0.0
        self._lists_seen: dict[str, list[Runtime]] = {}
        self._graphs = 0
        # graph index -> the calls after which a forward has run without a cached call (the first graph's second
        # call starts the second forward); see _warned_or_repaired
        self._watched = {1: 1}
        self.splits = SplitRepair()  # modules called opaquely so that a split stack is one graph again
        if self.settings.capture_data_dependent:
            self.settings.apply_capture()

    @property
    def lowering(self) -> str:
        return self.settings.lowering

    @property
    def strict(self) -> bool:
        return self.settings.strict

    # -- torch.compile entry point ---------------------------------------------------------------
    def __call__(self, gm: fx.GraphModule, example_inputs: Sequence) -> Any:
        started = time.perf_counter()
        try:
            return self._compile(gm, example_inputs)
        finally:
            self.compile_seconds += time.perf_counter() - started

    def _stage(self, stage: str, fn, *args):
        """Run one stage; a failure is a typed error under strict, else None (the caller runs uncached)."""
        try:
            return fn(*args), None
        except ConfigError:  # the user's configuration does not fit this model: always said, never skipped
            raise
        except RestartAnalysis:  # Dynamo's own signal to trace again (inductor met a scalar to make a tensor)
            raise
        except C4DError as err:
            if self.strict:
                raise
            return None, f"{stage}: {err}"
        except Exception as err:  # any failure of ours must not cost the user a working model
            if self.strict:
                raise C4DCompileError(f"c4d {stage} failed: {type(err).__name__}: {err}") from err
            return None, f"{stage} failed ({type(err).__name__}: {err})"

    def _compile(self, gm: fx.GraphModule, example_inputs: Sequence):
        self._graphs += 1
        analysis, failed = self._stage("analysis", analyze, gm)
        if failed:
            return self._give_up(gm, example_inputs, failed)
        self.analysis = analysis
        if log.isEnabledFor(logging.INFO):
            log.info("c4d analysis:\n%s", analysis.report())
        self.splits.note_break(gm)
        split = self._note_split(analysis)
        if analysis.timestep_only and not split and not self.strict:  # a prologue split off by a break
            return self._uncached(gm, example_inputs, analysis, carries=tuple(t.position for t in analysis.timesteps))
        if split or not (analysis.cacheable or analysis.timestep_elsewhere):
            return self._not_cacheable(gm, example_inputs, analysis, split)
        plan, failed = self._stage("plan", make_plan, gm, analysis, self.policy)
        if failed:
            return self._give_up(gm, example_inputs, failed)
        self.plan = plan
        for note in plan.notes:
            self._warn(note, f"c4d: {note}")
        self.session.recorder.total.planned_bytes_per_context = plan.state_bytes
        self._warn_coarsened(analysis)
        rewrite, failed = self._stage("rewrite", build_variants, gm, plan, self.settings.narrow_projections)
        if failed:
            return self._give_up(gm, example_inputs, failed)
        # every rank must skip the same collectives at the same steps: the same variants and the same policy
        sequences, failed = self._stage("collectives", check_collectives, rewrite.variants, repr(self.policy))
        if failed:
            return self._give_up(gm, example_inputs, failed)
        self.rewrite = rewrite
        lowered, failed = self._stage("lowering", self._lower_all, rewrite, plan, gm, example_inputs)
        if failed:
            return self._give_up(gm, example_inputs, failed)
        # under context parallelism every rank decides from the signal of all the tokens
        reduce = sum_over_ranks if is_parallel(sequences) else None
        signature = call_signature(gm, analysis, [f.name for f in plan.features])
        runtime = Runtime(self.session, self.policy, plan, lowered, signature, reduce)
        self.runtimes.append(runtime)
        for name in analysis.stack.lists:
            self._lists_seen.setdefault(name, []).append(runtime)
        if log.isEnabledFor(logging.INFO):
            log.info("c4d plan:\n%s", plan.describe())
        return runtime

    def _lower_all(self, rewrite: RewriteResult, plan: CachePlan, gm: fx.GraphModule, example_inputs: Sequence):
        return {kind: self._lower_variant(v, plan, gm, example_inputs) for kind, v in rewrite.variants.items()}

    def _lower_variant(self, variant: Variant, plan: CachePlan, gm: fx.GraphModule, example_inputs: Sequence):
        named = named_examples(variant, plan, gm, example_inputs)
        full_examples = [*example_inputs, *named]
        fn = self._lower(variant.gm, [*example_inputs, *static_fakes(named)], self.settings)
        return LoweredVariant(variant.kind, fn, variant.num_outputs, variant.inputs, variant.outputs,
                              LazyFlops(variant.gm, full_examples), shared_outputs(variant, gm))

    def _not_cacheable(self, gm, example_inputs, analysis: GraphAnalysis, split: bool):
        reasons = "; ".join(analysis.problems) or "no stack output reaches the graph's outputs"
        if self.strict:
            raise NotCacheableError(f"nothing to cache in this graph: {reasons}")
        return self._uncached(gm, example_inputs, analysis)

    def _give_up(self, gm, example_inputs, why: str):
        self._warn(why, f"c4d: {why}; this graph runs compiled without a cache (strict=True raises instead)")
        return self._uncached(gm, example_inputs)

    def _uncached(self, gm: fx.GraphModule, example_inputs: Sequence, analysis: GraphAnalysis | None = None,
                  carries: tuple[int, ...] = ()):
        """The graph compiled as it is. A graph that has nothing to cache says why at its second call, when
        every graph of the forward has been compiled, unless a cached graph served that forward (then it is
        one fragment of a cached model: a prologue lending its timestep, an epilogue)."""
        try:
            fn = self._lower(gm, list(example_inputs), self.settings)
        except Exception as err:  # the lowering cannot take this graph either: run it as Python
            self._warn("lowering " + type(err).__name__,
                       f"c4d: {self.lowering} could not compile a graph ({type(err).__name__}: {err}); it runs eagerly")
            fn = gm.forward
        session, calls, index = self.session, [0], self._graphs

        def run(*args):
            session.uncached()
            calls[0] += 1
            if carries:  # one host read, as a cached graph would do
                session.carrier.set(tuple(args[i].reshape(-1).tolist()[0] for i in carries))
            # the first graph's second call starts the second forward: by then every graph is compiled
            if analysis is not None and calls[0] > self._watched.get(index, calls[0]) and not session.cached_calls:
                self._warned_or_repaired(analysis, index, calls[0])
            return fn(*args)

        return run

    def _warned_or_repaired(self, analysis: GraphAnalysis, index: int, calls: int) -> None:
        """Nothing was cached in a whole forward: repair a split stack, or say why.

        After a repair the next forward is traced again; the first graph it compiles is watched, and so is this
        one: called as often again (a first graph can be a block's, called once per block), it was not
        replaced, and the split is reported.
        """
        if self._graphs > 1 and self.settings.opaque_calls and self.splits.repair():
            self._watched.update({index: 2 * calls, self._graphs + 1: 1})
            return
        self._watched.pop(index, None)
        self._warn_not_cached(analysis)

    def _warn_not_cached(self, analysis: GraphAnalysis) -> None:
        reasons = "; ".join(analysis.problems) or "no stack output reaches the graph's outputs"
        if self._graphs == 1:
            self._warn(reasons, f"c4d: running a graph without cache: {reasons}")
            return
        first = f"; the first: {self.splits.first_break}" if self.splits.first_break else ""
        self._warn("split", (
            f"c4d: graph breaks ({self.splits.breaks} seen{first}) split this model into {self._graphs} graphs and "
            f"none holds the whole block stack ({reasons}): it runs uncached. TORCH_LOGS=graph_breaks shows every "
            "break; data-dependent ops (nonzero, bincount, .item(), .tolist()) stay in the graph with "
            "c4d_backend(..., capture_data_dependent=True) or with fullgraph=True"))

    def _note_split(self, analysis: GraphAnalysis) -> bool:
        """A fragment of a split stack also disables the cache of graphs holding other fragments.

        A graph that holds a whole stack again (a recompile for a new shape) is not a split.
        """
        if analysis.split:
            for name in analysis.stack.lists:
                for runtime in self._lists_seen.get(name, []):
                    runtime.enabled = False
        return analysis.split

    def _warn_coarsened(self, analysis: GraphAnalysis) -> None:
        coarse = [bb for bb in analysis.branches if not bb.proven]
        if coarse and self.policy.region.value == "branch":
            recorder = self.session.recorder
            blocks = tuple(dict.fromkeys((*recorder.total.coarse_blocks, *(bb.block for bb in coarse))))
            recorder.total.coarse_blocks = recorder.last.coarse_blocks = blocks
            names = ", ".join(f"{bb.block} ({bb.reason})" for bb in coarse)
            self._warn("coarse", f"c4d: {len(coarse)} block(s) are not provably 'stream + residual branches' and are "
                                 f"cached as whole-block residuals instead: {names}")

    def _schedule_described(self) -> str:
        described = self.policy.schedule.describe()
        if self.policy.tokens is not None:
            described += f"; partial calls: {self.policy.tokens.describe()}"
        return described

    def name_model(self, module: torch.nn.Module, name: str) -> None:
        """Stats name the contexts of ``module`` ``context[name]``; the unnamed models are numbered apart."""
        self.session.name_model(module, name)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, C4DWarning, stacklevel=3)

    # -- user API -----------------------------------------------------------------------------
    def stats(self) -> CacheStats:
        """Totals since the last ``reset(stats=True)``; ``stats().last`` is the newest generation alone."""
        recorder = self.session.recorder
        recorder.flush()  # decisions taken on the device are read here, not per call
        kinds = {e.name: e.kind for r in self.runtimes for e in r.plan.state}
        held = self.session.states.held_bytes(kinds)
        total = recorder.total
        total.cache_bytes_by_kind = recorder.last.cache_bytes_by_kind = held
        total.opaque_modules = recorder.last.opaque_modules = dict(self.splits.opaque)
        total.graphs, total.cached_graphs = self._graphs, len(self.runtimes)
        total.last = recorder.last
        return total

    def reset(self, *, stats: bool = False) -> None:
        """Forget every cache and clock: the next call starts a new generation at step 0 (also in the
        middle of one). ``stats=True`` also zeroes the stats. ``torch._dynamo.reset()`` calls this too."""
        self.session.reset()
        if stats:
            self.session.reset_stats()

    def retarget(self, **overrides: Any) -> Policy:
        """Apply policy overrides that leave the compiled graphs as they are to every graph compiled so far and
        to later ones, without recompiling, and forget every cache: another fixed schedule (``full_steps=``,
        ``budget=``, ...), another forecaster reading at most the history slots compiled (``order=``, or a whole
        ``forecaster=`` object), ``variable``, ``num_steps``. Anything that changes the graphs (the region,
        token subsets, a signal-driven schedule) is a ``ConfigError`` naming it. Calibration tries candidates
        this way; the policy in effect is returned."""
        forecaster = overrides.pop("forecaster", None)
        policy = self.policy.with_overrides(**overrides)
        if forecaster is not None:
            policy = dataclasses.replace(policy, forecaster=forecaster)
        _check_same_graphs(self.policy, policy, [r.plan.num_slots for r in self.runtimes])
        self.policy = policy
        for runtime in self.runtimes:
            runtime.use(policy)
        recorder = self.session.recorder
        recorder.total.schedule = recorder.last.schedule = self._schedule_described()
        self.reset()
        return policy

    def cache_context(self, name: str, step_index: int | None = None, num_steps: int | None = None):
        """Calls inside use the cache of context ``name`` (e.g. "cond" / "uncond"); see ``runtime/contexts.py``."""
        return call_context(name, step_index, num_steps)

    def begin_generation(self, timesteps: Sequence | torch.Tensor | None = None, *, num_steps: int | None = None):
        """The next calls are a new generation of ``len(timesteps)`` step calls per context (or ``num_steps``).

        Per thread: the caches of this thread's previous generation are freed.
        """
        if self.session.begin_generation(timesteps, num_steps=num_steps) and self.runtimes:
            # generations go by without a call reaching the backend: Dynamo runs the model uncompiled
            limit = torch._dynamo.config.recompile_limit
            self._warn("no calls", f"c4d: no call of the model reached the backend in the last generations, so it "
                                   f"runs uncompiled and uncached: Dynamo probably hit its recompile limit ({limit} "
                                   "graphs per function; TORCH_LOGS=recompiles says why each was compiled). Raise "
                                   "torch._dynamo.config.recompile_limit, or keep every LoRA adapter active and vary "
                                   "their weights (a weight is a graph input after it first changes)")

    def begin_request(self, rid: Hashable, *, num_steps: int | None = None,
                      timesteps: Sequence[float] | None = None, **overrides: Any) -> None:
        """A request of a serving loop: ``num_steps`` step calls per guidance context (or the sampler's
        ``timesteps``), its own state and decisions, whatever batches its rows are computed in
        (``runtime/requests.py``). ``overrides``: its own policy options where they leave the compiled graphs as
        they are — another fixed schedule (``budget=``, ``interval=``, ``full_steps=``), ``order=`` within the
        history compiled, ``variable=``, a signal's host-side rule (``threshold=``, ``max_cached_in_row=``, ...);
        anything else is a ``ConfigError`` naming it."""
        policy = None
        if overrides:
            policy = self.policy.with_overrides(**overrides)
            _check_same_graphs(self.policy, policy, [r.plan.num_slots for r in self.runtimes], per_request=True)
        self.session.requests.begin(rid, num_steps, timesteps, policy)

    def rows(self, rows: Sequence):
        """Calls inside are batches whose row i belongs to ``rows[i]``: a request id, or (request id, context)."""
        return request_rows(self.session.requests, rows)

    def end_request(self, rid: Hashable) -> None:
        """Free a request's cache state (when it is done, cancelled or failed)."""
        self.session.requests.end(rid)

    def invalidate(self, module: torch.nn.Module | None = None) -> None:
        """Forget every cached feature but keep the clocks: each context's next call computes in full and the
        generation goes on at its step. For weights changed in the middle of a generation (a LoRA scale, another
        adapter): once a scale is a graph input, the cache would otherwise forecast across the change. With
        ``module``, only the features of that model (the others a backend serves keep theirs)."""
        self.session.invalidate(module)

    def __repr__(self) -> str:
        return f"C4DBackend(policy={self.policy.name!r}, settings={self.settings}, options={self.policy.options()})"


def _check_same_graphs(old: Policy, new: Policy, compiled_slots: list[int], per_request: bool = False) -> None:
    """The new policy must be served by the graphs compiled for the old one: ``retarget``'s rule, and a request's
    (``per_request``), which may also change what a signal schedule decides on the host alone."""
    changed = [name for name, a, b in (("region", old.region, new.region), ("token subsets", old.tokens, new.tokens))
               if a != b]
    if per_request:
        if old.schedule.compiled_part() != new.schedule.compiled_part():
            changed.append("the schedule's compiled part (its signal, probe or device decision)")
    elif any(p.schedule.signal is not None for p in (old, new)):
        changed.append("a signal-driven schedule (its probe is compiled in)")
    if changed:
        what = "a request's options keep" if per_request else "retarget keeps"
        raise ConfigError(f"{what} the compiled graphs; these change them: {', '.join(changed)} (compile "
                          "with a new backend instead)")
    slots = min(compiled_slots, default=new.forecaster.num_slots)
    if new.forecaster.num_slots > slots:
        raise InvalidValueError("forecaster", new.forecaster, f"a forecaster reading at most the {slots} history "
                                "slot(s) compiled")


def c4d_backend(policy: str | Policy, *, settings: Settings | None = None, **options: Any) -> C4DBackend:
    """The one verb: a torch.compile backend that caches with ``policy`` (a preset name or a Policy).

    ``options`` are policy overrides (``budget=8``, ``order=2``, ...) and settings (``lowering``,
    ``strict``, ``mode``, ``inductor_options``); unknown names are rejected with the valid ones.
    """
    return C4DBackend(policy, settings=settings, **options)

