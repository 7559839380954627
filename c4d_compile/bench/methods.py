"""The rows of ``c4d bench``: a method turns a workload's transformer into a callable to sample with.

Every method (the uncached model, a c4d preset, a peer library's cache) is prepared the same way and
hands back a :class:`Prepared`, so the matrix times and scores them all by one loop. What a method
cannot say about itself is measured by the matrix: a peer that reports no compute count gets its
FLOPs counted over an eager generation (``flop_call``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import torch

from ..calibration import calibrate
from ..compiler.backend import c4d_backend
from ..errors import InvalidValueError
from ..policies import get_policy
from .workloads import TransformerCall, Workload

FAMILIES = ("uncached", "fewer steps", "c4d", "diffusers", "cache-dit")


def _nothing() -> None:
    return None


@dataclass
class Prepared:
    call: TransformerCall  # what the sampler calls in place of the transformer
    steps: int  # sampler steps of one generation
    settings: dict[str, Any]  # what was configured, as recorded in the JSON
    begin: Callable[[], None] = _nothing  # before every generation: start from empty caches
    # Full computations of the transformer in the last generation, when the method knows them exactly.
    full_steps: Callable[[], int | None] = _nothing
    # Ideal speedup (FLOPs of the uncached run / FLOPs of this one); None: the matrix counts FLOPs.
    ideal_speedup: Callable[[], float | None] = _nothing
    cache_bytes: Callable[[], int | None] = _nothing  # state held for the cache after a generation
    flop_call: TransformerCall | None = None  # uncompiled equivalent of ``call``, for FLOP counting
    # Whether ``call`` runs under torch.compile. A method that cannot (see diffusers_caches) is timed against
    # the uncached model run the same way, never against the compiled one.
    compiled: bool = True
    close: Callable[[], None] = _nothing
    # A signal-driven cache's last generation, per context: signal and decision per call, and its threshold.
    trace: Callable[[], dict | None] = _nothing


class Method(Protocol):
    """A row of the matrix. ``label`` is unique within a run; ``family`` is one of FAMILIES."""

    label: str
    family: str

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared: ...


UNCACHED = "uncached"
UNCACHED_NOT_COMPILED = "uncached, not compiled"


@dataclass(frozen=True)
class Uncached:
    """The model compiled by the plain lowering; with ``steps`` set, the fewer-steps baseline; with
    ``compiled=False``, the plain module (the reference for methods that cannot run compiled)."""

    steps: int | None = None
    compiled: bool = True

    @property
    def label(self) -> str:
        if self.steps is not None:
            return f"uncached, {self.steps} steps"
        return UNCACHED if self.compiled else UNCACHED_NOT_COMPILED

    @property
    def family(self) -> str:
        return "uncached" if self.steps is None else "fewer steps"

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        run_steps = steps if self.steps is None else self.steps
        call = workload.plain_compiled(lowering) if self.compiled else workload.transformer
        return Prepared(
            call=call, steps=run_steps, settings={"steps": run_steps, "compiled": self.compiled},
            full_steps=lambda: run_steps, ideal_speedup=lambda: steps / run_steps, cache_bytes=lambda: 0,
            compiled=self.compiled,
        )


def _trace(backend) -> dict:
    """Every call's decision and signal; a per-call signal rule's settings (the others plot their raw signal)."""
    schedule = backend.policy.schedule
    rule = {"accumulate": schedule.accumulate, "rescale": list(schedule.rescale)} if hasattr(schedule, "score") else {}
    return {"threshold": schedule.threshold, **rule,
            "contexts": {name: {"kinds": list(ctx.kinds), "signals": list(ctx.signals)}
                         for name, ctx in backend.stats().last.contexts.items()}}


@dataclass(frozen=True)
class C4DPreset:
    """A c4d preset (with optional overrides) as a Dynamo backend over the same transformer."""

    preset: str
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    family: str = "c4d"
    tag: str = ""  # shown instead of the overrides in the label (e.g. "paper@10")

    @property
    def label(self) -> str:
        if self.tag:
            return f"{self.preset} {self.tag}"
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.preset}[{extra}]" if extra else self.preset

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        # the bench's samplers are bare loops: the step count is passed as a bare loop would pass it
        backend = c4d_backend(self.preset, lowering=lowering, **{"num_steps": steps, **self.overrides})
        stats = backend.stats
        # A signal-driven preset runs its probe on every step, a token subset recomputes a few rows on cached
        # steps: its compute is FLOP-equivalent steps, like the peers' caches that decide at run time, not its
        # count of full steps.
        signal = backend.policy.schedule.signal is not None
        dynamic = signal or backend.policy.tokens is not None
        return Prepared(
            trace=(lambda: _trace(backend)) if signal else _nothing,
            call=torch.compile(workload.transformer, backend=backend), steps=steps,
            settings={**backend.policy.options(), "schedule": backend.policy.schedule.describe()},
            begin=lambda: backend.reset(stats=True), full_steps=_nothing if dynamic else lambda: stats().full_steps,
            ideal_speedup=lambda: stats().ideal_speedup, cache_bytes=lambda: stats().cache_bytes,
        )


def _calibrated(workload: Workload, steps: int, preset: str, file_name: str, **options: Any):
    """``calibrate`` on the workload's calibration seed, into a fresh temporary folder."""
    run = workload.calibration_run
    if run is None:
        raise InvalidValueError("workload", workload.name, "a workload with a calibration run")
    folder = Path(tempfile.mkdtemp(prefix="c4d-bench-"))
    return calibrate(workload.transformer, lambda call: run(call, steps), preset, out=folder / file_name, **options)


