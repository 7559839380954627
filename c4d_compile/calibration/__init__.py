"""Calibration: choose the full steps of a budget on the user's own model, by an exact search.

    c4d_compile.calibrate(pipe, lambda p: p(prompt, num_inference_steps=28), "taylorseer", budget=8,
                          out="taylorseer-8of28.json")
    backend = c4d_compile.enable_cache(pipe, "taylorseer", schedule="taylorseer-8of28.json")

One or a few uncached generations are recorded (``record.py``), and the full-step set that
minimises the forecaster's error on the recorded trajectory of the cached features is found by a
dynamic programme (``search.py``). Calibrate on prompts / seeds you will not evaluate on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..compiler.backend import C4DBackend
from ..errors import InvalidValueError, UnknownOptionError
from ..policies import Policy, forecaster_spec, get_policy
from ..policies.schedules import IntervalSchedule, MagnitudeSchedule, SignalSchedule, write_calibration
from .auto import AutoCalibration, calibrate_auto
from .magnitude import RatiosCalibration, calibrate_ratios
from .record import TrajectoryRecorder, common_grid
from .rescale import RescaleCalibration, calibrate_rescale
from .running import run_through
from .search import best_full_steps, gram, step_costs

__all__ = ["AutoCalibration", "Calibration", "RatiosCalibration", "RescaleCalibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    full_steps: tuple[int, ...]
    num_steps: int
    budget: int
    error: float  # the search's objective at the optimum (normalised squared forecast error, summed)
    policy: Policy
    path: Path | None

    def overrides(self) -> dict[str, Any]:
        """Options that use this schedule: ``c4d_backend(policy, **cal.overrides())``."""
        return {"schedule": str(self.path)} if self.path else {"full_steps": self.full_steps}


def calibrate(
    model: Any, run: Callable, policy: str | Policy = "taylorseer", *, budget: int | None = None,
    out: str | Path | None = None, max_elements: int = 16384, **options: Any,
) -> Calibration | RatiosCalibration | RescaleCalibration | AutoCalibration:
    """Record ``run`` uncached and calibrate ``policy`` on it: for a step-set policy, search the best
    ``budget`` full steps; for ``magcache``, record the magnitude ratios its schedule reads; for a
    probed signal policy (``teacache``, ``fbcache``, ...), fit the polynomial that rescales its signal
    (no budget for either).

    ``model``: a diffusers pipeline (``run(pipe)`` runs one or more generations) or a transformer
    module (``run(call)`` samples with ``call`` standing in for it). Every generation must run the same
    number of steps. Options are policy overrides (``region``, ``order``, ``variable``, ...); the
    schedule options are ignored while recording (every step is computed).
    """
    if policy == "auto":
        unknown = sorted(set(options) - _AUTO_OPTIONS)
        if unknown:
            raise UnknownOptionError(unknown[0], _AUTO_OPTIONS, where="calibrate('auto')")
        return calibrate_auto(model, run, budget, out, max_elements=max_elements, **options)
    searched = get_policy(policy, **options)
    adaptive = _ADAPTIVE.get(type(searched.schedule))
    if adaptive is not None:
        return adaptive(model, run, searched, out, _record_with)
    if budget is None:
        raise InvalidValueError("budget", budget, f"the number of full steps to choose (the {searched.name!r} "
                                "schedule is a set of full steps)")
    recorder = TrajectoryRecorder(max_elements)
    _record_with(model, run, searched.with_overrides(schedule=IntervalSchedule(interval=1)), recorder)
    trajectories = list(recorder.trajectories.values())
    if not trajectories:
        raise InvalidValueError("run", run, "a callable that runs at least one generation through the model")
    lengths = {len(t.steps) for t in trajectories}
    if len(lengths) != 1 or len(recorder.fingerprints) != 1:
        raise InvalidValueError("recorded generations", sorted(lengths),
                                "generations of one step count through one graph (calibrate each setting apart)")
    num_steps = lengths.pop()
    num_features = len(trajectories[0].samples[0])
    costs = step_costs([(t, gram(t, num_features)) for t in trajectories], searched.forecaster, searched.variable,
                       num_steps)
    full_steps, error = best_full_steps(costs, searched.forecaster.num_slots, budget, num_steps)
    path = None
    if out is not None:
        path = write_calibration(out, {
            "full_steps": list(full_steps), "num_steps": num_steps, "budget": budget, "error": error,
            "policy": searched.name, "region": searched.region.value,
            "forecaster": forecaster_spec(searched.forecaster), "variable": searched.variable.value,
            "timesteps": [list(k) for k in trajectories[0].keys],
            "sampler_timesteps": common_grid(t.sampler_timesteps for t in trajectories),
            "fingerprint": recorder.fingerprints[0],
            "recorded": {"generations": len({g for g, _ in recorder.trajectories}),
                         "contexts": sorted({c for _, c in recorder.trajectories})},
        })
    return Calibration(full_steps, num_steps, budget, error, searched, path)


_AUTO_OPTIONS = {"effort", "lowering", "progress"}  # what calibrate_auto takes beside the budget

# Adaptive schedules calibrate what their decision reads, not a set of full steps: per schedule class.
_ADAPTIVE = {MagnitudeSchedule: calibrate_ratios, SignalSchedule: calibrate_rescale}


def _record_with(model: Any, run: Callable, policy: Policy, recorder: Callable) -> None:
    """Run ``run`` through a backend that computes every step and hands each full step to ``recorder``."""
    backend = C4DBackend(policy, lowering="eager")
    backend.session.recorders.append(recorder)
    run_through(model, run, backend)
