"""The matrices ``c4d bench`` knows, and turning names into methods.

* FULL / QUICK: every preset at its defaults and every peer at its own settings.
* BUDGETS: equal compute. Per budget n (full computations of a 50-step run), ``policy="auto"`` calibrated
  at n (default and fast effort), every preset with its default schedule (``budget=n``), with the paper's
  schedule shape at n (``schedule="paper"``) and with a schedule calibrated at n on a seed the bench never
  scores, against the peers' TaylorSeer variants set to n and the uncached model run with ceil(each row's
  FLOP-equivalent steps); on the trained models, on the uniform and the shifted (Flux-style, shift 3)
  sampler grid.
* SIGNALS: the signal-driven presets at several thresholds (magcache on ratios recorded on the
  calibration seed), against the peers' signal-driven caches at
  the same thresholds (diffusers' FirstBlockCache and MagCache, cache-dit's DBCache with and without its
  TaylorSeer calibrator) and the library's default fixed-schedule preset at a few budgets; every row's
  compute fixes its fewer-steps baseline.
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from typing import Any

from ..compiler.settings import Settings
from ..errors import InvalidValueError
from ..policies import get_policy, list_policies
from ..policies.schedules import MagnitudeSchedule
from ..reference.registry import REFERENCE_MODELS
from .methods import C4DAuto, C4DCalibrated, C4DMagnitude, C4DPreset, Method, paper_at_budget
from .peers import PEERS, peers_at_budget, peers_at_threshold
from .workloads import BENCH_MODELS, VALID_MODELS

DEFAULT_STEPS = 50  # the reference models' step count, which budgets are stated against


@dataclass(frozen=True)
class BenchPlan:
    models: tuple[str, ...]
    policies: tuple[str, ...]  # c4d presets, each ``name`` or ``name[key=value,...]`` (a row with its own options)
    peers: tuple[str, ...]  # keys of PEERS
    repeats: int
    per_class: int  # images per digit class on the reference models
    lowering: str  # "auto", "eager" or "inductor"
    steps: int | None = None  # None: each model's default (50 for the reference models and Wan, 28 for Flux)
    overrides: tuple[tuple[str, Any], ...] = ()  # applied to every c4d preset, e.g. (("interval", 6),)
    budgets: tuple[int, ...] = ()  # equal-compute study at these budgets instead of the presets' defaults
    shifts: tuple[float, ...] = (1.0,)  # sampler grids of the trained flow models (1 = uniform)
    thresholds: tuple[float, ...] = ()  # signal study: every preset and signal peer at these thresholds
    fixed: str = "taylorseer"  # signal study: the fixed-schedule preset run at ``budgets`` beside it
    auto: tuple[str, ...] = ()  # equal-compute study: policy="auto" calibrated with these efforts at each budget

    def with_overrides(self, **overrides: Any) -> BenchPlan:
        """Fields given as None keep the plan's value; unknown names are rejected."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise InvalidValueError("bench option", unknown[0], f"one of {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def methods(self) -> list[Method]:
        options = dict(self.overrides)
        for spec in self.policies:
            name, own = preset_row(spec)
            row = {**options, **own}
            # a row may set how it compiles too (``taylorseer[narrow_projections=False]``): c4d_backend routes those
            compiling = {k: v for k, v in row.items() if k in Settings.names()}
            Settings(**compiling)  # raises InvalidValueError naming the valid values
            # raises UnknownPolicyError / UnknownOptionError listing the valid ones
            get_policy(name, **{k: v for k, v in row.items() if k not in compiling})
        for name in self.peers:
            if name not in PEERS:
                raise InvalidValueError("peer", name, f"one of {', '.join(PEERS)}")
        for name in self.models:
            if name not in VALID_MODELS:
                raise InvalidValueError("model", name, f"one of {', '.join(VALID_MODELS)}")
        if self.thresholds:
            return self._signal_methods(options)
        if self.budgets:
            return self._budget_methods(options)
        rows = [preset_row(spec) for spec in self.policies]
        return [*(C4DPreset(name, {**options, **own}) for name, own in rows), *(PEERS[p] for p in self.peers)]

    def _budget_methods(self, options: dict[str, Any]) -> list[Method]:
        steps = self.steps or DEFAULT_STEPS
        methods: list[Method] = []
        for budget in self.budgets:
            if not 2 <= budget <= steps:
                raise InvalidValueError("budget", budget, f"an integer in 2..{steps}")
            if self.auto:
                methods += [C4DAuto(budget, effort) for effort in self.auto]
            for spec in self.policies:
                name, own = preset_row(spec)
                mine = {**options, **own}
                methods.append(C4DPreset(name, {**mine, "budget": budget}, tag=f"@{budget}"))
                paper = paper_at_budget(name, budget, steps)
                methods.append(C4DPreset(name, {**mine, **paper}, tag=f"paper@{budget}"))
                methods.append(C4DCalibrated(name, budget, mine))
            if self.peers:  # with budgets, the peers are their TaylorSeer variants set to each budget
                methods += peers_at_budget(budget)
        return methods


    def _signal_methods(self, options: dict[str, Any]) -> list[Method]:
        methods: list[Method] = []
        for threshold in self.thresholds:
            methods += [C4DMagnitude(name, threshold) if _records_ratios(name) else
                        C4DPreset(name, {**options, **own, "threshold": threshold}, tag=f"τ{threshold:g}")
                        for name, own in map(preset_row, self.policies)]
            if self.peers:
                methods += peers_at_threshold(threshold)
        methods += [C4DPreset(self.fixed, {"budget": budget}, tag=f"@{budget}") for budget in self.budgets]
        return methods


