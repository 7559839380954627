"""``policy="auto"``: choose the region, forecaster, step variable and full steps on the user's own model,
by the error of the final sample.

    cal = c4d_compile.calibrate(model_or_pipe, run, "auto", budget=8, out="auto-8of28.json")
    backend = c4d_backend("auto", schedule="auto-8of28.json")

``run`` returns the final sample of the generations it ran (``samples.py``); calibrate on prompts / seeds
you will not evaluate on. The steps, each measured by running ``run`` through the compiled model:

1. **Reference**: ``run`` twice on the model as it is: the uncached final sample (both runs must give the
   same one: the search compares runs), and the time of one uncached run (the unit the cost is reported in).
2. **Record**: per region of the candidate set, one generation with every step computed, through a backend
   compiled once for that region with as many history slots as its candidates read; it records the
   cached features' trajectory (``record.py``). Every later measurement reuses that compiled backend,
   swapping forecaster, variable and full steps without recompiling (``C4DBackend.retarget``).
3. **Screen**: every candidate (``candidates.py``) on the even spread of the budget: one cached run
   each, scored by the mean squared error of its final sample against the reference. On a sampler grid
   that is not evenly spaced, the best ones are also screened forecasting in the timestep.
4. **Exact-search start**: for the screened candidates the effort names (``default``: every one the search
   can take), the full-step set that minimises the forecast error of the recorded features (``search.py``:
   an exact dynamic programme for that additive objective), measured the same way; the table reports its
   predicted (feature) error beside the measured final error.
5. **Refine**: the best candidates, from the better of their two starts, by local search on the measured
   final error (``refine.py``), in two rounds: twice as many candidates get a quarter of the measurements,
   the better half of them the rest.
6. **Fit the weights**: on the best set so far, in its region and variable, the forecast weights of every
   cached step are fitted by least squares to the recorded features (``fit.py``, ``LeastSquares``), through 2
   and through 3 history values; the better one, when it beats every candidate, is refined like the others,
   with the weights refitted to each set it measures.

The winner is what the measurements say, never a proxy's prediction. Everything chosen goes to the
calibration file with the graph fingerprint; ``c4d_backend("auto", schedule=file)`` adopts it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..compiler.backend import C4DBackend
from ..compiler.settings import DYNAMO_LIMITS  # the search compiles a graph per region
from ..errors import C4DError, InvalidValueError
from ..policies import Policy, Region, forecaster_spec, get_policy
from ..policies.forecasters import LeastSquares, Taylor
from ..policies.schedules import ExplicitSchedule, IntervalSchedule, spread_evenly, write_calibration
from .candidates import Candidate, Effort, get_effort, with_timestep
from .fit import fit_weights
from .record import Trajectory, TrajectoryRecorder, common_grid
from .refine import refine
from .running import run_through
from .samples import FinalError, final_sample
from .search import Prepared, best_full_steps, gram, step_costs

MAX_SEARCHED_SLOTS = 3  # the exact search enumerates histories of this many full steps at most (search.py)
FITTED_SLOTS = (2, 3)  # history values the least-squares weights are fitted over (step 6)


class CalibrationRunError(C4DError):
    """A calibration run did not run the way the search asked (the model was not cached as planned)."""


@dataclass(frozen=True)
class Measured:
    full_steps: tuple[int, ...]
    error: float  # mean squared error of the final sample against the uncached one


@dataclass(frozen=True)
class CandidateResult:
    candidate: Candidate  # fitted weights (step 6): the forecaster fitted to its best set
    spread: Measured | None  # None for fitted weights, which start from the best set of the others
    searched: Measured | None = None  # the exact search's set for the recorded features' forecast error
    predicted: float | None = None  # that search's objective at its optimum (normalised feature error)
    refined: Measured | None = None
    evaluations: int = 1

    @property
    def best(self) -> Measured:
        return min((m for m in (self.spread, self.searched, self.refined) if m is not None), key=lambda m: m.error)


@dataclass(frozen=True)
class Cost:
    uncached_runs: int  # the two reference runs and the per-region recordings
    cached_runs: int  # measurements
    seconds: float  # all of it
    uncached_seconds: float  # one uncached run of ``run``
    recording_seconds: float  # the per-region recordings, each compiling its region's graphs
    search_seconds: float  # the exact searches (host arithmetic)
    cached_flops: float  # the measurements' FLOPs, in uncached runs of ``run``

    @property
    def generations(self) -> float:
        """The calibration's time in uncached runs of ``run``."""
        return self.seconds / self.uncached_seconds if self.uncached_seconds else float("nan")

    @property
    def flop_generations(self) -> float:
        """Its compute in uncached runs (counted FLOPs; compiling and the exact searches are host work)."""
        return self.uncached_runs + self.cached_flops