@dataclass(frozen=True)
class C4DCalibrated:
    """A c4d preset on the schedule ``c4d calibrate`` picks for a budget, searched on the workload's
    calibration seed (a generation the bench never scores)."""

    preset: str
    budget: int
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    family: str = "c4d"

    @property
    def label(self) -> str:
        return f"{self.preset} calibrated@{self.budget}"

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        result = _calibrated(workload, steps, self.preset, f"{self.preset}-{self.budget}.json", budget=self.budget,
                             **dict(self.overrides))
        overrides = {**self.overrides, "schedule": str(result.path)}
        prepared = C4DPreset(self.preset, overrides).prepare(workload, lowering, steps)
        prepared.settings["calibrated_full_steps"] = list(result.full_steps)
        return prepared


@dataclass(frozen=True)
class C4DAuto:
    """``policy="auto"`` at a budget: region, forecaster, variable and full steps chosen by calibration on the
    workload's calibration seed (generations the bench never scores); the calibration's own final-sample PSNR
    is kept beside the scored one (the transfer gap)."""

    budget: int
    effort: str = "default"
    family: str = "c4d"

    @property
    def label(self) -> str:
        return f"auto@{self.budget}" if self.effort == "default" else f"auto {self.effort}@{self.budget}"

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        result = _calibrated(workload, steps, "auto", f"auto-{self.effort}-{self.budget}.json", budget=self.budget,
                             effort=self.effort, progress=False)
        prepared = C4DPreset("auto", {"schedule": str(result.path)}, tag=f"@{self.budget}").prepare(
            workload, lowering, steps)
        cost = result.cost
        prepared.settings.update(
            chosen=result.candidate.label, calibrated_full_steps=list(result.full_steps),
            calibration_psnr=result.psnr, calibration_seconds=cost.seconds,
            calibration_generations=cost.generations, calibration_flop_generations=cost.flop_generations)
        return prepared


@dataclass(frozen=True)
class C4DMagnitude:
    """A magnitude-ratio preset (magcache) at one threshold, on ratios recorded on the workload's calibration
    seed (a generation the bench never scores)."""

    preset: str
    threshold: float
    family: str = "c4d"

    @property
    def label(self) -> str:
        return f"{self.preset} τ{self.threshold:g}"

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        ratios = _calibrated(workload, steps, self.preset, f"{self.preset}-ratios.json")
        return C4DPreset(self.preset, {"threshold": self.threshold, **ratios.overrides()},
                         tag=f"τ{self.threshold:g}").prepare(workload, lowering, steps)


def paper_at_budget(preset: str, budget: int, steps: int) -> dict[str, Any]:
    """The paper's schedule shape (warm-up + interval) at about ``budget`` full steps: the paper's warm-up
    (fewer if the budget is smaller) and the smallest interval that does not exceed the budget."""
    paper = get_policy(preset, schedule="paper")
    warmup = min(getattr(paper.schedule, "warmup", 1), budget - 1)
    for interval in range(1, steps + 1):
        planned = get_policy(preset, schedule="paper", interval=interval, warmup=warmup).schedule.planned(steps)
        if len(planned) <= budget:
            return {"schedule": "paper", "interval": interval, "warmup": warmup}
    return {"schedule": "paper", "interval": steps, "warmup": warmup}
