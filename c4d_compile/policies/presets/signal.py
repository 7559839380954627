"""Adaptive presets: a signal decides each step. TeaCache, SeaCache, FBCache, DBCache, CustomCache and EasyCache
measure it with a PROBE on every call (schedules/signal.py); AdaCache measures it at full steps
(schedules/codebook.py), SpeCa on verified drafts (schedules/speculative.py); MagCache reads ratios
recorded once on the model (schedules/magnitude.py), so it decides before the call.

``threshold`` is the option of every one of them (0: always compute); any forecaster of the library
combines with them (``customcache`` is TeaCache's decision with a Taylor forecast).
"""

import dataclasses
from types import MappingProxyType

from ..config import Policy, Region
from ..forecasters import Reuse, Taylor
from ..registry import register
from ..schedules import CodebookSchedule, MagnitudeSchedule, SignalSchedule, SpeculativeSchedule

FBCACHE = register(
    Policy(
        name="fbcache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=SignalSchedule(threshold=0.08, signal="first-blocks", first_blocks=1, reference="last-full"),
        paper=MappingProxyType({"schedule": SignalSchedule(threshold=0.08, signal="first-blocks")}),
        description="first-block cache: skip the rest of the stack while the first block's residual stays put",
        source="FBCache, chengzeyi/ParaAttention first_block_cache (FLUX threshold 0.08; diffusers default 0.05)",
    )
)

DBCACHE = register(
    Policy(
        name="dbcache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=SignalSchedule(threshold=0.08, signal="first-blocks", first_blocks=8, last_blocks=0,
                                reference="last-full", warmup=8),
        paper=MappingProxyType({"schedule": SignalSchedule(threshold=0.08, signal="first-blocks", first_blocks=8,
                                                           warmup=8)}),
        description="dual block cache: the first Fn and last Bn blocks always run, the middle is cached",
        source="DBCache, vipshop/cache-dit BasicCacheConfig (Fn 8, Bn 0, threshold 0.08, 8 warm-up steps)",
    )
)

# TeaCache thresholds its signal after a polynomial fitted per model (FLUX: 0.6). Without one fitted on the
# user's model (``c4d calibrate --policy teacache``), the raw accumulated relative L1 is thresholded; 0.1
# computes 18 of 50 steps on the trained DiT reference model, about the paper's speed at 0.6 on FLUX.
_TEACACHE = SignalSchedule(threshold=0.1, signal="modulated-input", reference="previous", accumulate=True,
                           last_steps_full=1)

TEACACHE = register(
    Policy(
        name="teacache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=_TEACACHE,
        paper=MappingProxyType({"schedule": _TEACACHE, "threshold": 0.6}),
        description="accumulated change of the first block's modulated input decides; the stack residual is reused",
        source="TeaCache, arXiv 2411.19108 (paper: threshold 0.6 on its FLUX-fitted rescaled signal; first and last "
               "step full)",
    )
)

# SeaCache: TeaCache's rule on the modulated input measured after a noise-level spectral filter, no fitted
# polynomial. The filtered signal is larger early (the filter keeps little but the mean at high noise): 0.2
# computes about as many steps (18 to 19 of 50) on the trained reference models as teacache's 0.1 (14 to 18),
# and loses to it there at matching compute (docs/signals-cpu.md).
# ``noise="vp"`` for an ε-prediction model on DDPM steps; the paper's scripts keep the first input unfiltered.
_SEACACHE = dataclasses.replace(_TEACACHE, threshold=0.2, signal="spectral-input")

SEACACHE = register(
    Policy(
        name="seacache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=_SEACACHE,
        paper=MappingProxyType({"schedule": _SEACACHE, "threshold": 0.3, "raw_first": True}),
        description="accumulated change of the first block's modulated input after a noise-level spectral filter "
                    "decides; the stack residual is reused",
        source="SeaCache, arXiv 2602.18993 (jiwoogit/SeaCache; paper: FLUX threshold 0.3 / 0.6, Wan2.1 0.2 / 0.35; "
               "first and last step full)",
    )
)

