"""The Ascend lowering: its settings are validated, a missing torch_npu is a typed error naming what to
install, and each variant goes to torchair's backend with the configured CompilerConfig (stand-in modules:
no Ascend hardware or torchair here, so numerics on the NPU are not checked)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from c4d_compile import InvalidValueError, MissingDependencyError, Settings, c4d_backend, lowering
from c4d_compile.lowering import npu
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def test_without_torch_npu_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_npu", None)
    with pytest.raises(MissingDependencyError, match="pip install torch-npu"):
        c4d_backend("taylorseer", lowering="npu")


@pytest.mark.parametrize("settings,match", [
    ({"lowering": "npu", "mode": "default"}, "'max-autotune', 'reduce-overhead'"),
    ({"lowering": "inductor", "npu_options": {"mode": 1}}, "configure lowering='npu'"),
    ({"lowering": "npu", "inductor_options": {"max_autotune": True}}, "configure lowering='inductor'"),
    ({"lowering": "npu", "npu_options": ["frozen"]}, "a mapping"),
])
def test_npu_settings_are_validated(settings, match):
    with pytest.raises(InvalidValueError, match=match):
        Settings(**settings)


class _Config:
    def __init__(self):
        self.mode = None
        self.experimental_config = types.SimpleNamespace(frozen_parameter=False)


@pytest.fixture
def fake_torchair(monkeypatch):
    """A torchair stand-in (torch_npu taken as present): the backend records the config and runs the graph."""
    seen = []

    def get_npu_backend(compiler_config):
        def backend(gm, example_inputs):
            seen.append((compiler_config, gm))
            return gm.forward
        return backend

    torchair = types.SimpleNamespace(CompilerConfig=_Config, get_npu_backend=get_npu_backend)
    monkeypatch.setattr(npu, "require_torchair", lambda: torchair)
    monkeypatch.setitem(lowering.REQUIREMENTS, "npu", lambda: torchair)
    return seen


def test_each_variant_goes_to_torchair_with_the_settings(fake_torchair):
    spec = get_tiny_model("dit")
    model, inputs = spec.build(), spec.make_inputs()
    backend = c4d_backend("taylorseer", lowering="npu", mode="reduce-overhead",
                          npu_options={"experimental_config.frozen_parameter": True}, strict=True)
    with torch.no_grad():
        torch.compile(model, backend=backend, fullgraph=True)(**inputs)
    assert len(fake_torchair) == len(backend.rewrite.variants) == 2
    assert {id(gm) for _, gm in fake_torchair} == {id(v.gm) for v in backend.rewrite.variants.values()}
    config = fake_torchair[0][0]
    assert config.mode == "reduce-overhead" and config.experimental_config.frozen_parameter is True


def test_an_unknown_config_field_is_named(fake_torchair):
    spec = get_tiny_model("dit")
    backend = c4d_backend("taylorseer", lowering="npu", npu_options={"experimental_config.nope": 1}, strict=True)
    with pytest.raises(Exception, match="CompilerConfig field"), torch.no_grad():
        torch.compile(spec.build(), backend=backend, fullgraph=True)(**spec.make_inputs())
