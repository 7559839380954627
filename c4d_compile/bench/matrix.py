"""``c4d bench``: models × methods, timed in one alternating loop, scored against the uncached run.

For each model: every method is prepared and run once (compile + warm-up; the first run minus the
steady median is reported as compile time), then the timed generations alternate over all methods
``repeats`` times, so machine noise hits every row alike, and the medians are compared with the
uncached model's. Each cached row's compute (full computations, or FLOP-equivalent steps for caches
that decide at run time) fixes a fewer-steps baseline, which joins the loop as a row of its own: the
honest bar a cache must clear: ceil of its FLOP-equivalent steps (``equal_compute``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from ..compiler.flop_formulas import flop_counter
from ..compiler.settings import DYNAMO_LIMITS
from ..errors import ConfigError, InvalidValueError
from .methods import UNCACHED, UNCACHED_NOT_COMPILED, Method, Prepared, Uncached
from .speed import timed as _timed
from .workloads import Workload, load_workload

LOWERINGS = ("auto", "eager", "inductor")


def resolve_lowering(lowering: str, workload: Workload | None) -> str:
    """``auto``: inductor for the random-weight speed configs, eager for the trained reference models,
    which are there for fidelity and too small for their timings to be anything but overhead."""
    if lowering not in LOWERINGS:
        raise InvalidValueError("lowering", lowering, f"one of {', '.join(LOWERINGS)}")
    if lowering != "auto" or workload is None:
        return lowering
    return "inductor" if workload.kind == "random" else "eager"


@dataclass
class BenchRow:
    model: str
    method: str
    family: str
    settings: dict
    lowering: str
    compiled: bool  # run under torch.compile; if not, timed against the uncached model not compiled either
    device: str
    steps: int
    computations: float  # full transformer computations per generation (FLOP-equivalent for dynamic caches)
    seconds: float  # median generation time
    uncached_seconds: float
    measured_speedup: float
    ideal_speedup: float
    ratio: float  # measured / ideal
    psnr_mean: float
    psnr_worst: float
    ssim_mean: float | None
    accuracy: float | None
    frechet: float | None
    cache_mib: float | None
    compile_seconds: float | None
    fewer_steps_db: float | None = None  # PSNR above the fewer-steps baseline at equal compute
    interpolated_db: float | None = None  # PSNR above the uncached model interpolated to the exact compute
    trace: dict | None = None  # signal-driven caches: signal and decision of every call of the last generation
    on_front: bool = False  # on the speed-vs-PSNR Pareto front of its model

    @property
    def flop_steps(self) -> float:
        """The row's compute in uncached sampler steps: what ``equal_compute`` takes the ceil of. A fewer-steps
        row runs its own step count (``steps``), every other row the model's."""
        if self.family == "fewer steps":
            return self.computations
        return self.steps / self.ideal_speedup

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Skipped:
    model: str
    method: str
    reason: str


@dataclass
class BenchResult:
    rows: list[BenchRow] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # how the run was made (``report.run_meta``), when read from a file


def _generation(workload: Workload, prepared: Prepared):
    def run():
        prepared.begin()
        return workload.run(prepared.call, prepared.steps)

    return run


def _flops(workload: Workload, call, steps: int) -> int:
    with flop_counter() as counter, torch.no_grad():
        workload.run(call, steps)
    return counter.get_total_flops()


def equal_compute(steps: int, ideal: float) -> int:
    """The fewer-steps baseline of a row: the uncached model with ceil(its FLOP-equivalent steps), for every
    row alike. A cached step is not free (the ops outside the cached region still run), so a cache computing
    10 of 50 steps in full at an ideal 4.7x spends 10.6 step-equivalents and is held against 11 steps."""
    return max(1, math.ceil(steps / ideal - 1e-9))  # an exact integer stays itself under float rounding


