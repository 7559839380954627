"""The tiny real diffusers pipelines: every case builds, runs its own ``__call__`` reproducibly, and calls its
transformers the way its ``guidance`` and ``transformers`` fields say (other tests rely on both)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

pytest.importorskip("diffusers")
# Mochi's RoPE asks for float32 autocast, which CPU autocast declines with a warning: harmless here.
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from support.pipelines import GUIDANCE_KINDS, PIPELINES, PipelineCase, run  # noqa: E402

# Every pipeline the pipeline tests promise; more may be added, none may go missing.
EXPECTED_NAMES = {
    "flux", "flux-true-cfg", "sd3", "pixart-sigma", "sana", "wan2.1", "wan2.2", "hunyuanvideo", "ltxvideo",
    "cogvideox", "qwenimage", "dit", "auraflow", "cogview4", "chroma", "lumina2", "mochi", "hidream", "flux2",
}  # fmt: skip

# Calls per step and batch of each call, with guidance on, per GUIDANCE_KINDS entry.
CALLS_PER_STEP = {"none": (1, 1), "batched": (1, 2), "separate": (2, 1)}


@dataclass
class Built:
    case: PipelineCase
    pipe: object
    latents: torch.Tensor  # 2 steps, seed 0, guidance on


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def built(request, one_thread) -> Built:
    # Built and run once per pipeline, shared by the tests below; they must leave the pipeline as they found it.
    case = PIPELINES[request.param]
    pipe = case.build()
    return Built(case, pipe, run(pipe, case, steps=2, seed=0))


def test_registry_covers_every_promised_pipeline():
    assert EXPECTED_NAMES <= set(PIPELINES)
    for name, case in PIPELINES.items():
        assert case.name == name
        assert case.guidance in GUIDANCE_KINDS


def test_same_seed_same_latents_other_seed_other_latents(built):
    case, pipe = built.case, built.pipe
    assert torch.isfinite(built.latents).all()
    assert torch.equal(run(pipe, case, steps=2, seed=0), built.latents)
    assert not torch.equal(run(pipe, case, steps=2, seed=1), built.latents)


def test_another_step_count_after_the_first(built):
    latents = run(built.pipe, built.case, steps=3, seed=0)
    assert latents.shape == built.latents.shape
    assert torch.isfinite(latents).all()
    assert not torch.equal(latents, built.latents)


def test_build_is_seeded(built):
    """A second build has the same weights (and the case's prompts are fixed): the same latents."""
    assert torch.equal(run(built.case.build(), built.case, steps=2, seed=0), built.latents)


def test_kwargs_ask_for_latents_and_seed_a_generator(built):
    kwargs = built.case.call_kwargs(steps=2, seed=3, cfg=True)
    assert kwargs["output_type"] == "latent" and kwargs["num_inference_steps"] == 2
    assert kwargs["generator"].initial_seed() == 3


def _record_calls(pipe, attrs: tuple[str, ...], run_once) -> list[tuple[str, int]]:
    """(denoiser attribute, batch) of every transformer call made by ``run_once()``."""
    calls: list[tuple[str, int]] = []
    handles = []
    for attr in attrs:

        def hook(module, args, kwargs, attr=attr):
            latent = args[0] if args else kwargs["hidden_states"]
            calls.append((attr, latent.shape[0]))

        handles.append(getattr(pipe, attr).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        run_once()
    finally:
        for handle in handles:
            handle.remove()
    return calls


def test_guidance_kind_and_denoisers_match_the_calls(built):
    case, pipe, steps = built.case, built.pipe, 3
    per_step, batch = CALLS_PER_STEP[case.guidance]
    calls = _record_calls(pipe, case.transformers, lambda: run(pipe, case, steps=steps, seed=0))
    assert len(calls) == steps * per_step
    assert {b for _, b in calls} == {batch}
    # Every denoiser named runs at 3 steps (Wan 2.2's low-noise expert takes the last one).
    assert {attr for attr, _ in calls} == set(case.transformers)

    unguided = _record_calls(pipe, case.transformers, lambda: run(pipe, case, steps=steps, seed=0, cfg=False))
    assert len(unguided) == steps and {b for _, b in unguided} == {1}


def test_guidance_changes_the_result(built):
    unguided = run(built.pipe, built.case, steps=2, seed=0, cfg=False)
    if built.case.guidance == "none":  # distilled: cfg is ignored
        assert torch.equal(unguided, built.latents)
    else:
        assert not torch.equal(unguided, built.latents)
