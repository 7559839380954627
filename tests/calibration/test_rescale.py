"""TeaCache's rescale polynomial fitted by calibrate(), against a plain hook reference and numpy.polyfit."""

import json

import numpy as np
import pytest
import torch
from support.sampling import sample

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.calibration import calibrate
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def relative_l1(now, before):
    return float((now - before).abs().sum() / before.abs().sum())


def plain_pairs(model, spec, steps):
    """(change of block 0's modulated input, change of the stack residual) between consecutive calls."""
    blocks, seen = model.transformer_blocks, {"m": [], "r": []}
    blocks[0].register_forward_pre_hook(lambda m, args: setattr(m, "_c4d_in", args[0]))
    blocks[0].norm1.register_forward_hook(lambda m, args, out: seen["m"].append(out[0].float()))
    blocks[-1].register_forward_hook(lambda m, args, out: seen["r"].append((out - blocks[0]._c4d_in).float()))
    sample(model, spec, num_steps=steps, seed=1)
    return [(relative_l1(m1, m0), relative_l1(r1, r0))
            for m0, m1, r0, r1 in zip(seen["m"], seen["m"][1:], seen["r"], seen["r"][1:])]


def test_the_fit_maps_the_probe_signal_to_the_cached_features_change(tmp_path):
    spec = get_tiny_model("dit")
    model = spec.build()
    result = calibrate(model, lambda call: sample(call, spec, num_steps=12, seed=1), "teacache",
                       out=tmp_path / "rescale.json")
    pairs = plain_pairs(spec.build(), spec, 12)
    assert result.pairs == len(pairs) == 11
    x, y = np.array(pairs).T
    np.testing.assert_allclose(np.polyval(result.rescale, x), np.polyval(np.polyfit(x, y, 4), x), rtol=1e-4)
    data = json.loads(result.path.read_text())
    assert data["format"] == "c4d-signal-rescale/1" and data["signal"] == "modulated-input"
    torch._dynamo.reset()
    backend = c4d_backend("teacache", lowering="eager", threshold=0.5, num_steps=12, **result.overrides())
    sample(torch.compile(model, backend=backend), spec, num_steps=12, seed=0)
    assert "rescale.json" in backend.stats().schedule and backend.stats().cached_steps > 0


def test_a_polynomial_fitted_on_another_model_is_refused(tmp_path):
    spec, wan = get_tiny_model("dit"), get_tiny_model("wan")
    result = calibrate(spec.build(), lambda call: sample(call, spec, num_steps=8, seed=1), "teacache",
                       out=tmp_path / "dit.json")
    torch._dynamo.reset()
    backend = c4d_backend("teacache", lowering="eager", num_steps=4, rescale=str(result.path))
    with pytest.raises(Exception) as err:
        sample(torch.compile(wan.build(), backend=backend), wan, num_steps=4)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, ConfigError) and "rescale polynomial" in str(inner) and "another model" in str(inner)
    ratios = calibrate(spec.build(), lambda call: sample(call, spec, num_steps=4, seed=1), "magcache",
                       out=tmp_path / "ratios.json")
    with pytest.raises(ConfigError, match="not a rescale file"):
        c4d_backend("teacache", rescale=str(ratios.path))