def interpolated_gain(row: BenchRow, by_steps: dict[int, BenchRow]) -> float | None:
    """The row's mean PSNR above the uncached model's at exactly its FLOP-equivalent steps: linear in dB
    between floor and ceil of them (the strict baseline, ``equal_compute``, is the ceil). None where either
    neighbour was not run."""
    x = row.flop_steps
    lo, hi = max(1, math.floor(x + 1e-9)), max(1, math.ceil(x - 1e-9))
    if lo not in by_steps or hi not in by_steps:
        return None
    below, above = by_steps[lo].psnr_mean, by_steps[hi].psnr_mean
    return row.psnr_mean - (below if hi == lo else below + (x - lo) * (above - below))


def bench_model(
    model: str,
    methods: list[Method],
    repeats: int = 3,
    steps: int | None = None,
    lowering: str = "auto",
    per_class: int = 4,
    seed: int = 0,
    progress: bool = True,
    shift: float = 1.0,
) -> BenchResult:
    """All ``methods`` on one model (on the sampler grid of ``shift``), plus the uncached row and the
    fewer-steps baselines they call for."""
    with torch._dynamo.config.patch(**DYNAMO_LIMITS):
        return _bench_model(model, methods, repeats, steps, lowering, per_class, seed, progress, shift)


def _bench_model(model, methods, repeats, steps, lowering, per_class, seed, progress, shift) -> BenchResult:
    if repeats < 1:
        raise InvalidValueError("repeats", repeats, "an integer >= 1")
    resolve_lowering(lowering, None)  # reject a bad name before loading anything
    workload = load_workload(model, per_class=per_class, seed=seed, shift=shift)
    lowering = resolve_lowering(lowering, workload)
    steps = steps or workload.default_steps
    result = BenchResult()
    entries: dict[str, tuple[Method, Prepared]] = {}
    first: dict[str, float] = {}
    outputs: dict[str, torch.Tensor] = {}
    ideal: dict[str, float] = {}
    base_flops: int | None = None

    def add(method: Method) -> None:
        nonlocal base_flops
        try:
            prepared = method.prepare(workload, lowering, steps)
            outputs[method.label], first[method.label] = _timed(_generation(workload, prepared))
        except Exception as err:  # a peer, or a preset setting, that does not fit this model must not sink the matrix
            inner = getattr(err, "inner_exception", err)  # what a backend raised, unwrapped from Dynamo's error
            if method.family == "uncached" or (method.family == "c4d" and not isinstance(inner, ConfigError)):
                raise
            result.skipped.append(Skipped(workload.name, method.label, f"{type(inner).__name__}: {inner}"))
            return
        entries[method.label] = (method, prepared)
        value = prepared.ideal_speedup()
        if value is None:  # the method cannot say: count FLOPs over one eager generation
            if base_flops is None:
                base_flops = _flops(workload, workload.transformer, steps)
            prepared.begin()
            value = base_flops / _flops(workload, prepared.flop_call, prepared.steps)
        ideal[method.label] = value

    for method in tqdm([Uncached(), *methods], desc=f"{workload.name}: compile + warm-up", disable=not progress):
        add(method)
    if any(not p.compiled for _, p in entries.values()):
        add(Uncached(compiled=False))
    # Each cached row's compute, in sampler steps of the uncached model: its fewer-steps baseline.
    equal = {label: equal_compute(steps, ideal[label]) for label, (m, p) in entries.items() if m.family != "uncached"}
    below = {max(1, math.floor(steps / ideal[label] + 1e-9)) for label in equal}  # for the interpolated gain
    for k in sorted((set(equal.values()) | below) - {steps}):
        add(Uncached(k))

    computed_at_warmup = {label: p.full_steps() for label, (_, p) in entries.items()}
    times: dict[str, list[float]] = {label: [] for label in entries}
    for _ in tqdm(range(repeats), desc=f"{workload.name}: alternating timed runs", disable=not progress):
        for label, (_, prepared) in entries.items():
            outputs[label], seconds = _timed(_generation(workload, prepared))
            times[label].append(seconds)

    for label, (_, prepared) in entries.items():
        if prepared.full_steps() != computed_at_warmup[label]:
            # e.g. a row whose graph break made Dynamo skip the model's forward code for every row after it
            raise RuntimeError(
                f"{workload.name}: {label!r} computed {computed_at_warmup[label]} steps at warm-up but "
                f"{prepared.full_steps()} in the timed runs; another row changed how the model runs"
            )
    reference = outputs[UNCACHED]
    base = {compiled: statistics.median(times[label]) for compiled, label in
            ((True, UNCACHED), (False, UNCACHED_NOT_COMPILED)) if label in times}
    device = str(next(workload.transformer.parameters()).device)
    for label, (method, prepared) in entries.items():
        seconds = statistics.median(times[label])
        base_seconds = base[prepared.compiled]
        measured = base_seconds / seconds
        scores = workload.score(outputs[label], reference)
        cache = prepared.cache_bytes()
        # fewer-steps rows reuse the uncached row's compiled code; the plain module compiles nothing
        own_compile = method.family != "fewer steps" and prepared.compiled
        result.rows.append(BenchRow(
            model=workload.name, method=label, family=method.family, settings=prepared.settings,
            lowering=lowering, compiled=prepared.compiled, device=device, steps=prepared.steps,
            computations=float(prepared.full_steps() or steps / ideal[label]),
            seconds=seconds, uncached_seconds=base_seconds, measured_speedup=measured,
            ideal_speedup=ideal[label], ratio=measured / ideal[label], psnr_mean=scores.psnr_mean,
            psnr_worst=scores.psnr_worst, ssim_mean=scores.ssim_mean, accuracy=scores.accuracy,
            frechet=scores.frechet, cache_mib=None if cache is None else cache / 2**20,
            compile_seconds=max(first[label] - seconds, 0.0) if own_compile else None, trace=prepared.trace(),
        ))
        prepared.close()
    _compare_with_fewer_steps(result.rows, steps, equal)
    mark_pareto_front(result.rows)
    torch._dynamo.reset()
    return result


