"""A calibrated schedule: the full-step set ``c4d calibrate`` chose on the user's own model, from a file.

The file is small JSON (``FORMAT``): the full steps, the step count and budget they are for, the
policy parts they were searched with (region, forecaster, variable), the timesteps of the recorded
run, and a fingerprint of the graph and the cached features' shapes. Loading validates it; a file
made for another model, step count, region or forecaster gives a typed error naming the mismatch,
never a schedule silently applied to something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError
from ...step_program import StepInfo, VariantKind
from .base import ScheduleBase, StepSetSchedule

FORMAT = "c4d-calibrated-schedule/1"
_REQUIRED = {
    "format": str, "full_steps": list, "num_steps": int, "budget": int, "region": str, "forecaster": dict,
    "variable": str, "timesteps": list, "fingerprint": dict,
}


class CalibrationFileError(ConfigError):
    """A calibrated schedule file that cannot be read or does not fit the model, run or policy."""


class CalibrationRequiredError(ConfigError):
    """A fitted policy ("auto") was asked to run without the calibration file that says what it runs."""

    def __init__(self) -> None:
        super().__init__(
            "the 'auto' policy runs what calibration chose on your model (region, forecaster, variable and full "
            "steps): calibrate once with c4d_compile.calibrate(model_or_pipe, run, 'auto', budget=N, out='auto.json') "
            "or `c4d calibrate MODEL --policy auto --budget N --out auto.json`, then use "
            "c4d_backend('auto', schedule='auto.json')"
        )


@dataclass(frozen=True)
class CalibrationRequired(ScheduleBase):
    """The schedule of a fitted policy before it is given its calibration file: nothing can run yet."""

    kind: ClassVar[str] = "calibration required"

    def check_ready(self) -> None:
        raise CalibrationRequiredError()

    def decide(self, info: StepInfo) -> VariantKind:
        raise CalibrationRequiredError()

    def planned(self, num_steps: int) -> tuple[int, ...]:
        raise CalibrationRequiredError()

    def describe(self) -> str:
        return "chosen by calibration on your model (schedule='file.json' from `c4d calibrate --policy auto`)"


def read_calibration(path: str | Path) -> dict[str, Any]:
    """The validated contents of a calibration file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise CalibrationFileError(f"cannot read calibrated schedule {str(path)!r}: {err}") from None
    if not isinstance(data, dict):
        raise CalibrationFileError(f"{path}: not a calibrated schedule (expected a JSON object)")
    if data.get("format") != FORMAT:
        raise CalibrationFileError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise CalibrationFileError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    steps, total = data["full_steps"], data["num_steps"]
    if (
        not steps or steps[0] != 0 or any(not isinstance(s, int) or isinstance(s, bool) for s in steps)
        or any(b <= a for a, b in zip(steps, steps[1:])) or steps[-1] >= total or len(steps) != data["budget"]
    ):
        raise CalibrationFileError(
            f"{path}: full_steps {steps} must be sorted distinct steps from 0, below num_steps {total}, "
            f"budget {data['budget']} of them"
        )
    return data


def write_calibration(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, **data}, indent=1) + "\n")
    read_calibration(path)  # what we write, we can read
    return path


@dataclass(frozen=True)
class CalibratedSchedule(StepSetSchedule):
    path: str = ""
    data: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    kind: ClassVar[str] = "calibrated"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "data", read_calibration(self.path))

    def __hash__(self) -> int:
        return hash((self.kind, self.path, tuple(self.data["full_steps"])))

    @property
    def full_steps(self) -> tuple[int, ...]:
        return tuple(self.data["full_steps"])

    def planned(self, num_steps: int) -> tuple[int, ...]:
        if num_steps != self.data["num_steps"]:
            raise CalibrationFileError(
                f"{self.path} was calibrated for {self.data['num_steps']} steps, but this generation runs "
                f"{num_steps}: calibrate again for {num_steps} steps, or use budget={self.data['budget']}"
            )
        return self.full_steps

    def check_policy(self, region: str, forecaster: dict, variable: str) -> None:
        mine = {"region": region, "forecaster": forecaster, "variable": variable}
        for key, value in mine.items():
            if self.data[key] != value:
                raise CalibrationFileError(
                    f"{self.path} was calibrated with {key} {self.data[key]!r}, but the policy has {value!r}"
                )

    def check_plan(self, fingerprint: dict) -> None:
        recorded = self.data["fingerprint"]
        for key in ("graph", "features"):
            if recorded.get(key) != fingerprint.get(key):
                what = ("another model (graph)" if key == "graph"
                        else "other feature shapes (resolution, text length)")
                raise CalibrationFileError(f"{self.path} was calibrated for {what} than this graph: calibrate again")

    def describe(self) -> str:
        return f"calibrated {list(self.full_steps)} from {self.path}"
