"""The two matrices ``c4d bench`` knows (full and ``--quick``), and turning names into methods."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidValueError
from ..policies import get_policy, list_policies
from .methods import C4DPreset, Method
from .peers import PEERS
from .workloads import BENCH_MODELS, VALID_MODELS


@dataclass(frozen=True)
class BenchPlan:
    models: tuple[str, ...]
    policies: tuple[str, ...]  # c4d presets
    peers: tuple[str, ...]  # keys of PEERS
    repeats: int
    per_class: int  # images per digit class on the reference models
    lowering: str  # "auto", "eager" or "inductor"
    steps: int | None = None  # None: each model's default (50 for the reference models and Wan, 28 for Flux)
    overrides: tuple[tuple[str, Any], ...] = ()  # applied to every c4d preset, e.g. (("interval", 6),)

    def with_overrides(self, **overrides: Any) -> BenchPlan:
        """Fields given as None keep the plan's value; unknown names are rejected."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise InvalidValueError("bench option", unknown[0], f"one of {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def methods(self) -> list[Method]:
        options = dict(self.overrides)
        for name in self.policies:
            get_policy(name, **options)  # raises UnknownPolicyError / UnknownOptionError listing the valid ones
        for name in self.peers:
            if name not in PEERS:
                raise InvalidValueError("peer", name, f"one of {', '.join(PEERS)}")
        for name in self.models:
            if name not in VALID_MODELS:
                raise InvalidValueError("model", name, f"one of {', '.join(VALID_MODELS)}")
        return [*(C4DPreset(p, options) for p in self.policies), *(PEERS[p] for p in self.peers)]


FULL = BenchPlan(
    models=BENCH_MODELS, policies=tuple(list_policies()), peers=tuple(PEERS), repeats=3, per_class=4,
    lowering="auto",
)

QUICK = BenchPlan(
    models=("dit", "flux"), policies=("taylorseer", "taylorseer-lite"),
    peers=tuple(p for p in ("diffusers-taylorseer", "diffusers-fbcache", "cache-dit-dbcache") if p in PEERS),
    repeats=1, per_class=1, lowering="eager",
)