def preset_row(spec: str) -> tuple[str, dict[str, Any]]:
    """``name`` or ``name[key=value,...]`` (the label ``C4DPreset`` gives such a row): the preset and its own
    options, each value read as a Python literal where it is one (4, 0.1, True), else as text."""
    name, bracket, rest = spec.partition("[")
    if not bracket:
        return spec, {}
    if not rest.endswith("]"):
        raise InvalidValueError("preset row", spec, "name or name[key=value,...]")
    own: dict[str, Any] = {}
    for item in filter(None, _top_level(rest[:-1])):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidValueError("preset row", spec, "name or name[key=value,...]")
        try:
            own[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            own[key.strip()] = value.strip()
    return name, own


def _top_level(text: str) -> list[str]:
    """``text`` split at the commas outside brackets: a value may be a tuple (``codebook=((0.03,12),(1.0,3))``)."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


FULL = BenchPlan(
    models=BENCH_MODELS, policies=tuple(list_policies(fitted=False)), peers=tuple(PEERS), repeats=3, per_class=4,
    lowering="auto",
)

QUICK = BenchPlan(
    models=("dit", "flux"), policies=("taylorseer", "taylorseer-lite"),
    peers=tuple(p for p in ("diffusers-taylorseer", "diffusers-fbcache", "cache-dit-dbcache") if p in PEERS),
    repeats=1, per_class=1, lowering="eager",
)

def _records_ratios(name: str) -> bool:
    return isinstance(get_policy(name).schedule, MagnitudeSchedule)


def _fixed_policies() -> tuple[str, ...]:
    """Presets whose schedule is a set of steps (what a budget applies to), not an adaptive threshold."""
    return tuple(p for p in list_policies(fitted=False)
                 if get_policy(p).schedule.signal is None and not _records_ratios(p))


BUDGETS = BenchPlan(
    models=REFERENCE_MODELS, policies=_fixed_policies(), peers=tuple(PEERS), repeats=1, per_class=4,
    lowering="eager", budgets=(10, 5), shifts=(1.0, 3.0), auto=("default", "fast"),
)

SIGNAL_POLICIES = ("fbcache", "teacache", "customcache", "magcache")

SIGNALS = BenchPlan(  # "auto": eager for the trained models (fidelity), inductor for the speed configs
    models=REFERENCE_MODELS, policies=SIGNAL_POLICIES, peers=tuple(PEERS), repeats=1, per_class=4,
    lowering="auto", thresholds=(0.05, 0.1, 0.2, 0.4), budgets=(6, 10, 16),
)
