"""MagCache's schedule (arXiv 2506.09045): skip while the accumulated change of the residual's magnitude
stays small, from ratios recorded once on the user's own model.

The ratios are ``gamma_s = mean over tokens of |R_s| / |R_{s-1}|`` of the stack residual over one
uncached generation (``c4d calibrate --policy magcache``), resampled to the run's step count by the
nearest index, as the reference code does. A step computes in full when

    step < round(retention * T), or no history yet, or, with Gamma the product of gamma since the last
    full step and E the sum of |1 - Gamma| over those steps, E > threshold or more than max_skip steps

so the decision is a pure function of the step, the last full step and the ratios, taken on the host
before the call: no probe, no device read. ``threshold=0`` always computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, InvalidValueError
from ...step_program import StepInfo, VariantKind
from ..validate import check_int, check_number, is_number
from .base import MissingStepCountError, ScheduleBase
from .files import check_same_graph, field_from_file, read_tagged, write_tagged

FORMAT = "c4d-magnitude-ratios/1"


class RatiosMissingError(ConfigError):
    def __init__(self) -> None:
        super().__init__(
            "the magcache schedule needs the magnitude ratios of your model: record them once with "
            "`c4d calibrate MODEL --policy magcache --out ratios.json` (or c4d_compile.calibrate(model, run, "
            "'magcache', out='ratios.json')) and pass ratios='ratios.json'"
        )


def read_ratios(path: str | Path) -> dict[str, Any]:
    data = read_tagged(path, FORMAT, "magnitude-ratios")
    ratios = data.get("ratios")
    if not isinstance(ratios, list) or len(ratios) < 2 or not all(is_number(r) and r > 0 for r in ratios):
        raise ConfigError(f"{path}: 'ratios' must be a list of at least 2 finite positive numbers")
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


@dataclass(frozen=True)
class MagnitudeSchedule(ScheduleBase):
    threshold: float = 0.06
    max_cached_in_row: int = 3  # MagCache's K; 0: no limit
    retention: float = 0.2
    ratios: Any = ()  # the recorded curve, or the path of a ratios file
    source: str = field(default="", compare=False)
    graph: str = field(default="", compare=False)  # fingerprint of the graph the file's ratios were recorded on
    kind: ClassVar[str] = "magnitude"

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, 0, note="0: always compute")
        check_int("max_cached_in_row", self.max_cached_in_row, 0)
        check_number("retention", self.retention, 0, 1)
        ratios = field_from_file(self, self.ratios, read_ratios, "ratios")
        if not isinstance(ratios, (tuple, list)) or not all(is_number(r) and r > 0 for r in ratios):
            raise InvalidValueError("ratios", self.ratios, "recorded magnitude ratios (positive numbers) or the "
                                    "path of a ratios file from `c4d calibrate --policy magcache`")
        object.__setattr__(self, "ratios", tuple(float(r) for r in ratios))

    def check_plan(self, fingerprint: dict) -> None:
        if not self.ratios:
            raise RatiosMissingError()
        check_same_graph(self, fingerprint, "magnitude ratios")

    def decide(self, info: StepInfo) -> VariantKind:
        if not self.ratios:
            raise RatiosMissingError()
        if info.num_steps is None:
            raise MissingStepCountError(self.kind)
        if not info.full_steps or info.step < round(self.retention * info.num_steps):
            return VariantKind.FULL
        ratios = resample(self.ratios, info.num_steps)
        gamma, error, skipped = 1.0, 0.0, 0
        for s in range(info.full_steps[-1] + 1, info.step + 1):
            gamma *= ratios[min(s, len(ratios) - 1)]
            error += abs(1.0 - gamma)
            skipped += 1
        too_many = self.max_cached_in_row and skipped > self.max_cached_in_row
        return VariantKind.CACHED if error <= self.threshold and not too_many else VariantKind.FULL

    def planned(self, num_steps: int) -> tuple[int, ...]:
        full: list[int] = []
        for step in range(num_steps):
            if self.decide(StepInfo(step, num_steps, tuple(full))) is VariantKind.FULL:
                full.append(step)
        return tuple(full)

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return (f"magnitude ratios ({len(self.ratios)} recorded{where}): accumulated error <= {self.threshold:g}, "
                f"at most {self.max_cached_in_row or 'any'} cached in a row, first {self.retention:g} of the steps "
                "full")
