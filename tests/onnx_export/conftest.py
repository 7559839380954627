"""One export of tiny DiT (taylorseer, 10 steps) shared by the tests that read or corrupt an exported folder."""

from __future__ import annotations

import shutil

import pytest
import torch

from c4d_compile.zoo.tiny_diffusers import get_tiny_model

STEPS = 10


@pytest.fixture(scope="session")
def dit_export(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from c4d_compile.onnx_export import export

    spec = get_tiny_model("dit")
    model, inputs = spec.build(), spec.make_inputs()
    out = tmp_path_factory.mktemp("dit-taylorseer")
    result = export(model, inputs, "taylorseer", out, num_steps=STEPS, progress=False)
    torch._dynamo.reset()
    return spec, model, inputs, result


@pytest.fixture
def dit_copy(dit_export, tmp_path):
    """A copy of the exported folder a test may damage."""
    copy = tmp_path / "copy"
    shutil.copytree(dit_export[3].directory, copy)
    return copy