@dataclass(frozen=True)
class AutoCalibration:
    policy: Policy  # "auto" with what was chosen: c4d_backend(cal.policy) runs it
    candidate: Candidate
    full_steps: tuple[int, ...]
    num_steps: int
    budget: int
    error: float
    psnr: float  # dB against the uncached final sample, its range as the peak
    peak: float  # that range
    results: tuple[CandidateResult, ...]
    cost: Cost
    effort: str
    path: Path | None

    def overrides(self) -> dict[str, Any]:
        """``c4d_backend("auto", **cal.overrides())``; without a file, ``c4d_backend(cal.policy)``."""
        if self.path is None:
            raise InvalidValueError("out", None, "a file to write (c4d_backend('auto') reads it); or run "
                                    "c4d_backend(cal.policy)")
        return {"schedule": str(self.path)}

    def psnr_of(self, mse: float) -> float:
        """dB of a final-sample error of this calibration (the same reference and peak)."""
        return FinalError.psnr_for(self.peak, mse)

    def table(self) -> str:
        """The candidates tried: final-sample PSNR on the spread, the exact search's start (with its predicted
        feature error) and the refinement; the chosen one starred."""
        def db(m: Measured | None) -> str:
            return "–" if m is None else f"{self.psnr_of(m.error):.2f}"

        lines = ["candidate | spread dB | exact-search start dB (predicted feature error) | refined dB | runs",
                 "---|---|---|---|---"]
        for r in sorted(self.results, key=lambda r: r.best.error):
            star = " ★" if r.candidate == self.candidate else ""
            start = "–"
            if r.searched is not None:
                start = f"{db(r.searched)} ({'fitted to the best set' if r.spread is None else f'{r.predicted:.3g}'})"
            lines.append(f"{r.candidate.label}{star} | {db(r.spread)} | {start} | {db(r.refined)} | {r.evaluations}")
        return "\n".join(lines)


class _RegionRuns:
    """One region's backend, compiled by a generation with every step computed (which records the cached
    features), then retargeted to any candidate of that region and any full-step set."""

    def __init__(self, model: Any, run: Callable, region: Region, slots: int, lowering: str, max_elements: int):
        self.model, self.run, self.region, self.slots = model, run, region, slots
        policy = Policy(name="auto", region=region, forecaster=Taylor(order=slots - 1),
                        schedule=IntervalSchedule(interval=1))
        self.backend = C4DBackend(policy, lowering=lowering)
        self.recorder = TrajectoryRecorder(max_elements)
        self.backend.session.recorders.append(self.recorder)
        run_through(model, run, self.backend)
        self.backend.session.recorders.remove(self.recorder)
        if self.backend.plan is None or not self.recorder.trajectories:
            raise CalibrationRunError(f"region {region.value!r}: nothing was cached in the recorded generation "
                                      "(the backend's warnings say why)")
        self.trajectories = _consistent(self.recorder)
        self.num_steps = len(self.trajectories[0].steps)
        self._costs_input = None
        self._prepared = None

    @property
    def fingerprint(self) -> dict:
        return self.recorder.fingerprints[0]

    def measure(self, candidate: Candidate, full_steps: tuple[int, ...], error: FinalError) -> tuple[float, float]:
        """The final-sample error of one cached run, and its FLOPs over an uncached run's."""
        self.backend.retarget(forecaster=candidate.forecaster, variable=candidate.variable, full_steps=full_steps,
                              num_steps=self.num_steps)
        sample = final_sample(run_through(self.model, self.run, self.backend))
        last = self.backend.stats().last
        for name, ctx in last.contexts.items():
            if tuple(ctx.computed) != full_steps:
                raise CalibrationRunError(f"context {name!r} computed steps {ctx.computed}, not the measured schedule "
                                          f"{list(full_steps)}: the model is not cached as planned (see warnings)")
        return error.mse(sample), 1 / last.ideal_speedup

    def exact_search(self, candidate: Candidate, budget: int) -> tuple[tuple[int, ...], float] | None:
        """The full steps minimising the recorded features' forecast error (search.py), or None when the
        forecaster's history is too long for the exact search."""
        if candidate.forecaster.num_slots > MAX_SEARCHED_SLOTS:
            return None
        costs = step_costs(self._grams(), candidate.forecaster, candidate.variable, self.num_steps)
        return best_full_steps(costs, candidate.forecaster.num_slots, budget, self.num_steps)

    def fitted(self, candidate: Candidate, full_steps: tuple[int, ...]) -> Candidate:
        """``candidate`` with least-squares weights over its history slots fitted to ``full_steps`` (fit.py)."""
        if self._prepared is None:
            self._prepared = [Prepared(t, g) for t, g in self._grams()]
        forecaster = fit_weights(self._prepared, candidate.variable, full_steps, candidate.forecaster.num_slots,
                                 self.num_steps)
        return Candidate(self.region, forecaster, candidate.variable)

    def _grams(self) -> list:
        if self._costs_input is None:
            features = len(self.trajectories[0].samples[0])
            self._costs_input = [(t, gram(t, features)) for t in self.trajectories]
        return self._costs_input


