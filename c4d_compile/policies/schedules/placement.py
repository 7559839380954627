"""Where n full computations go in a run of T steps when nothing else says (budget, spread).

Rule: the first and the last step are always full, and the n - 2 others are spread evenly in
between (rounded to the nearest step). Why:
* the first step has nothing to forecast from, and along a denoising trajectory the model output
  changes most over the first and the last steps; a forecast carried into the last step lands its
  error directly in the final sample;
* a warm-up block of consecutive full steps spends several computations inside the first jump and
  takes its first slope from there, which is what makes the papers' warm-up + interval schedule
  lose to the same forecasters with evenly spread full steps on trained models;
* an even spread keeps every forecast's distance to its last full step as small as the budget
  allows. A schedule calibrated on the user's model (``c4d calibrate``) does better still.
"""

from __future__ import annotations

from ...errors import InvalidValueError


def spread_evenly(budget: int, num_steps: int) -> tuple[int, ...]:
    """``budget`` full steps over ``num_steps``, first and last included."""
    if num_steps < 1:
        raise InvalidValueError("num_steps", num_steps, "an integer >= 1")
    if budget > num_steps:
        raise InvalidValueError(
            "budget", budget, f"at most the number of steps ({num_steps}): a run cannot compute more steps than it has"
        )
    if num_steps == 1:
        return (0,)
    if budget < 2:
        raise InvalidValueError("budget", budget, "an integer >= 2 (the first and the last step are always full)")
    last = num_steps - 1
    return tuple(sorted({round(i * last / (budget - 1)) for i in range(budget)}))
