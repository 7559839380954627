"""Policy = region + forecaster + schedule + the forecast variable, as frozen dataclasses.

Every field that changes the compiled variants or the schedule is explicit here. Overrides are
flat keyword arguments (``budget=8, order=2``) routed to the one part that owns the field; an
unknown name is rejected with the list of valid ones, never dropped. Schedule fields select the
schedule kind that owns them (``budget=`` a budget, ``full_steps=`` an explicit set, ``warmup=`` the
papers' warm-up + interval); ``schedule="paper"`` restores the paper's settings of the preset and
``schedule="file.json"`` loads a calibrated schedule.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, InvalidValueError, UnknownOptionError
from . import forecasters
from .forecasters import Forecaster
from .schedules import SCHEDULE_KINDS, CalibratedSchedule, Schedule
from .tokens import TokenSubset
from .validate import check_int, parse_enum
from .variable import Variable


class Region(str, enum.Enum):
    """What a policy caches."""

    OUTPUT = "output"  # the model output (TaylorSeer-Lite, AB-Cache)
    STACK = "stack"  # the residual of the whole block stack (TeaCache / MagCache region)
    BRANCH = "branch"  # every residual branch F of every block (TaylorSeer, FoCa, ...)


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.compare}


_SCHEDULE_FIELDS = {f.name for kind in SCHEDULE_KINDS for f in dataclasses.fields(kind) if f.compare}
_POLICY_FIELDS = ("region", "variable", "num_steps", "schedule")
_TOKEN_FIELDS = {f.name for f in dataclasses.fields(TokenSubset)}


def forecaster_spec(forecaster: Forecaster) -> dict[str, Any]:
    """The forecaster as data: its type and fields (what a calibration file records)."""
    return {"type": type(forecaster).__name__, **_fields(forecaster)}


def forecaster_from_spec(spec: Mapping[str, Any]) -> Forecaster:
    """The forecaster a ``forecaster_spec`` describes; an unknown type names the known ones."""
    types = forecaster_types()
    fields = dict(spec)
    kind = fields.pop("type", None)
    if kind not in types:
        raise InvalidValueError("forecaster type", kind, f"one of {', '.join(sorted(types))}")
    return types[kind](**fields)


def forecaster_types() -> dict[str, type]:
    """Every forecaster class of the library, by class name (what ``forecaster_spec`` writes)."""
    return {name: getattr(forecasters, name) for name in forecasters.__all__ if name != "Forecaster"}


@dataclass(frozen=True)
class Policy:
    """A named, complete caching configuration. Presets are instances of this class."""

    name: str
    region: Region
    forecaster: Forecaster
    schedule: Schedule
    variable: Variable = Variable.STEP
    num_steps: int | None = None  # sampler steps per generation, for bare loops that cannot say otherwise
    tokens: TokenSubset | None = None  # partial calls: token-local branches recomputed on a few token rows
    paper: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # schedule="paper"
    description: str = ""
    source: str = ""
    # Region, forecaster and variable are read from the calibration file given as ``schedule=`` ("auto"): what
    # ``calibrate`` chose on the user's model, not fixed by the preset.
    fitted: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "region", parse_enum(Region, "region", self.region))
        object.__setattr__(self, "variable", parse_enum(Variable, "variable", self.variable))
        if self.num_steps is not None:
            check_int("num_steps", self.num_steps, 1)
        if self.tokens is not None and self.region is not Region.BRANCH:
            raise ConfigError(f"token subsets recompute token-local residual branches: use them with region='branch', "
                              f"not {self.region.value!r}")
        if isinstance(self.schedule, CalibratedSchedule):
            self.schedule.check_policy(self.region.value, forecaster_spec(self.forecaster), self.variable.value)

    def valid_options(self) -> list[str]:
        return sorted({*_POLICY_FIELDS, *_SCHEDULE_FIELDS, *_fields(self.forecaster), *_TOKEN_FIELDS})

    def options(self) -> dict[str, Any]:
        """Every option that is set, with its current value."""
        opts: dict[str, Any] = {"region": self.region.value, "variable": self.variable.value,
                                "num_steps": self.num_steps, "schedule": self.schedule.kind}
        opts.update(_fields(self.schedule))
        opts.update(_fields(self.forecaster))
        if self.tokens is not None:
            opts.update(_fields(self.tokens))
        return {k: v.value if isinstance(v, enum.Enum) else v for k, v in opts.items()}

    def with_overrides(self, **overrides: Any) -> Policy:
        if not overrides:
            return self
        given = overrides.get("schedule")
        if self.fitted and isinstance(given, (str, os.PathLike)) and str(given).endswith(".json"):
            rest = {k: v for k, v in overrides.items() if k != "schedule"}  # what the file chose, then the rest
            return self._adopt(CalibratedSchedule(str(given))).with_overrides(**rest)
        if self.fitted and not isinstance(self.schedule, CalibratedSchedule):
            self.schedule.check_ready()  # nothing else to configure before the file says what runs
        valid = self.valid_options()
        for key in overrides:
            if key not in valid:
                raise UnknownOptionError(key, valid)
        changes: dict[str, Any] = {}
        if "schedule" in overrides:
            value = overrides.pop("schedule")
            if isinstance(value, str) and value == "paper":  # the paper's settings, explicit overrides on top
                return self.with_overrides(**{**self.paper, **overrides})
            changes["schedule"] = _schedule_from(value)
        for key in ("region", "variable", "num_steps"):
            if key in overrides:
                changes[key] = overrides[key]
        schedule_fields = {k: v for k, v in overrides.items() if k in _SCHEDULE_FIELDS}
        if schedule_fields:
            changes["schedule"] = _reschedule(changes.get("schedule", self.schedule), schedule_fields)
        forecaster_fields = {k: v for k, v in overrides.items() if k in _fields(self.forecaster)}
        if forecaster_fields:
            changes["forecaster"] = dataclasses.replace(changes.get("forecaster", self.forecaster),
                                                        **forecaster_fields)
        token_fields = {k: v for k, v in overrides.items() if k in _TOKEN_FIELDS}
        if token_fields:  # on a preset without token subsets, they turn them on
            changes["tokens"] = dataclasses.replace(self.tokens or TokenSubset(), **token_fields)
        return dataclasses.replace(self, **changes)  # one replace: a calibrated file is checked once, at the end

    def _adopt(self, schedule: CalibratedSchedule) -> Policy:
        """A fitted policy on a calibration file: the region, forecaster and variable the file records."""
        chosen = schedule.data
        return dataclasses.replace(self, schedule=schedule, region=chosen["region"], variable=chosen["variable"],
                                   forecaster=forecaster_from_spec(chosen["forecaster"]), num_steps=chosen["num_steps"])


def _schedule_from(value: Any) -> Schedule:
    if isinstance(value, (str, os.PathLike)) and str(value).endswith(".json"):
        return CalibratedSchedule(str(value))
    if not isinstance(value, str) and all(hasattr(value, name) for name in ("kind", "decide", "planned")):
        return value
    raise InvalidValueError(
        "schedule", value, "'paper', the path of a calibrated schedule (.json), or a schedule object"
    )


def _reschedule(current: Schedule, fields: dict[str, Any]) -> Schedule:
    """Apply schedule fields: to the current kind if it has them all, else to the kind that does."""
    names = set(fields)
    if dataclasses.is_dataclass(current) and names <= set(_fields(current)):
        return dataclasses.replace(current, **fields)
    owners = [kind for kind in SCHEDULE_KINDS if names <= {f.name for f in dataclasses.fields(kind)}]
    if not owners:
        by_kind = {kind.kind: sorted(names & {f.name for f in dataclasses.fields(kind)}) for kind in SCHEDULE_KINDS}
        raise ConfigError(
            f"options {sorted(names)} belong to different schedule kinds ({by_kind}); give the options of one kind"
        )
    kind = owners[0]
    carried = {k: v for k, v in _fields(current).items() if k in {f.name for f in dataclasses.fields(kind)}}
    return kind(**{**carried, **fields})
