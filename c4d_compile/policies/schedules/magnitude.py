"""MagCache's schedule (arXiv 2506.09045): skip while the accumulated change of the residual's magnitude
stays small, from ratios recorded once on the user's own model.

The ratios are ``gamma_s = mean over tokens of |R_s| / |R_{s-1}|`` of the stack residual over one
uncached generation (``c4d calibrate --policy magcache``). A run of another step count or sampler grid
reads them resampled (``ratios_for``):

* by timestep, when the file recorded the sampler's grid (``sampler_timesteps``: calibration through
  ``enable_cache``, or a loop that calls ``begin_generation(timesteps)``) and the run says its own: each
  step takes the ratio recorded at the nearest recorded timestep. On the recorded grid these are the
  recorded ratios; on the same sampler at another step count it is MagCache's nearest-index resampling
  measured in the sampler's time instead of the step index (the two differ where the grids' ends do: a
  6-step flow grid ends at sigma 1/6, a 26-step one at 1/26); image-to-image, which runs the tail of the
  grid, reads the tail of the curve, and a shift that follows the resolution (Flux) reads each step where
  the sampler is;
* else by the normalised step position, nearest index (MagCache's ``nearest_interp``).

A run that reaches timesteps the recorded one never came near (more than one recorded step beyond either
end, e.g. ratios recorded at image-to-image strength 0.5 used at full strength) is refused
(``RatiosTransferError``). Sizes transfer: a ratio is a mean over tokens of per-token norms, and MagCache
applies one curve per model at every resolution and frame count. A step computes in full when

    step < round(retention * T), or no history yet, or, with Gamma the product of gamma since the last
    full step and E the sum of |1 - Gamma| over those steps, E > threshold or more than max_skip steps

so the decision is a pure function of the step, the last full step, the ratios and the run's grid, taken on the host
before the call: no probe, no device read. ``threshold=0`` always computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, InvalidValueError
from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_int, check_number, is_number
from .base import MissingStepCountError, RunFacts, ScheduleBase
from .files import check_same_graph, field_from_file, read_tagged, write_tagged

FORMAT = "c4d-magnitude-ratios/1"


class RatiosMissingError(ConfigError):
    def __init__(self) -> None:
        super().__init__(
            "the magcache schedule needs the magnitude ratios of your model: record them once with "
            "`c4d calibrate MODEL --policy magcache --out ratios.json` (or c4d_compile.calibrate(model, run, "
            "'magcache', out='ratios.json')) and pass ratios='ratios.json'"
        )


class RatiosTransferError(ConfigError):
    """Magnitude ratios used on a run that reaches timesteps the recorded run never came near."""


def read_ratios(path: str | Path) -> dict[str, Any]:
    data = read_tagged(path, FORMAT, "magnitude-ratios")
    ratios = data.get("ratios")
    if not isinstance(ratios, list) or len(ratios) < 2 or not all(is_number(r) and r > 0 for r in ratios):
        raise ConfigError(f"{path}: 'ratios' must be a list of at least 2 finite positive numbers")
    grid = data.get("sampler_timesteps", [])
    if not isinstance(grid, list) or not all(is_number(t) for t in grid) or len(grid) not in (0, len(ratios)):
        raise ConfigError(f"{path}: 'sampler_timesteps' must be a list of {len(ratios)} numbers (or empty)")
    return data


def write_ratios(path: str | Path, data: dict[str, Any]) -> Path:
    return write_tagged(path, FORMAT, data, read_ratios)


def resample(ratios: tuple[float, ...], num_steps: int) -> tuple[float, ...]:
    """Nearest-index resampling of a ratio curve to ``num_steps`` values (MagCache's nearest_interp)."""
    if num_steps == len(ratios):
        return ratios
    if num_steps == 1:
        return ratios[:1]
    scale = (len(ratios) - 1) / (num_steps - 1)
    return tuple(ratios[min(len(ratios) - 1, int(math.floor(i * scale + 0.5)))] for i in range(num_steps))


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(1.0, abs(a), abs(b))


def by_time(ratios: tuple[float, ...], recorded: tuple[float, ...], timesteps: tuple[float, ...]) -> tuple[float, ...]:
    """``ratios``, recorded at the sampler timesteps ``recorded``, for a run over ``timesteps``: each step takes
    the ratio of the nearest recorded timestep. Between two equally near ones, the one nearer its normalised step
    position (halves up, as ``resample`` rounds); a timestep recorded several times (Heun evaluates each twice)
    gives its ratios in turn. The recorded grid gets the recorded ratios back."""
    if len(timesteps) == len(recorded) and all(_same_time(a, b) for a, b in zip(recorded, timesteps)):
        return ratios
    last, out, used = len(recorded) - 1, [], {}
    for j, t in enumerate(timesteps):
        position = j * last / max(1, len(timesteps) - 1)
        nearest = min(abs(r - t) for r in recorded)
        ties = [k for k, r in enumerate(recorded) if abs(r - t) <= nearest + 1e-9 * max(1.0, abs(t))]
        value = recorded[min(ties, key=lambda k: (abs(k - position), -k))]
        same = [k for k in ties if recorded[k] == value]
        out.append(ratios[same[min(used.get(value, 0), len(same) - 1)]])
        used[value] = used.get(value, 0) + 1
    return tuple(out)


@dataclass(frozen=True)
class MagnitudeSchedule(ScheduleBase):
    threshold: float = 0.06
    max_cached_in_row: int = 3  # MagCache's K; 0: no limit
    retention: float = 0.2
    ratios: Any = ()  # the recorded curve, or the path of a ratios file
    source: str = field(default="", compare=False)
    graph: str = field(default="", compare=False)  # fingerprint of the graph the file's ratios were recorded on
    # the sampler's timesteps the file's ratios were recorded at (empty: not known, resampled by step position)
    recorded_timesteps: tuple = field(default=(), compare=False)
    kind: ClassVar[str] = "magnitude"

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, 0, note="0: always compute")
        check_int("max_cached_in_row", self.max_cached_in_row, 0)
        check_number("retention", self.retention, 0, 1)
        data: dict = {}
        ratios = field_from_file(self, self.ratios, lambda path: data.update(read_ratios(path)) or data, "ratios")
        if data:
            object.__setattr__(self, "recorded_timesteps", tuple(float(t) for t in data.get("sampler_timesteps", [])))
        object.__setattr__(self, "_resampled", {})  # (num_steps, the run's timesteps) -> ratios per step
        if not isinstance(ratios, (tuple, list)) or not all(is_number(r) and r > 0 for r in ratios):
            raise InvalidValueError("ratios", self.ratios, "recorded magnitude ratios (positive numbers) or the "
                                    "path of a ratios file from `c4d calibrate --policy magcache`")
        object.__setattr__(self, "ratios", tuple(float(r) for r in ratios))

    def check_plan(self, fingerprint: dict) -> None:
        if not self.ratios:
            raise RatiosMissingError()
        check_same_graph(self, fingerprint, "magnitude ratios")

    def ratios_for(self, num_steps: int, timesteps: tuple[float, ...] = ()) -> tuple[float, ...]:
        """The ratio of each step of a run of ``num_steps`` over the sampler's ``timesteps`` (when known): by timestep
        when the recorded grid is known too, else by the normalised step position (module docstring)."""
        key = (num_steps, timesteps)
        found = self._resampled.get(key)
        if found is None:
            if len(self._resampled) > 256:
                self._resampled.clear()
            if self.recorded_timesteps and len(timesteps) == num_steps:
                found = by_time(self.ratios, self.recorded_timesteps, tuple(float(t) for t in timesteps))
            else:
                found = resample(self.ratios, num_steps)
            self._resampled[key] = found
        return found

    def check_run(self, run: RunFacts) -> None:
        """Refuse another model's graph, and a run that reaches timesteps more than one recorded step beyond the
        recorded run's range."""
        if run.graph:
            check_same_graph(self, {"graph": run.graph}, "magnitude ratios")
        recorded = sorted(self.recorded_timesteps)
        if len(recorded) < 2 or not run.timesteps:
            return
        slack = 1e-6 * max(1.0, abs(recorded[0]), abs(recorded[-1]))
        low = recorded[0] - (recorded[1] - recorded[0]) - slack
        high = recorded[-1] + (recorded[-1] - recorded[-2]) + slack
        outside = next(((j, t) for j, t in enumerate(run.timesteps) if not low <= t <= high), None)
        if outside is not None:
            j, t = outside
            raise RatiosTransferError(
                f"the magnitude ratios{f' in {self.source!r}' if self.source else ''} were recorded over sampler "
                f"timesteps {self.recorded_timesteps[0]:g} to {self.recorded_timesteps[-1]:g} "
                f"({len(self.recorded_timesteps)} steps), but step {j} of this generation is at {t:g}, where no ratio "
                f"was measured: record them on a run that covers it (`c4d calibrate MODEL --policy magcache --out "
                f"ratios.json`, or c4d_compile.calibrate(pipe, run, 'magcache', out='ratios.json') with this sampler; "
                f"image-to-image: at full strength)"
            )

    def decide(self, info: StepInfo) -> VariantKind:
        if not self.ratios:
            raise RatiosMissingError()
        if info.num_steps is None:
            raise MissingStepCountError(self.kind)
        if not info.full_steps or info.step < round(self.retention * info.num_steps):
            return VariantKind.FULL
        ratios = self.ratios_for(info.num_steps, info.timesteps)
        gamma, error, skipped = 1.0, 0.0, 0
        for s in range(info.full_steps[-1] + 1, info.step + 1):
            gamma *= ratios[min(s, len(ratios) - 1)]
            error += abs(1.0 - gamma)
            skipped += 1
        too_many = self.max_cached_in_row and skipped > self.max_cached_in_row
        return VariantKind.CACHED if error <= self.threshold and not too_many else VariantKind.FULL

    def planned(self, num_steps: int, timesteps: tuple[float, ...] = ()) -> tuple[int, ...]:
        full: list[int] = []
        for step in range(num_steps):
            if self.decide(StepInfo(step, num_steps, tuple(full), (), timesteps)) is VariantKind.FULL:
                full.append(step)
        return tuple(full)

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        how = "by timestep" if self.recorded_timesteps else "by step position"
        return (f"magnitude ratios ({len(self.ratios)} recorded{where}, resampled to each run {how}): accumulated "
                f"error <= {self.threshold:g}, "
                f"at most {self.max_cached_in_row or 'any'} cached in a row, first {self.retention:g} of the steps "
                "full")
