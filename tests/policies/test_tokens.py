"""Token subsets wrap any schedule's decision: the full steps stay the schedule's, its cached steps become partial
per ``partial_every``."""

import pytest
import torch
from support.sampling import loop

from c4d_compile import InvalidValueError, c4d_backend, get_policy
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


@pytest.mark.parametrize("preset, schedule", [
    ("clusca", {"budget": 4}), ("toca", {"budget": 3}), ("duca", {"full_steps": (0, 1, 7)}),
])
def test_token_presets_compose_with_budget_and_explicit_schedules(preset, schedule):
    spec = get_tiny_model("dit")
    backend = c4d_backend(preset, lowering="eager", num_steps=12, **schedule)
    loop(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, 12)
    (context,) = backend.stats().last.contexts.values()
    full = [i for i, kind in enumerate(context.kinds) if kind == "full"]
    assert full == list(backend.policy.schedule.planned(12))
    every = backend.policy.tokens.partial_every
    for i, kind in enumerate(context.kinds):
        if kind != "full":
            since = i - max(s for s in full if s < i)
            assert kind == ("partial" if since % every == 1 % every else "cached")


def test_staleness_weight_is_validated():
    with pytest.raises(InvalidValueError, match="staleness_weight"):
        get_policy("toca", staleness_weight=-1)
    assert "staleness" in get_policy("toca", staleness_weight=0.5).tokens.describe()