def _compare_with_fewer_steps(rows: list[BenchRow], steps: int, equal: dict[str, int]) -> None:
    by_steps = {r.steps: r for r in rows if r.family in ("uncached", "fewer steps")}
    for row in rows:
        if row.family in ("uncached", "fewer steps"):
            continue
        k = equal.get(row.method, steps)
        baseline = by_steps.get(k) if k < steps else None  # a row computing every step has no baseline
        if baseline is not None:
            row.fewer_steps_db = row.psnr_mean - baseline.psnr_mean
            row.interpolated_db = interpolated_gain(row, by_steps)


def mark_pareto_front(rows: list[BenchRow]) -> None:
    """A row is on the front if no other row is at least as fast and as faithful, and better in one.

    The uncached row (infinite PSNR against itself, speedup 1) is the front's slow end by definition,
    so it is left out; the comparison is among the rows that trade fidelity for speed.
    """
    candidates = [r for r in rows if r.family != "uncached"]
    for row in candidates:
        row.on_front = not any(
            o.measured_speedup >= row.measured_speedup and o.psnr_mean >= row.psnr_mean
            and (o.measured_speedup > row.measured_speedup or o.psnr_mean > row.psnr_mean)
            for o in candidates if o is not row
        )


def run_matrix(models: list[str], methods: list[Method], on_model=None, shifts=(1.0,), **options) -> BenchResult:
    """``bench_model`` over ``models`` and sampler grids; rows and skipped entries concatenated in order.
    A grid a model cannot sample (a shift for a random-weight or ε-prediction model) is a skipped entry.

    ``on_model(result_so_far)`` runs after each model, so a long matrix can write what it has.
    """
    total = BenchResult()
    for model in models:
        for shift in shifts:
            try:
                part = bench_model(model, methods, shift=shift, **options)
            except InvalidValueError as err:
                if shift == 1.0 or err.field != "shift":
                    raise
                total.skipped.append(Skipped(model, f"shift {shift:g}", str(err)))
                continue
            total.rows += part.rows
            total.skipped += part.skipped
            if on_model is not None:
                on_model(total)
    return total