def _consistent(recorder: TrajectoryRecorder) -> list[Trajectory]:
    trajectories = list(recorder.trajectories.values())
    lengths = {len(t.steps) for t in trajectories}
    if len(lengths) != 1 or len(recorder.fingerprints) != 1:
        raise InvalidValueError("recorded generations", sorted(lengths),
                                "generations of one step count through one graph (calibrate each setting apart)")
    return trajectories


def _uneven(trajectory: Trajectory) -> bool:
    """Whether the sampler's timesteps are unevenly spaced (then the timestep variable differs from the index)."""
    moving = next((i for i, (a, b) in enumerate(zip(trajectory.first_key, trajectory.keys[-1])) if a != b), None)
    if moving is None or len(trajectory.keys) < 3:
        return False
    gaps = np.diff([key[moving] for key in trajectory.keys])
    return bool(np.abs(gaps - gaps.mean()).max() > 1e-3 * np.abs(gaps.mean()))


def _spanning(candidate: Candidate, num_steps: int) -> Candidate:
    """A forecaster with a time span (Spectrum's Chebyshev domain) spans this run's steps."""
    names = {f.name for f in dataclasses.fields(candidate.forecaster)}
    if "span" not in names:
        return candidate
    return Candidate(candidate.region, dataclasses.replace(candidate.forecaster, span=float(num_steps)),
                     candidate.variable)


def calibrate_auto(
    model: Any, run: Callable, budget: int | None, out: str | Path | None = None, *, effort: str | Effort = "default",
    lowering: str = "eager", max_elements: int = 16384, progress: bool = True,
) -> AutoCalibration:
    """Measure the candidates of ``effort`` on ``run`` and keep the best at ``budget`` full steps (module doc)."""
    effort = get_effort(effort)
    if budget is None or isinstance(budget, bool) or not isinstance(budget, int) or budget < 2:
        raise InvalidValueError("budget", budget, "the number of full steps per generation, an integer >= 2")
    with torch._dynamo.config.patch(**DYNAMO_LIMITS):
        return _Search(model, run, budget, effort, lowering, max_elements, progress).result(out)


