"""The shipped reference models: they load, and uncached sampling makes digits of the requested class."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("safetensors")
pytest.importorskip("sklearn")

from c4d_compile.errors import ConfigError  # noqa: E402
from c4d_compile.reference import (  # noqa: E402
    REFERENCE_MODELS,
    UnknownReferenceModelError,
    load_classifier,
    load_reference_model,
    sample,
)
from c4d_compile.reference.data import digits_tensors  # noqa: E402
from c4d_compile.reference.metrics import class_accuracy  # noqa: E402
from c4d_compile.reference.models import FluxReference  # noqa: E402
from c4d_compile.reference.sampling import class_labels  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def test_classifier_test_accuracy(classifier):
    images, labels = digits_tensors("test")
    assert class_accuracy(images, labels, classifier) >= 0.97


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_uncached_samples_have_the_requested_class(name, classifier):
    model = load_reference_model(name)
    labels = class_labels(per_class=2)
    images = sample(model, labels, num_steps=20, seed=0)
    assert images.shape == (20, 1, 16, 16)
    assert torch.isfinite(images).all()
    assert class_accuracy(images, labels, classifier) >= 0.9


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_transformer_call_path_matches_forward(name):
    """What the caching backend sees (model.transformer + its kwargs) computes exactly model(x, t, labels)."""
    model = load_reference_model(name)
    labels = torch.tensor([3, 7])
    calls = []

    def call(**kwargs):
        calls.append(sorted(kwargs))
        return model.transformer(**kwargs)

    direct = sample(model, labels, num_steps=3, seed=1)
    swapped = sample(model, labels, num_steps=3, seed=1, transformer_call=call)
    assert len(calls) == 3
    torch.testing.assert_close(swapped, direct, rtol=0, atol=0)


def test_flux_packing_round_trips():
    x = torch.randn(2, 1, 16, 16)
    tokens = FluxReference.pack(x)
    assert tokens.shape == (2, 64, 4)
    # Token (row, col) holds the 2x2 patch at that position, channels in (dy, dx) order like FluxPipeline.
    assert torch.equal(tokens[:, 8 * 3 + 5], x[:, 0, 6:8, 10:12].reshape(2, 4))
    assert torch.equal(FluxReference.unpack(tokens), x)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownReferenceModelError) as info:
        load_reference_model("sdxl")
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == "unknown reference model 'sdxl'; valid names: dit, flux, dit-eps"
