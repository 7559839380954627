"""What ``policy="auto"`` tries: candidate methods (region, forecaster, step variable) and how hard it looks.

A candidate is everything a fixed-schedule preset is apart from its full steps. The default set covers
every region and the library's forecasters that measured well on some model (Taylor orders 1 and 2,
Adams–Bashforth's polynomial through 3 outputs, FoCa, scaled Hermite, Spectrum's Chebyshev ridge);
plain reuse is left out, as it lost to every forecast at equal compute on every trained model.
Adams–Bashforth is a candidate on the stack and the branches too: on the ε-prediction DiT its branch
forecast, refined, was 0.8 dB (10 of 50) and 0.4 dB (5 of 50) above the best of the other branch
candidates on the calibration seed, and its stack forecast 1.2 dB above every other at 5 of 50. On a
sampler grid that is not evenly spaced the best screened candidates are also tried in the timestep.

An effort says how many evaluations (cached runs of the user's ``run``) the search may spend:
``default`` screens every candidate, measures the exact-search start of every candidate the search can
take, and refines the best 2; ``fast`` screens the output-region candidates only, measures the
exact-search start of each and refines the best briefly. Both then fit least-squares weights to the best set
(``auto.py`` step 6) and refine them when they win (``fitted`` measurements).

Why ``default`` measures every start: the even spread ranks candidates badly. On the trained ε-prediction
DiT at 5 of 50, branch FoCa (34.1 dB on the calibration seed after refinement, the best of the 13
candidates the set then had) was 7th on the spread (28.2 dB) and 1st from its exact-search start (32.9 dB);
measuring only the best 2 starts and each region's best left it out, and ``auto`` chose a candidate 1.6 dB
worse on the scored seeds. A start is one measurement and a host search per candidate. The same held for the
fast effort: with every output candidate's start measured instead of the best one's on the spread, it gained
3.2 dB (shifted DiT) and 3.0 dB (shifted Flux) at 10 of 50 on the scored seeds, was level (within 0.1 dB) on
the eight other reference settings, and spent 0.3 to 1.0 more uncached generations' FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidValueError
from ..policies import Region, Variable
from ..policies.config import forecaster_spec
from ..policies.forecasters import AdamsBashforth, FoCa, Forecaster, Hermite, Spectrum, Taylor


@dataclass(frozen=True)
class Candidate:
    region: Region
    forecaster: Forecaster
    variable: Variable = Variable.STEP

    @property
    def label(self) -> str:
        spec = forecaster_spec(self.forecaster)
        kind = spec.pop("type")
        # scalar options only: fitted weights' table is data, written to the calibration file, not the label
        options = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.items()
                           if isinstance(v, (bool, int, float, str)))
        return f"{self.region.value} {kind}({options}) {self.variable.value}"

    def in_variable(self, variable: Variable) -> Candidate:
        return Candidate(self.region, self.forecaster, variable)


def _each(region: Region, *forecasters: Forecaster) -> tuple[Candidate, ...]:
    return tuple(Candidate(region, f) for f in forecasters)


DEFAULT_CANDIDATES = (
    *_each(Region.OUTPUT, Taylor(order=1), Taylor(order=2), AdamsBashforth(order=3), FoCa(),
           Hermite(order=2, sigma=0.6), Spectrum()),
    *_each(Region.STACK, Taylor(order=1), Taylor(order=2), AdamsBashforth(order=3), FoCa(), Spectrum()),
    *_each(Region.BRANCH, Taylor(order=1), AdamsBashforth(order=3), FoCa(), Hermite(order=2, sigma=0.6)),
)

FAST_CANDIDATES = _each(Region.OUTPUT, Taylor(order=1), Taylor(order=2), AdamsBashforth(order=3), FoCa())


@dataclass(frozen=True)
class Effort:
    name: str
    candidates: tuple[Candidate, ...]
    # best screened candidates whose exact-search start is also measured (and each region's best); None: every
    # candidate the exact search can take
    searched: int | None
    refined: int  # best candidates refined by local search
    evaluations: int  # measurements each refinement may spend
    fitted: int = 0  # measurements refining least-squares weights fitted to the best set (0: not fitted)


EFFORTS = {
    "default": Effort("default", DEFAULT_CANDIDATES, searched=None, refined=2, evaluations=32, fitted=8),
    "fast": Effort("fast", FAST_CANDIDATES, searched=None, refined=1, evaluations=15, fitted=4),
}


def get_effort(effort: str | Effort) -> Effort:
    if isinstance(effort, Effort):
        return effort
    if effort not in EFFORTS:
        raise InvalidValueError("effort", effort, f"one of {', '.join(EFFORTS)} or an Effort")
    return EFFORTS[effort]


def with_timestep(candidates: list[Candidate]) -> list[Candidate]:
    """The same candidates forecasting in the sampler's timestep (those that do not already)."""
    return [c.in_variable(Variable.TIMESTEP) for c in candidates if c.variable is not Variable.TIMESTEP]
