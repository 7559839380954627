"""The tiny diffusers zoo: every entry builds, runs, traces into one graph and is reproducible."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from c4d_compile.zoo.tiny_diffusers import TINY_MODELS, TinyModel, first_output, get_tiny_model

# The registry itself imports diffusers lazily; building the models needs it.
pytest.importorskip("diffusers")

EXPECTED_NAMES = {
    "flux",
    "flux-bench",
    "sd3",
    "pixart",
    "dit",
    "wan",
    "hunyuanvideo",
    "qwenimage",
    "cogvideox",
    "ltxvideo",
}


@pytest.fixture(scope="module", params=sorted(TINY_MODELS))
def entry(request) -> tuple[TinyModel, torch.nn.Module]:
    # Built once per model and shared by every test below; the tests must not modify it.
    spec = TINY_MODELS[request.param]
    return spec, spec.build()


def _assert_same(a: Any, b: Any, path: str = "inputs") -> None:
    """Deep equality of make_inputs' values: tensors bit-for-bit, containers element-wise, else ==."""
    assert type(a) is type(b), path
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def test_registry_names() -> None:
    assert set(TINY_MODELS) == EXPECTED_NAMES
    for name, spec in TINY_MODELS.items():
        assert spec.name == name
        assert spec.description and "\n" not in spec.description


def test_forward_output(entry) -> None:
    spec, model = entry
    inputs = spec.make_inputs()
    assert inputs["return_dict"] is False
    assert spec.timestep_key in inputs
    latent = inputs[spec.latent_key]
    with torch.no_grad():
        out = first_output(model(**inputs))
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if out.shape != latent.shape:
        # Learned-sigma models (DiT, PixArt) predict noise and variance stacked on the channel axis of an
        # image latent: (B, C, H, W) -> (B, 2C, H, W). Nothing else may change the shape.
        b, c, h, w = latent.shape
        assert out.shape == (b, 2 * c, h, w)
        assert model.config.out_channels == 2 * model.config.in_channels


def test_batch_and_dtype(entry) -> None:
    spec, _ = entry
    inputs = spec.make_inputs(batch=2, dtype=torch.bfloat16)
    latent = inputs[spec.latent_key]
    assert latent.shape[0] == 2 and latent.dtype == torch.bfloat16
    assert inputs[spec.timestep_key].shape == (2,)


def test_single_dynamo_graph(entry) -> None:
    spec, model = entry
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            explanation = torch._dynamo.explain(model)(**spec.make_inputs())
    finally:
        torch._dynamo.reset()
    reasons = [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1, reasons


def test_build_is_deterministic(entry) -> None:
    spec, model = entry
    rng_before = torch.get_rng_state()
    again = spec.build()
    # build() seeds its own init; the caller's RNG stream must not move.
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert not again.training
    first, second = model.state_dict(), again.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    for name, param in again.named_parameters():
        assert param.dtype == torch.float32 and param.device.type == "cpu", name


def test_make_inputs_is_deterministic(entry) -> None:
    spec, _ = entry
    _assert_same(spec.make_inputs(seed=3), spec.make_inputs(seed=3))
    other = spec.make_inputs(seed=4)[spec.latent_key]
    assert not torch.equal(spec.make_inputs(seed=3)[spec.latent_key], other)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
@pytest.mark.parametrize("num_steps", [1, 2, 28, 50])
def test_timesteps(name: str, num_steps: int) -> None:
    spec = TINY_MODELS[name]
    reference = spec.make_inputs()[spec.timestep_key]
    steps = spec.timesteps(num_steps)
    assert len(steps) == num_steps
    for t in steps:
        assert t.shape == reference.shape and t.dtype == reference.dtype
    values = torch.cat(steps)
    assert (values[1:] < values[:-1]).all(), "sampling goes from noisy to clean, strictly"
    upper = {"sigma": 1.0, "sigma*1000": 1000.0, "discrete": 999}[spec.timestep_kind]
    assert values[0] == upper
    if spec.timestep_kind == "discrete":
        assert values[-1] >= 0
    else:
        assert values[-1] > 0, "flow-matching models are never evaluated at sigma 0"


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        get_tiny_model("nope")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "nope" in message
    for name in TINY_MODELS:
        assert name in message
    assert get_tiny_model("flux") is TINY_MODELS["flux"]


def test_first_output() -> None:
    tensor = torch.zeros(2)
    assert first_output((tensor,)) is tensor
    assert first_output(SimpleNamespace(sample=tensor)) is tensor
    assert first_output(tensor) is tensor
    with pytest.raises(TypeError):
        first_output(object())