class _Search:
    def __init__(self, model, run, budget: int, effort: Effort, lowering: str, max_elements: int, progress: bool):
        self.budget, self.effort = budget, effort
        started = time.perf_counter()
        first = final_sample(run_through(model, run, None))  # also warms up whatever runs once (the unit is a second)
        timed = time.perf_counter()
        reference = final_sample(run_through(model, run, None))
        self.uncached_seconds = time.perf_counter() - timed
        if not torch.equal(first, reference):
            raise InvalidValueError("run", "two uncached runs with different final samples", "a run that generates "
                                    "the same samples every time: fixed prompts and seeded generators")
        self.error = FinalError(reference)
        self.regions: dict[Region, _RegionRuns] = {}
        recording = time.perf_counter()
        for region in dict.fromkeys(c.region for c in effort.candidates):
            slots = max(c.forecaster.num_slots for c in effort.candidates if c.region is region)
            try:
                self.regions[region] = _RegionRuns(model, run, region, slots, lowering, max_elements)
            except CalibrationRunError:
                if region is Region.OUTPUT:  # the region every DiT has: nothing else would do better
                    raise
        self.recording_seconds = time.perf_counter() - recording
        self.search_seconds = 0.0
        self.cached_flops = 0.0
        first = next(iter(self.regions.values()))
        self.num_steps = first.num_steps
        if not 2 <= budget <= self.num_steps:
            raise InvalidValueError("budget", budget, f"an integer in 2..{self.num_steps} (the recorded step count)")
        self.uneven = _uneven(first.trajectories[0])
        self.candidates = tuple(_spanning(c, self.num_steps) for c in effort.candidates if c.region in self.regions)
        self.cached_runs = 0
        searched = len(self.candidates) if effort.searched is None else effort.searched + len(self.regions)
        total = (len(self.candidates) + (effort.refined + 1) * self.uneven + searched
                 + effort.refined * (effort.evaluations + effort.evaluations // 4)
                 + (len(FITTED_SLOTS) + effort.fitted) * (effort.fitted > 0))
        self.bar = tqdm(total=total, desc=f"auto: {len(self.candidates)} candidates at {budget} of {self.num_steps}",
                        disable=not progress)
        self.started = started

    def measure(self, candidate: Candidate, full_steps: tuple[int, ...]) -> float:
        self.cached_runs += 1
        self.bar.update()
        error, flops = self.regions[candidate.region].measure(candidate, tuple(full_steps), self.error)
        self.cached_flops += flops
        return error

    def result(self, out: str | Path | None) -> AutoCalibration:
        spread = spread_evenly(self.budget, self.num_steps)
        results = {c: CandidateResult(c, Measured(spread, self.measure(c, spread))) for c in self.candidates}
        ranked = sorted(results, key=lambda c: results[c].spread.error)
        if self.uneven:  # on an uneven grid the best ones also forecast in the timestep
            for c in with_timestep(ranked[: self.effort.refined + 1]):
                results[c] = CandidateResult(c, Measured(spread, self.measure(c, spread)))
            ranked = sorted(results, key=lambda c: results[c].spread.error)
        for c in self._to_search(ranked):
            searching = time.perf_counter()
            found = self.regions[c.region].exact_search(c, self.budget)
            self.search_seconds += time.perf_counter() - searching
            if found is not None:
                steps, predicted = found
                measured = Measured(steps, self.measure(c, steps) if steps != spread else results[c].spread.error)
                results[c] = dataclasses.replace(results[c], searched=measured, predicted=predicted,
                                                 evaluations=results[c].evaluations + (steps != spread))
        # successive halving: twice as many candidates get a quarter of the refinement, the better half the rest
        first = max(1, self.effort.evaluations // 4)
        for count, evaluations in ((2 * self.effort.refined, first), (self.effort.refined,
                                                                      self.effort.evaluations - first)):
            ranked = sorted(results, key=lambda c: results[c].best.error)
            for c in ranked[:count]:
                results[c] = self._refined(results[c], evaluations)
        fitted = self._fitted(min(results.values(), key=lambda r: r.best.error))
        if fitted is not None:
            results[fitted.candidate] = fitted
        self.bar.close()
        chosen = min(results, key=lambda c: results[c].best.error)
        best = results[chosen].best
        cost = Cost(2 + len(self.regions), self.cached_runs, time.perf_counter() - self.started,
                    self.uncached_seconds, self.recording_seconds, self.search_seconds, self.cached_flops)
        path = self._write(out, chosen, best, results, cost) if out is not None else None
        policy = get_policy("auto", schedule=str(path)) if path is not None else dataclasses.replace(
            get_policy("auto"), region=chosen.region, forecaster=chosen.forecaster, variable=chosen.variable,
            schedule=ExplicitSchedule(best.full_steps), num_steps=self.num_steps)
        return AutoCalibration(policy, chosen, best.full_steps, self.num_steps, self.budget, best.error,
                               self.error.psnr(best.error), self.error.peak, tuple(results.values()), cost,
                               self.effort.name, path)

    def _refined(self, result: CandidateResult, evaluations: int) -> CandidateResult:
        """``result`` refined on from its best set with ``evaluations`` more measurements."""
        start = result.best
        refined = refine(lambda steps: self.measure(result.candidate, steps), start.full_steps, self.num_steps,
                         evaluations, start_error=start.error)
        return dataclasses.replace(result, refined=Measured(refined.full_steps, refined.error),
                                   evaluations=result.evaluations + refined.evaluations)

    def _fitted(self, best: CandidateResult) -> CandidateResult | None:
        """Step 6: least-squares weights fitted to the best set found, in its candidate's region and variable;
        refined (refitted to every set measured) when they beat it, else kept in the table as measured."""
        if not self.effort.fitted:
            return None
        runs, steps = self.regions[best.candidate.region], best.best.full_steps
        tried = []
        for slots in FITTED_SLOTS:
            if slots <= runs.slots:
                template = Candidate(runs.region, LeastSquares(slots=slots), best.candidate.variable)
                tried.append((self.measure(runs.fitted(template, steps), steps), template))
        if not tried:
            return None
        error, template = min(tried, key=lambda t: t[0])
        start = Measured(steps, error)
        if error >= best.best.error:
            return CandidateResult(runs.fitted(template, steps), None, searched=start, evaluations=len(tried))
        refined = refine(lambda s: self.measure(runs.fitted(template, s), s), steps, self.num_steps,
                         self.effort.fitted, start_error=error)
        return CandidateResult(runs.fitted(template, refined.full_steps), None, searched=start,
                               refined=Measured(refined.full_steps, refined.error),
                               evaluations=len(tried) + refined.evaluations)

    def _to_search(self, ranked: list[Candidate]) -> list[Candidate]:
        """The screened candidates the exact search can take: all of them, or the effort's best and the best one of
        each region (which region a spread favours says little about which one a placed schedule favours)."""
        searchable = [c for c in ranked if c.forecaster.num_slots <= MAX_SEARCHED_SLOTS]
        if self.effort.searched is None:
            return searchable
        chosen = searchable[: self.effort.searched]
        for region in self.regions:
            chosen += [c for c in searchable if c.region is region][:1]
        return list(dict.fromkeys(chosen))

    def _write(self, out, chosen: Candidate, best: Measured, results: dict, cost: Cost) -> Path:
        runs = self.regions[chosen.region]
        traj = runs.trajectories[0]
        return write_calibration(out, {
            "full_steps": list(best.full_steps), "num_steps": self.num_steps, "budget": self.budget,
            "error": best.error, "policy": "auto", "region": chosen.region.value,
            "forecaster": forecaster_spec(chosen.forecaster), "variable": chosen.variable.value,
            "timesteps": [list(k) for k in traj.keys],
            "sampler_timesteps": common_grid(t.sampler_timesteps for t in runs.trajectories),
            "fingerprint": runs.fingerprint,
            "recorded": {"generations": len({g for g, _ in runs.recorder.trajectories}),
                         "contexts": sorted({c for _, c in runs.recorder.trajectories})},
            "auto": {
                "objective": "mean squared error of the final sample against the uncached one",
                "psnr_db": self.error.psnr(best.error), "effort": self.effort.name,
                "cost": {**dataclasses.asdict(cost), "generations": cost.generations,
                         "flop_generations": cost.flop_generations},
                "candidates": [_result_record(r, self.error) for r in results.values()],
            },
        })


def _result_record(result: CandidateResult, error: FinalError) -> dict:
    def measured(m: Measured | None) -> dict | None:
        return None if m is None else {"full_steps": list(m.full_steps), "mse": m.error, "psnr_db": error.psnr(m.error)}

    c = result.candidate
    return {"region": c.region.value, "forecaster": forecaster_spec(c.forecaster), "variable": c.variable.value,
            "spread": measured(result.spread), "searched": measured(result.searched),
            "predicted_feature_error": result.predicted, "refined": measured(result.refined),
            "runs": result.evaluations}


__all__ = ["AutoCalibration", "CalibrationRunError", "Candidate", "CandidateResult", "Cost", "Measured",
           "calibrate_auto"]
