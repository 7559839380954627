"""Image-to-image and inpainting pipelines through ``enable_cache``: they run only the last ``strength``
part of the sampler's timesteps (``set_begin_index``), so a budget is placed over the steps that run and
the last of them is full."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = pytest.mark.usefixtures("one_thread")

from support.image_to_image import IMAGE_TO_IMAGE, build, runner  # noqa: E402

from c4d_compile import enable_cache  # noqa: E402


@pytest.mark.parametrize("name", sorted(IMAGE_TO_IMAGE))
def test_the_budget_counts_the_steps_that_run(name):
    run = runner(name)
    torch._dynamo.reset()
    reference = run(build(name), steps=10, seed=0)
    pipe = build(name)
    exact = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, steps=10, seed=0), reference)
    assert exact.stats().full_steps == 6  # strength 0.6 of 10 steps: 6 run

    torch._dynamo.reset()
    pipe = build(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager", budget=3)
    for strength, steps, planned in ((0.6, 6, [0, 2, 5]), (0.3, 3, [0, 1, 2])):
        run(pipe, steps=10, seed=0, strength=strength)
        (ctx,) = backend.stats().last.contexts.values()
        assert ctx.steps == steps and ctx.computed == planned, (strength, ctx)
