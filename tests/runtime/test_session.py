"""The session: one generation and one step position per guidance context for every model a backend compiled.

Tested on Wan 2.2's two experts in the pipeline's own loop with plain ``torch.compile`` (no ``enable_cache``, so
nothing tells the backend the timesteps or the contexts): the low-noise expert takes over in the middle of a
generation and must go on at the generation's step, and a second generation must not forecast from the first.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, c4d_backend  # noqa: E402

CASE = PIPELINES["wan2.2"]


def _compiled_experts(**options):
    """The Wan 2.2 pipeline with both experts compiled by one backend, as a user would without enable_cache."""
    torch._dynamo.reset()
    pipe = CASE.build()
    backend = c4d_backend("taylorseer", lowering="eager", **options)
    for name in CASE.transformers:
        setattr(pipe, name, torch.compile(getattr(pipe, name), backend=backend))
    return pipe, backend


@pytest.mark.filterwarnings("ignore::c4d_compile.C4DWarning")  # no step count: the schedule says what it does
def test_a_second_generation_of_two_experts_starts_fresh_for_both():
    pipe, backend = _compiled_experts()
    run(pipe, CASE, steps=10, seed=0)
    second = run(pipe, CASE, steps=8, seed=1)
    low_expert = [c for name, c in backend.stats().last.contexts.items() if "[model 1]" in name]
    assert low_expert and all(c.cached_steps >= 1 for c in low_expert)  # the test must see the expert cached
    backend.reset()
    assert torch.equal(second, run(pipe, CASE, steps=8, seed=1))


def test_the_expert_that_takes_over_goes_on_at_the_generations_step():
    pipe, backend = _compiled_experts(num_steps=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, CASE, steps=10, seed=0)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)]
    contexts = backend.stats().last.contexts
    high = {name: c for name, c in contexts.items() if "[" not in name}
    low = {name: c for name, c in contexts.items() if "[model 1]" in name}
    assert set(high) == {"branch0", "branch1"} and len(low) == 2
    first_low = min(c.computed[0] for c in low.values())
    for c in high.values():  # the high-noise expert's steps, then the low-noise expert's, one count
        assert c.steps == first_low and c.cached_steps >= 1
    for c in low.values():
        assert c.steps == 10 - first_low and c.computed[0] == first_low
        assert c.computed[-1] == 9  # the generation's last step computes
