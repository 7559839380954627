"""cache-dit (``pip install cache-dit``) as bench rows: DBCache, alone and with its calibrators.

Transformer-only use, as cache-dit documents it: ``cache_dit.enable_cache(transformer, cache_config=...,
calibrator_config=...)`` on a private copy of the transformer, and ``cache_dit.refresh_context`` before
every generation so each one starts from an empty cache. The "matched" rows give DBCache a static
step mask equal to a c4d preset's schedule, so that peer and preset spend the same full computations
(cache-dit's Fn=1 first block still runs on every step, so its compute is slightly higher).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..methods import Prepared
from ..workloads import Workload
from .common import preset_mask, private_transformer, reachable_tensor_bytes


@dataclass(frozen=True)
class CacheDiTMethod:
    label: str
    threshold: float = 0.12  # residual_diff_threshold of the dynamic rows
    calibrator: str | None = None  # None, "taylorseer" or "foca"
    matched_preset: str | None = None  # a c4d preset whose schedule becomes a static step mask
    budget: int | None = None  # with matched_preset: the preset's schedule at this budget
    family: str = "cache-dit"

    def configs(self, steps: int):
        from cache_dit import DBCacheConfig, FoCaCalibratorConfig, TaylorSeerCalibratorConfig

        # No num_inference_steps: its automatic reset fires one call late; begin() refreshes instead.
        common = {"Fn_compute_blocks": 1, "Bn_compute_blocks": 0, "max_warmup_steps": 3, "enable_separate_cfg": False}
        if self.matched_preset is None:
            cache = DBCacheConfig(residual_diff_threshold=self.threshold, **common)
        else:
            extra = {} if self.budget is None else {"budget": self.budget}
            cache = DBCacheConfig(steps_computation_mask=preset_mask(self.matched_preset, steps, **extra),
                                  steps_computation_policy="static", **common)
        calibrators = {None: lambda: None, "taylorseer": lambda: TaylorSeerCalibratorConfig(taylorseer_order=1),
                       "foca": FoCaCalibratorConfig}
        return cache, calibrators[self.calibrator]()

    def settings(self, steps: int) -> dict:
        schedule = ({"residual_diff_threshold": self.threshold} if self.matched_preset is None
                    else {"steps_computation_mask": f"schedule of c4d {self.matched_preset!r}"})
        return {"cache": "DBCache", "Fn": 1, "Bn": 0, "max_warmup_steps": 3, **schedule,
                "calibrator": self.calibrator}

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is first imported
        import cache_dit

        transformer = private_transformer(workload)
        cache, calibrator = self.configs(steps)
        cache_dit.enable_cache(transformer, cache_config=cache, calibrator_config=calibrator)
        # Not compiled, for the reason given in diffusers_caches: on Wan, Dynamo gives up on the patched
        # forward and skips that code for every row of the model.
        return Prepared(
            call=transformer, steps=steps, settings=self.settings(steps),
            begin=lambda: cache_dit.refresh_context(transformer),
            cache_bytes=lambda: reachable_tensor_bytes(getattr(transformer, "_context_manager", None)),
            flop_call=transformer, close=lambda: cache_dit.disable_cache(transformer), compiled=False,
        )


def taylorseer_at(budget: int) -> CacheDiTMethod:
    """DBCache with its TaylorSeer calibrator on the full steps c4d's budget schedule computes."""
    return CacheDiTMethod(f"cache-dit-taylorseer@{budget}", calibrator="taylorseer", matched_preset="taylorseer",
                          budget=budget)


def dbcache_at(threshold: float) -> list[CacheDiTMethod]:
    """DBCache F1B0 (first-block cache) at one residual-difference threshold, alone and with its TaylorSeer
    calibrator forecasting the cached residual."""
    return [CacheDiTMethod(f"cache-dit-dbcache τ{threshold:g}", threshold=threshold),
            CacheDiTMethod(f"cache-dit-dbcache+taylorseer τ{threshold:g}", threshold=threshold,
                           calibrator="taylorseer")]


CACHE_DIT_METHODS = (
    CacheDiTMethod("cache-dit-dbcache"),  # F1B0, i.e. first-block cache, threshold 0.12
    CacheDiTMethod("cache-dit-dbcache+taylorseer", calibrator="taylorseer"),
    CacheDiTMethod("cache-dit-taylorseer", calibrator="taylorseer", matched_preset="taylorseer"),
    CacheDiTMethod("cache-dit-foca", calibrator="foca", matched_preset="foca"),
)
