"""The training entry point runs, is deterministic, and writes weights the loaders read back."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("safetensors")
pytest.importorskip("sklearn")

from c4d_compile.reference import load_classifier, load_reference_model  # noqa: E402
from c4d_compile.reference.train import main  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == threads, "training must restore the caller's thread count"


@pytest.mark.parametrize("name", ["dit", "flux", "dit-eps"])
def test_a_short_run_is_reproducible_and_loadable(name, tmp_path):
    for run in ("a", "b"):
        main([name, "--steps", "2", "--out", str(tmp_path / run), "--no-eval"])
    first, second = ((tmp_path / run / f"{name}.safetensors").read_bytes() for run in ("a", "b"))
    assert first == second
    meta = json.loads((tmp_path / "a" / f"{name}.json").read_text())
    assert meta["recipe"]["steps"] == 2 and meta["parameters"] > 0
    model = load_reference_model(name, weights_dir=tmp_path / "a")
    v = model(torch.zeros(2, 1, 16, 16), torch.full((2,), 0.5), torch.tensor([0, 9]))
    assert v.shape == (2, 1, 16, 16)


def test_classifier_run_writes_a_loadable_classifier(tmp_path):
    main(["classifier", "--steps", "2", "--out", str(tmp_path)])
    meta = json.loads((tmp_path / "classifier.json").read_text())
    assert 0.0 <= meta["training"]["test_accuracy"] <= 1.0
    assert load_classifier(weights_dir=tmp_path).features(torch.zeros(3, 1, 16, 16)).shape == (3, 64)
