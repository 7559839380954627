"""A calibrated schedule: the full-step set ``c4d calibrate`` chose on the user's own model, from a file.

The file is small JSON (``FORMAT``): the full steps, the step count and budget they are for, the
policy parts they were searched with (region, forecaster, variable), the timesteps of the recorded
run (as the model saw them, and the sampler's own grid when the run said it: ``sampler_timesteps``),
and a fingerprint of the graph and the cached features' shapes. Loading validates it; a file
made for another model, step count, region or forecaster gives a typed error naming the mismatch,
never a schedule silently applied to something else.

What transfers: a full-step set is chosen for one trajectory, so it is used only on the run it was
recorded on — the same step count, the same sampler grid (when both runs said it) and the same cached
feature shapes, batch excluded (the resolution, frame count and text length). Each is checked at the
first full call of every run (``check_run``), so also at a size a dynamic-shape graph serves without
compiling again; another batch size is accepted (the fingerprint leaves it out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError
from ...runtime.step_program import StepInfo, VariantKind
from ..validate import is_number
from .base import RunFacts, ScheduleBase, StepSetSchedule

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
    grid = data.get("sampler_timesteps", [])
    if not isinstance(grid, list) or not all(is_number(t) for t in grid) or len(grid) not in (0, total):
        raise CalibrationFileError(f"{path}: sampler_timesteps must be a list of {total} numbers (or empty)")
    return data


def write_calibration(path: str | Path, data: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, **data}, indent=1) + "\n")
    read_calibration(path)  # what we write, we can read
    return path


# how to make a file for the run at hand, in every refusal
_AGAIN = "c4d_compile.calibrate(pipe, run, policy, budget=N, out='file.json') on this run, or `c4d calibrate`"


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(1.0, abs(a), abs(b))


def _short(grid) -> str:
    """A sampler grid in a message: its first and last values and its length."""
    values = [f"{t:g}" for t in grid]
    shown = values if len(values) <= 6 else [*values[:3], "...", *values[-2:]]
    return f"[{', '.join(shown)}] ({len(values)} steps)"


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
        self._check_steps(num_steps)
        return self.full_steps

    def _check_steps(self, num_steps: int | None) -> None:
        if num_steps is not None and num_steps != self.data["num_steps"]:
            raise CalibrationFileError(
                f"{self.path} was calibrated for {self.data['num_steps']} steps, but this generation runs "
                f"{num_steps}: calibrate again for {num_steps} steps ({_AGAIN}), or use budget={self.data['budget']}"
            )

    def check_run(self, run: RunFacts) -> None:
        """The graph, the step count, the cached features' sizes and the sampler's grid of this run must be the
        recorded ones."""
        if run.graph:
            self.check_plan({"graph": run.graph, "features": self.data["fingerprint"].get("features")})
        self._check_steps(run.num_steps)
        recorded = [tuple(f[1]) for f in self.data["fingerprint"].get("features", [])]
        if run.shapes and recorded and not _same_sizes(recorded, run.shapes, self.data["fingerprint"], run.shards):
            i = next((i for i, (a, b) in enumerate(zip(recorded, run.shapes)) if a != b), 0)
            raise CalibrationFileError(
                f"{self.path} was calibrated on cached features of shape {list(recorded[i])} (feature {i}, batch dim "
                f"excluded), but this call's are {list(run.shapes[i])}: a full-step set chosen at one resolution, "
                f"frame count or text length is not reused at another; calibrate again at this size ({_AGAIN}), or "
                f"use budget={self.data['budget']} (placed evenly, at any size)"
            )
        grid = self.data.get("sampler_timesteps") or []
        if grid and run.timesteps and len(grid) == len(run.timesteps):
            i = next((i for i, (a, b) in enumerate(zip(grid, run.timesteps)) if not _same_time(a, b)), None)
            if i is not None:
                raise CalibrationFileError(
                    f"{self.path} was calibrated on the sampler timesteps {_short(grid)}, but this generation runs "
                    f"{_short(run.timesteps)} (step {i}: {run.timesteps[i]:g}, recorded {grid[i]:g}): another shift, "
                    f"sampler or strength, or a shift that follows the resolution; the full steps were chosen for the "
                    f"recorded grid: calibrate again with this sampler ({_AGAIN}), or use budget={self.data['budget']}"
                )

    def check_policy(self, region: str, forecaster: dict, variable: str) -> None:
        mine = {"region": region, "forecaster": forecaster, "variable": variable}
        for key, value in mine.items():
            if self.data[key] != json.loads(json.dumps(value)):  # as the file has it (a tuple reads back a list)
                raise CalibrationFileError(
                    f"{self.path} was calibrated with {key} {self.data[key]!r}, but the policy has {value!r}"
                )

    def check_plan(self, fingerprint: dict) -> None:
        recorded = self.data["fingerprint"]
        if recorded.get("graph") != fingerprint.get("graph"):
            raise CalibrationFileError(f"{self.path} was calibrated for another model (graph {recorded.get('graph')}, "
                                       f"this one {fingerprint.get('graph')}): calibrate again ({_AGAIN})")
        mine, theirs = fingerprint.get("features") or [], recorded.get("features") or []
        kinds_and_dtypes = lambda features: [(f[0], f[2]) for f in features]  # noqa: E731 (sizes: _same_sizes)
        if kinds_and_dtypes(mine) != kinds_and_dtypes(theirs) or not _same_sizes(
                [f[1] for f in theirs], [f[1] for f in mine], recorded, fingerprint.get("shards")):
            i = next((i for i, (a, b) in enumerate(zip(theirs, mine)) if a != b), min(len(mine), len(theirs)))
            shape = lambda features: features[i][1] if i < len(features) else None  # noqa: E731
            raise CalibrationFileError(
                f"{self.path} was calibrated for other feature shapes (resolution, frame count, text length) than "
                f"this graph: feature {i} of shape {shape(theirs)} recorded, {shape(mine)} here (batch dim excluded); "
                f"calibrate again at this size ({_AGAIN})"
            )

    def describe(self) -> str:
        return f"calibrated {list(self.full_steps)} from {self.path}"


def _same_sizes(recorded: list, mine: list, recorded_fingerprint: dict, my_shards: dict | None) -> bool:
    """Whether the cached features' sizes (batch dim excluded) are the recorded ones, where a feature held as a
    shard under context parallelism (``shards`` in a fingerprint: the features and the world size) counts its one
    split dim whole: a schedule calibrated in one process holds on every rank, and the other way round."""
    if len(recorded) != len(mine):
        return False

    def world(shards: dict | None, i: int) -> int:
        return shards["world"] if shards and i in shards["features"] else 1

    for i, (a, b) in enumerate(zip(recorded, mine)):
        a, b = list(a), list(b)
        if a == b:
            continue
        split = [d for d in range(len(a)) if a[d] != b[d]] if len(a) == len(b) else []
        if len(split) != 1:
            return False
        d = split[0]
        if a[d] * world(recorded_fingerprint.get("shards"), i) != b[d] * world(my_shards, i):
            return False
    return True
