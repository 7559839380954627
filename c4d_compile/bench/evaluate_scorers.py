"""The optional image scores of ``c4d evaluate``: LPIPS, CLIP score and ImageReward, each measured only when its
package is installed and the user names a local copy of its model. Nothing is ever downloaded: a score without
both is reported as "not measured" with the reason (``absent``), and a model given but incomplete is an error
before anything runs.

* LPIPS (``pip install lpips``; lower is closer): the package's own linear heads over torchvision's AlexNet,
  whose weights file (``alexnet-owt-7be5be79.pth``) ``--lpips-model`` names; against the uncached image.
* CLIP score (transformers): 100 x max(cosine(image, prompt), 0), as torchmetrics defines it, with the CLIP
  model of a local directory (``--clip-model``, e.g. a copy of openai/clip-vit-large-patch14).
* ImageReward (``pip install image-reward``): a directory (``--imagereward-model``) holding ``ImageReward.pt``
  and ``med_config.json``; its BLIP loads the ``bert-base-uncased`` tokenizer, which must be in the local
  Hugging Face cache.

All three score images, never latents; a video's first frame stands for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ..errors import InvalidValueError
from .evaluate_target import offline


@dataclass(frozen=True)
class ScoreModels:
    """Local model paths; None: that score is not measured."""

    lpips: str | None = None
    clip: str | None = None
    imagereward: str | None = None


# key -> (column name, the option naming its model, the package it needs)
SCORES = {
    "lpips": ("LPIPS", "--lpips-model FILE", "lpips"),
    "clip": ("CLIP score", "--clip-model DIR", "transformers"),
    "imagereward": ("ImageReward", "--imagereward-model DIR", "ImageReward"),
}


class Scorer(Protocol):
    def __call__(self, images: torch.Tensor, reference: torch.Tensor, prompt: str) -> float:
        """Images ``(N, C, H, W)`` in [0, 1], the uncached ones of the same generation, its prompt."""


def load_scorers(models: ScoreModels, kind: str, device: str) -> tuple[dict[str, Scorer], dict[str, str]]:
    """The scorers that can run, and for every other score the reason it is not measured."""
    scorers, absent = {}, {}
    for key, (name, option, package) in SCORES.items():
        path = getattr(models, key)
        if path is None:
            absent[key] = f"not measured (no local model; {option})"
        elif kind != "image":
            absent[key] = "not measured (the pipeline returns latents, not images)"
        elif importlib.util.find_spec(package) is None:
            absent[key] = f"not measured (package {package} not installed)"
        elif not Path(path).exists():
            raise InvalidValueError(option.split()[0], path, f"an existing local path ({name} is never downloaded)")
        else:
            scorers[key] = _LOADERS[key](Path(path), device)
    return scorers, absent


def to_pil(image: torch.Tensor):
    from PIL import Image

    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


class ClipScore:
    def __init__(self, path: Path, device: str):
        from transformers import CLIPModel, CLIPProcessor

        with offline():
            self.model = CLIPModel.from_pretrained(path, local_files_only=True).to(device).eval()
            self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, reference: torch.Tensor, prompt: str) -> float:
        pictures = [to_pil(i) for i in images]
        inputs = self.processor(text=[prompt] * len(pictures), images=pictures, return_tensors="pt", padding=True,
                                truncation=True).to(self.device)
        out = self.model(**inputs)
        cosine = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)
        return (100 * cosine.clamp(min=0)).mean().item()


class Lpips:
    def __init__(self, path: Path, device: str):
        import lpips

        # pnet_rand: the backbone is built empty (no download) and filled from the user's file below
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
        weights = torch.load(path, map_location="cpu", weights_only=True)
        try:  # lpips keeps AlexNet's ``features.N`` layers as ``sliceK.N``
            backbone = {k: weights[f"features.{k.split('.', 1)[1]}"] for k in model.net.state_dict()}
        except KeyError as err:
            raise InvalidValueError("--lpips-model", str(path), "torchvision's AlexNet weights "
                                    "(alexnet-owt-7be5be79.pth, keys features.N.weight)") from err
        model.net.load_state_dict(backbone)
        self.model = model.to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, reference: torch.Tensor, prompt: str) -> float:
        a, b = (2 * t.to(self.device) - 1 for t in (images, reference))  # lpips takes [-1, 1]
        return self.model(a, b).mean().item()


class ImageRewardScore:
    def __init__(self, path: Path, device: str):
        checkpoint, config = path / "ImageReward.pt", path / "med_config.json"
        if not checkpoint.is_file() or not config.is_file():
            raise InvalidValueError("--imagereward-model", str(path), "a directory with ImageReward.pt and "
                                    "med_config.json (the files of THUDM/ImageReward)")
        module = importlib.import_module("ImageReward.ImageReward")  # the class, not the package's load()
        try:
            with offline():
                model = module.ImageReward(med_config=str(config), device=device)
        except OSError as err:
            raise InvalidValueError("--imagereward-model", str(path), "a model whose BLIP finds the "
                                    "bert-base-uncased tokenizer in the local Hugging Face cache") from err
        model.load_state_dict(torch.load(checkpoint, map_location="cpu"), strict=False)
        self.model = model.to(device).eval()
        self.folder = Path(tempfile.mkdtemp(prefix="c4d-imagereward-"))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, reference: torch.Tensor, prompt: str) -> float:
        scores = []
        for i, image in enumerate(images):  # ImageReward reads image files
            file = self.folder / f"{i}.png"
            to_pil(image).save(file)
            scores.append(float(self.model.score(prompt, str(file))))
        return sum(scores) / len(scores)


_LOADERS = {"lpips": Lpips, "clip": ClipScore, "imagereward": ImageRewardScore}
