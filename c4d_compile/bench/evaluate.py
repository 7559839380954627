"""``c4d evaluate``: the user's own diffusers pipeline, uncached, with each method, and uncached with fewer steps at
each method's compute, on the same prompts and seeds; a table, a JSON file and an image grid (``evaluate_report``).

Per method: one warm-up generation (compile; for a peer, its FLOPs are counted there), then every prompt x seed
once, timed. Each output is scored against the uncached output of the same prompt and seed: PSNR and SSIM, and
the optional scores (``evaluate_scorers``). The measured speedup is the uncached pipeline's mean time per
generation over the method's (a peer, which runs uncompiled, over the uncached pipeline run uncompiled too); the
ideal one is FLOPs of the denoisers, uncached over cached. Equal compute: the uncached pipeline with ceil(the
method's FLOP-equivalent steps) (``matrix.equal_compute``, the bench's rule) is run and scored the same way, and
the method's gain is its mean PSNR minus that run's.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from tqdm import tqdm

from ..calibration.candidates import get_effort
from ..compiler.settings import DYNAMO_LIMITS
from ..errors import InvalidValueError
from .evaluate_methods import Applied, Session, compile_plain, denoiser_flops, peak_bytes, resolve_methods
from .evaluate_metrics import data_range, psnr, ssim
from .evaluate_scorers import ScoreModels, load_scorers
from .evaluate_target import Target, frames, load_target, thumbnail
from .matrix import equal_compute
from .speed import timed

LOWERINGS = ("inductor", "eager")


@dataclass(frozen=True)
class EvalConfig:
    pipeline: str  # a local directory or module:factory (evaluate_target)
    prompts: tuple[str, ...]
    steps: int
    methods: tuple[str, ...] = ("taylorseer",)
    seeds: tuple[int, ...] = (0,)
    budget: int | None = None  # full steps per generation for every c4d preset and auto
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # every c4d preset's
    call: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # every generation's kwargs
    lowering: str = "inductor"
    auto_effort: str = "default"
    calibration_seed: int = 1000  # auto calibrates on the first prompt at this seed, never scored
    models: ScoreModels = ScoreModels()
    device: str | None = None  # a directory pipeline's device and dtype; a factory places its own
    dtype: str = "auto"
    out: str = "evaluate-out"
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.prompts:
            raise InvalidValueError("prompts", self.prompts, "at least one prompt")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 2:
            raise InvalidValueError("steps", self.steps, "an integer >= 2")
        if not self.seeds or self.calibration_seed in self.seeds:
            raise InvalidValueError("seeds", self.seeds, f"at least one seed, none of them the calibration seed "
                                    f"{self.calibration_seed}")
        if self.lowering not in LOWERINGS:
            raise InvalidValueError("lowering", self.lowering, f"one of {', '.join(LOWERINGS)}")
        if self.budget is not None and not 1 <= self.budget <= self.steps:
            raise InvalidValueError("budget", self.budget, f"an integer in 1..{self.steps}")
        get_effort(self.auto_effort)


@dataclass
class EvalRow:
    method: str
    family: str  # uncached, fewer steps, c4d, diffusers, cache-dit
    steps: int
    flop_steps: float  # compute per generation in uncached steps: steps / ideal speedup
    seconds: float  # mean per generation
    measured_speedup: float
    ideal_speedup: float
    psnr_mean: float
    psnr_worst: float
    ssim_mean: float | None
    scores: dict[str, float]  # optional scores (evaluate_scorers), mean over generations
    cache_mib: float | None
    compile_seconds: float | None
    compiled: bool
    settings: dict
    contexts: dict[str, dict] | None = None  # c4d: per guidance context, steps computed / cached (last generation)
    baseline_steps: int | None = None  # the fewer-steps run at equal compute
    baseline_psnr: float | None = None
    gain_db: float | None = None  # psnr_mean - baseline_psnr


@dataclass
class EvalResult:
    config: EvalConfig
    target: str
    kind: str  # image or latent
    peak: str  # what PSNR / SSIM take as the data range
    generations: list[tuple[str, int]]
    device: str = ""
    output_shape: tuple[int, ...] = ()
    rows: list[EvalRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it did not run
    absent: dict[str, str] = field(default_factory=dict)  # optional score -> why it was not measured
    tiles: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)  # the grid: row -> images

    def as_dict(self) -> dict:
        config = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        config = {k: dict(v) if isinstance(v, Mapping) else asdict(v) if k == "models" else v
                  for k, v in config.items()}
        return {"config": config, "target": self.target, "kind": self.kind, "data_range": self.peak,
                "device": self.device, "output_shape": list(self.output_shape),
                "generations": [{"prompt": p, "seed": s} for p, s in self.generations],
                "rows": [asdict(r) for r in self.rows], "skipped": self.skipped, "not_measured": self.absent}


@dataclass
class _Run:
    outputs: list[torch.Tensor]
    seconds: list[float]
    first: float | None  # the warm-up generation's time
    flops: int | None = None  # counted in the denoisers over the warm-up generation
    stats: Any = None  # c4d: the backend's stats, read before the method was undone
    cache_bytes: int | None = 0
    scored: list = field(default_factory=list)  # per generation: PSNR, SSIM, optional scores
    tiles: list = field(default_factory=list)  # per generation: the grid's thumbnail


class _Evaluation:
    def __init__(self, config: EvalConfig, target: Target, methods: list):
        self.config, self.target, self.methods = config, target, methods
        self.reference: _Run | None = None
        self.runs = [(p, s) for p in config.prompts for s in config.seeds]
        self.kind = target.kind(config.prompts[0])
        device = str(getattr(target.pipe, "device", "cpu"))
        self.scorers, absent = load_scorers(config.models, self.kind, device)
        self.result = EvalResult(config, target.name, self.kind, "1 (images in [0, 1])" if self.kind == "image" else
                                 "max - min of each uncached latent", self.runs, device, absent=absent)
        self.bar = tqdm(total=0, unit="gen", disable=not config.progress)
        self.compiled: dict[str, Any] = {}

    def generate(self, steps: int, applied: Applied | None = None, warmup: bool = True, count: bool = False) -> _Run:
        begin = applied.begin if applied is not None else (lambda: None)
        around = applied.around if applied is not None else contextlib.nullcontext
        self.bar.total += len(self.runs) + warmup
        first = flops = None
        peak = [0]
        if warmup:  # compiles; counts FLOPs (peers) and the most cache memory held after a denoiser call
            prompt, seed = self.runs[0]
            pipe = self.target.pipe
            with (denoiser_flops(pipe) if count else contextlib.nullcontext([None])) as counted, \
                    (peak_bytes(pipe, applied.cache_bytes) if applied else contextlib.nullcontext([0])) as peak:
                begin()
                with around():
                    first = timed(lambda: self.target.generate(prompt, seed, steps))[1]
            flops = counted[0]
            self.bar.update()
            if applied is not None:
                applied.reset_stats()
        outputs, seconds = [], []
        for prompt, seed in self.runs:
            begin()
            with around():
                out, t = timed(lambda p=prompt, s=seed: self.target.generate(p, s, steps))
            outputs.append(out)
            seconds.append(t)
            self.bar.update()
        run = _Run(outputs, seconds, first, flops, applied.stats() if applied else None, peak[0])
        return self.scored(run) if self.reference is not None else run

    def scored(self, run: _Run) -> _Run:
        """Score and thumbnail each output now, and let the outputs go (only the uncached ones are kept)."""
        run.scored = [self.score(out, ref, prompt) for out, ref, (prompt, _) in
                      zip(run.outputs, self.reference.outputs, self.runs)]
        run.tiles = [thumbnail(o, self.kind) for o in run.outputs]
        if run is not self.reference:
            run.outputs = []
        return run

    def uncached(self, steps: int, warmup: bool, compiled: bool = True, count: bool = False) -> _Run:
        undo = compile_plain(self.target.pipe, self.config.lowering, self.compiled) if compiled else (lambda: None)
        try:
            return self.generate(steps, warmup=warmup, count=count)
        finally:
            undo()

    def row(self, label: str, family: str, run: _Run, steps: int, ideal: float, base: _Run,
            applied: Applied | None = None) -> EvalRow:
        scored = run.scored
        psnrs = [s[0] for s in scored]
        ssims = [s[1] for s in scored if s[1] is not None]
        seconds, base_seconds = statistics.fmean(run.seconds), statistics.fmean(base.seconds)
        stats, cache = run.stats, run.cache_bytes
        self.result.tiles[label] = run.tiles
        return EvalRow(
            method=label, family=family, steps=steps, flop_steps=self.config.steps / ideal, seconds=seconds,
            measured_speedup=base_seconds / seconds, ideal_speedup=ideal, psnr_mean=statistics.fmean(psnrs),
            psnr_worst=min(psnrs), ssim_mean=statistics.fmean(ssims) if ssims else None,
            scores={k: statistics.fmean(s[2][k] for s in scored) for k in self.scorers},
            cache_mib=None if cache is None else cache / 2**20,
            compile_seconds=None if run.first is None or family == "fewer steps" else max(run.first - seconds, 0.0),
            compiled=applied is None or applied.compiled, settings=applied.settings if applied else {"steps": steps},
            contexts=None if stats is None else {name: {"steps": c.steps, "full": c.full_steps, "cached":
                                                        c.cached_steps, "computed": list(c.computed)}
                                                 for name, c in stats.last.contexts.items()})

    def score(self, output: torch.Tensor, reference: torch.Tensor, prompt: str):
        peak = data_range(reference, self.kind)
        extra = {k: scorer(frames(output), frames(reference), prompt) for k, scorer in self.scorers.items()}
        return psnr(output, reference, peak), ssim(output, reference, peak), extra

    def run(self) -> EvalResult:
        config, pipe, methods = self.config, self.target.pipe, self.methods
        first_prompt = config.prompts[0]
        session = _session(config, lambda p: self.target.generate(first_prompt, config.calibration_seed, config.steps))
        Path(config.out).mkdir(parents=True, exist_ok=True)
        self.bar.set_description("uncached")
        self.reference = self.uncached(config.steps, warmup=True)
        self.scored(self.reference)
        self.result.output_shape = tuple(self.reference.outputs[0].shape)
        rows = [self.row("uncached", "uncached", self.reference, config.steps, 1.0, self.reference)]
        measured: list[tuple[Any, Applied, _Run]] = []
        for method in methods:
            self.bar.set_description(method.label)
            try:
                applied = method.apply(pipe, session)
            except Exception as err:  # a peer library that is not installed, or does not take this pipeline
                if method.family == "c4d":
                    raise
                self.result.skipped[method.label] = f"{type(err).__name__}: {err}"
                continue
            try:
                measured.append((method, applied, self.generate(config.steps, applied, count=not applied.compiled)))
            except Exception as err:
                if method.family == "c4d":
                    raise
                self.result.skipped[method.label] = f"{type(err).__name__}: {err}"  # a peer that does not fit
            finally:
                applied.undo()
        plain = None
        if any(not applied.compiled for _, applied, _ in measured):  # peers: against the uncompiled pipeline
            self.bar.set_description("uncached, not compiled")
            plain = self.uncached(config.steps, warmup=True, compiled=False, count=True)
            rows.append(self.row("uncached, not compiled", "uncached", plain, config.steps, 1.0, plain))
        for method, applied, run in measured:
            ideal = run.stats.ideal_speedup if applied.compiled else plain.flops / run.flops
            rows.append(self.row(method.label, method.family, run, config.steps, ideal,
                                 self.reference if applied.compiled else plain, applied))
        self._fewer_steps(rows)
        self.bar.close()
        self.result.rows = rows
        return self.result

    def _fewer_steps(self, rows: list[EvalRow]) -> None:
        """The uncached pipeline at each method's equal compute, and each method's gain over it."""
        cached = [r for r in rows if r.family != "uncached"]
        ks = {r.method: equal_compute(self.config.steps, r.ideal_speedup) for r in cached}
        fewer = {}
        for k in sorted({k for k in ks.values() if k < self.config.steps}):
            self.bar.set_description(f"uncached, {k} steps")
            run = self.uncached(k, warmup=True)  # the methods' own compiles may have invalidated its code
            fewer[k] = self.row(f"uncached, {k} steps", "fewer steps", run, k, self.config.steps / k, self.reference)
        for row in cached:
            baseline = fewer.get(ks[row.method])
            if baseline is not None:
                row.baseline_steps, row.baseline_psnr = baseline.steps, baseline.psnr_mean
                row.gain_db = row.psnr_mean - baseline.psnr_mean
        rows += fewer.values()


def _session(config: EvalConfig, calibration_run: Any = None) -> Session:
    return Session(config.steps, config.lowering, Path(config.out), calibration_run,
                   MappingProxyType(dict(config.overrides)), config.budget, config.auto_effort, config.progress)


def evaluate(config: EvalConfig, target: Target | None = None) -> EvalResult:
    """Run ``config`` (module doc); ``target`` skips loading ``config.pipeline`` (a pipeline already built)."""
    methods = resolve_methods(list(config.methods))
    for method in methods:  # every name and option checked before the pipeline loads
        method.check(_session(config))
    target = target or load_target(config.pipeline, config.call, config.device, config.dtype)
    with torch._dynamo.config.patch(**DYNAMO_LIMITS):
        try:
            return _Evaluation(config, target, methods).run()
        finally:
            torch._dynamo.reset()
