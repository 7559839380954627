"""Where the shipped weights live, and loading them by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from .classifier import DigitClassifier
from .models import REFERENCE_MODELS, UnknownReferenceModelError, build_reference_model, check_model_name

__all__ = [
    "CLASSIFIER_NAME",
    "REFERENCE_MODELS",
    "WEIGHTS_DIR",
    "UnknownReferenceModelError",
    "check_model_name",
    "load_classifier",
    "load_reference_model",
    "read_metadata",
    "save_weights",
]

CLASSIFIER_NAME = "classifier"
WEIGHTS_DIR = Path(__file__).parent / "weights"


def _paths(name: str, weights_dir: Path | None) -> tuple[Path, Path]:
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def read_metadata(name: str, weights_dir: Path | None = None) -> dict[str, Any]:
    """The JSON shipped next to the weights: config, parameter count, training and evaluation figures."""
    if name != CLASSIFIER_NAME:
        check_model_name(name)
    path = _paths(name, weights_dir)[1]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m c4d_compile.reference.train {name}`")
    return json.loads(path.read_text())


def save_weights(name: str, module: nn.Module, metadata: dict[str, Any], weights_dir: Path | None = None) -> Path:
    """Write ``<name>.safetensors`` (the state dict) and ``<name>.json`` (metadata, with the weight size)."""
    from safetensors.torch import save_file

    weights, meta = _paths(name, weights_dir)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(weights))
    metadata = {**metadata, "weights_bytes": weights.stat().st_size}
    meta.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return weights


def _load_state(module: nn.Module, name: str, weights_dir: Path | None) -> nn.Module:
    from safetensors.torch import load_file

    path = _paths(name, weights_dir)[0]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m c4d_compile.reference.train {name}`")
    module.load_state_dict(load_file(str(path)), strict=True)
    return module.eval().requires_grad_(False)


def load_reference_model(name: str, weights_dir: Path | None = None) -> nn.Module:
    """The trained ``"dit"``, ``"flux"`` or ``"dit-eps"`` ReferenceModel, float32, CPU, eval mode, gradients off."""
    check_model_name(name)
    config = read_metadata(name, weights_dir)["config"]
    return _load_state(build_reference_model(name, config), name, weights_dir)


def load_classifier(weights_dir: Path | None = None) -> nn.Module:
    """The trained 16x16 digit classifier (eval mode, gradients off)."""
    config = read_metadata(CLASSIFIER_NAME, weights_dir)["config"]
    return _load_state(DigitClassifier(**config), CLASSIFIER_NAME, weights_dir)