# Capping the cached calls in a row at 5 keeps a long forecast from landing in one sample's worst case.
# Measured on the trained reference models at 50 steps, threshold 0.2: with the cap 11 full steps (8 to
# 10 without); worst image +9.0 dB (dit), +10.5 dB (flux), -0.6 dB (dit-eps); mean +3.8 to +5.1 dB.
CUSTOMCACHE = register(
    Policy(
        name="customcache",
        region=Region.BRANCH,
        forecaster=Taylor(order=1),
        schedule=dataclasses.replace(_TEACACHE, threshold=0.2, max_cached_in_row=5),
        paper=MappingProxyType({"schedule": _TEACACHE, "threshold": 0.26}),
        description="TeaCache's decision with a first-order Taylor forecast of every residual branch",
        source="CustomCache, ModelTC/lightx2v feature_caching (TeaCache decision + TaylorSeer order 1; Wan2.1 "
               "threshold 0.26)",
    )
)

MAGCACHE = register(
    Policy(
        name="magcache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=MagnitudeSchedule(threshold=0.06, max_cached_in_row=3, retention=0.2),
        paper=MappingProxyType({"schedule": MagnitudeSchedule(threshold=0.24, max_cached_in_row=5, retention=0.1)}),
        description="skip while the recorded magnitude ratios of the stack residual accumulate little error "
                    "(record them once: c4d calibrate --policy magcache)",
        source="MagCache, arXiv 2506.09045 (diffusers MagCacheConfig defaults; paper FLUX: E024K5R01)",
    )
)

# EasyCache's Wan2.1 settings: tau 0.05, the first 10 of 50 steps and the last one computed.
_EASYCACHE = SignalSchedule(threshold=0.05, signal="model-input", reference="previous", accumulate=True, warmup=10,
                            last_steps_full=1)

EASYCACHE = register(
    Policy(
        name="easycache",
        region=Region.OUTPUT,
        forecaster=Reuse(),
        schedule=_EASYCACHE,
        paper=MappingProxyType({"schedule": _EASYCACHE}),
        description="the input's change times the output's measured rate of change decides; a cached call returns "
                    "its input plus the last full step's output-minus-input",
        source="EasyCache, arXiv 2507.02860 (H-EmbodVis/EasyCache, Wan2.1: threshold 0.05, 10 warm-up steps)",
    )
)

# The Open-Sora codebook is made for 100 steps: at 50 steps on the trained reference models its bounds as given
# (threshold 1) compute 9 steps and lose 3.7 to 4.8 dB to fewer steps; a quarter of them computes 18 to 19 and
# wins by 0.7 to 2.2 dB.
ADACACHE = register(
    Policy(
        name="adacache",
        region=Region.STACK,
        forecaster=Reuse(),
        schedule=CodebookSchedule(threshold=0.25),
        paper=MappingProxyType({"schedule": CodebookSchedule()}),
        description="each full step picks the next cached span from a codebook of the middle block's residual "
                    "change; the stack residual is reused",
        source="AdaCache, arXiv 2411.02397 (AdaCache-DiT/AdaCache Open-Sora 100-step codebook; lightx2v Wan2.1 "
               "stack-residual variant)",
    )
)

SPECA = register(
    Policy(
        name="speca",
        region=Region.BRANCH,
        forecaster=Taylor(order=2),
        schedule=SpeculativeSchedule(),
        paper=MappingProxyType({"schedule": SpeculativeSchedule()}),
        description="Taylor drafts of every branch, verified on the last block; a rejected draft makes the next "
                    "step full",
        source="SpeCa, arXiv 2509.11628 (Shenyi-Z/Cache4Diffusion speca-flux: order 2, warm-up 3, tau0 7, beta 0.3, "
               "tau_min 0.1, 2 to 8 drafts)",
    )
)
