"""MagCache's magnitude ratios recorded by calibrate(), against a plain hook over the model's blocks."""

import json

import pytest
import torch
from support.sampling import sample

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.calibration import calibrate
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def plain_ratios(model, spec, steps):
    """gamma_s = mean over tokens of |R_s| / |R_{s-1}|, R the residual of the whole block stack."""
    blocks, norms = model.transformer_blocks, []
    blocks[0].register_forward_pre_hook(lambda m, args: setattr(m, "_c4d_in", args[0]))
    blocks[-1].register_forward_hook(
        lambda m, args, out: norms.append((out - blocks[0]._c4d_in).float().reshape(-1, out.shape[-1]).norm(dim=-1)))
    sample(model, spec, num_steps=steps, seed=1)
    return [1.0] + [float((b / a).mean()) for a, b in zip(norms, norms[1:])]


def test_recorded_ratios_are_the_stack_residual_norm_ratios_and_drive_the_schedule(tmp_path):
    spec = get_tiny_model("dit")
    model = spec.build()
    result = calibrate(model, lambda call: sample(call, spec, num_steps=10, seed=1), "magcache",
                       out=tmp_path / "ratios.json")
    want = plain_ratios(spec.build(), spec, 10)
    assert result.num_steps == 10
    torch.testing.assert_close(torch.tensor(result.ratios), torch.tensor(want), rtol=1e-5, atol=0)
    data = json.loads(result.path.read_text())
    assert data["format"] == "c4d-magnitude-ratios/1" and data["fingerprint"]["graph"]
    torch._dynamo.reset()
    backend = c4d_backend("magcache", lowering="eager", threshold=0.5, num_steps=10, **result.overrides())
    sample(torch.compile(model, backend=backend), spec, num_steps=10, seed=0)
    computed = backend.stats().last.contexts["branch0"].computed
    assert computed == list(backend.policy.schedule.planned(10)) and len(computed) < 10


def test_magcache_without_ratios_or_with_another_models_ratios_is_a_typed_error(tmp_path):
    spec, wan = get_tiny_model("dit"), get_tiny_model("wan")
    model = spec.build()
    with pytest.raises(Exception) as err:
        sample(torch.compile(model, backend=c4d_backend("magcache", lowering="eager", num_steps=4)), spec, num_steps=4)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, ConfigError) and "c4d calibrate" in str(inner)
    result = calibrate(model, lambda call: sample(call, spec, num_steps=4, seed=1), "magcache",
                       out=tmp_path / "dit.json")
    torch._dynamo.reset()
    with pytest.raises(Exception) as err:
        backend = c4d_backend("magcache", lowering="eager", num_steps=4, ratios=str(result.path))
        sample(torch.compile(wan.build(), backend=backend), wan, num_steps=4)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, ConfigError) and "magnitude ratios" in str(inner) and "another model" in str(inner)
