"""The ε-prediction reference model: its outputs, its DDIM sampler and its training objective."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("diffusers")
pytest.importorskip("safetensors")
pytest.importorskip("sklearn")

from c4d_compile.errors import ConfigError  # noqa: E402
from c4d_compile.reference import load_classifier, load_reference_model, sample  # noqa: E402
from c4d_compile.reference.ddpm import DDPMSchedule  # noqa: E402
from c4d_compile.reference.metrics import class_accuracy  # noqa: E402
from c4d_compile.reference.sampling import class_labels, initial_noise  # noqa: E402
from c4d_compile.reference.train import _ddpm_losses  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return load_reference_model("dit-eps")


def _linear_alphas_cumprod() -> torch.Tensor:
    return torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 1000), dim=0)


def _plain_ddim(model, x: torch.Tensor, labels: torch.Tensor, num_steps: int) -> torch.Tensor:
    """DDIM (arXiv 2010.02502, eq. 12 with eta = 0) written out: DiT's linear betas, diffusers' default
    "leading" steps (N-1)k, ..., k, 0 with k = 1000 // N, x0 clipped to [-1, 1], the last step onto ᾱ = 1."""
    alphas_cumprod = _linear_alphas_cumprod()
    k = 1000 // num_steps
    for t in range((num_steps - 1) * k, -1, -k):
        eps = model(x, torch.full((x.shape[0],), t), labels)
        a_t = alphas_cumprod[t]
        a_prev = alphas_cumprod[t - k] if t - k >= 0 else torch.tensor(1.0)
        x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1.0, 1.0)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x


def test_the_transformer_outputs_eps_and_the_variance_channel(model):
    assert model.prediction == "epsilon" and model.timestep_scale == 1.0
    x, t, labels = torch.randn(3, 1, 16, 16), torch.tensor([999, 500, 0]), torch.tensor([0, 4, 9])
    out = model.transformer(**model.transformer_inputs(x, t, labels))[0]
    assert out.shape == (3, 2, 16, 16)
    eps, v = model.split_output((out,))
    assert torch.equal(eps, out[:, :1]) and torch.equal(v, out[:, 1:])
    assert torch.equal(model(x, t, labels), eps)


def test_the_scheduler_is_ddim_on_the_training_schedule(model):
    scheduler = model.make_scheduler()
    assert type(scheduler).__name__ == "DDIMScheduler"
    assert scheduler.config.clip_sample and scheduler.config.prediction_type == "epsilon"
    torch.testing.assert_close(scheduler.alphas_cumprod, _linear_alphas_cumprod())
    torch.testing.assert_close(model.schedule.alphas_cumprod.float(), scheduler.alphas_cumprod)


@pytest.mark.parametrize("num_steps", [2, 3])
def test_sampling_matches_a_plain_ddim_loop(model, num_steps):
    labels = torch.tensor([1, 5, 8])
    noise = initial_noise(3, seed=4)
    expected = _plain_ddim(model, noise.clone(), labels, num_steps)
    torch.testing.assert_close(sample(model, labels, num_steps, noise=noise), expected)


def test_sampling_is_deterministic_per_seed_and_in_pixel_range(model):
    labels = torch.tensor([2, 7])
    first, again = (sample(model, labels, 5, seed=3) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, sample(model, labels, 5, seed=4))
    assert first.abs().max() <= 1.0  # DDIM's last step lands on its clipped x0 estimate


def test_the_swapped_transformer_call_gets_the_scheduler_steps(model):
    seen = []

    def call(**kwargs):
        seen.append(kwargs["timestep"].tolist())
        return model.transformer(**kwargs)

    sample(model, torch.tensor([3, 6]), 4, seed=0, transformer_call=call)
    assert seen == [[750, 750], [500, 500], [250, 250], [0, 0]]  # integers, as DiTPipeline passes them


def test_fifty_step_samples_have_the_requested_class(model):
    labels = class_labels(per_class=2)
    images = sample(model, labels, num_steps=50, seed=0)
    assert class_accuracy(images, labels, load_classifier()) >= 0.9


def test_a_time_shift_is_rejected(model):
    with pytest.raises(ConfigError, match="shift"):
        sample(model, [1], 10, shift=3.0)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        sample(model, [1], 10, shift=0.5)


def test_the_learned_variance_range_matches_diffusers():
    from diffusers import DDPMScheduler

    schedule = DDPMSchedule(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    reference = DDPMScheduler(variance_type="learned_range")
    v = torch.tensor([-1.0, -0.3, 0.4, 1.0]).reshape(4, 1, 1, 1)
    for t in (1, 10, 500, 999):  # diffusers leaves log β̃_0 = log 0 unclipped; t=0 differs by design
        ours = schedule.model_log_variance(v, torch.full((4,), t))
        torch.testing.assert_close(ours, reference._get_variance(t, predicted_variance=v), rtol=1e-4, atol=1e-4)


def test_the_bound_vanishes_for_a_perfect_model_and_trains_only_the_variance():
    schedule = DDPMSchedule(torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([1, 40, 400, 999])
    x_t = schedule.add_noise(x0, noise, t)
    # True ε and v = -1 (the posterior variance β̃_t itself): p equals q, so every KL term is ~0.
    vlb = schedule.vlb_terms(x0, x_t, t, noise, -torch.ones_like(x0))
    torch.testing.assert_close(vlb, torch.zeros(4), rtol=0, atol=1e-5)

    class Constant(nn.Module):
        """Stands in for the model: a learnable output, so that gradients per channel can be read."""

        prediction = "epsilon"

        def __init__(self):
            super().__init__()
            self.schedule = schedule
            self.out = nn.Parameter(torch.randn(4, 2, 16, 16, generator=gen))

        def transformer_inputs(self, x, t, labels):
            return {}

        def transformer(self):
            return (self.out,)

        def split_output(self, out):
            return out[0][:, :1], out[0][:, 1:]

    stub = Constant()
    _, vlb_term = _ddpm_losses(stub, x0, torch.zeros(4, dtype=torch.long), gen)
    vlb_term.backward()
    assert stub.out.grad[:, 0].abs().max() == 0  # stop-gradient: ε is trained by the MSE alone
    assert stub.out.grad[:, 1].abs().max() > 0


def test_a_config_without_the_variance_channel_is_rejected():
    from c4d_compile.reference.models import DEFAULT_CONFIGS, build_reference_model

    config = {**DEFAULT_CONFIGS["dit-eps"]}
    config["transformer"] = {**config["transformer"], "out_channels": 1}
    with pytest.raises(ConfigError, match="out_channels"):
        build_reference_model("dit-eps", config)
