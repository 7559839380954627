"""What ``c4d evaluate`` runs: the user's diffusers pipeline, how one generation is called, what it returns (as a
tensor, and as a thumbnail for the grid).

The pipeline comes from

* a local directory: ``DiffusionPipeline.from_pretrained(path, local_files_only=True)`` (in ``dtype``, moved to
  ``device``); a generation is ``pipe(prompt=..., num_inference_steps=..., generator=..., output_type="pt")``;
* ``module:factory``: a zero-argument callable (the module imported as ``python -m`` would, from the current
  directory too) returning the pipeline, or ``(pipeline, call_kwargs)`` where ``call_kwargs(prompt, seed, steps)``
  returns the keyword arguments of one generation: what a pipeline that takes no text (prompt embeddings, class
  labels) or needs more than the defaults uses.

``call`` options (``--call KEY=VALUE``: height, width, guidance_scale, ...) go into every generation on top.
Nothing is downloaded while the pipeline loads: the Hugging Face Hub is switched to offline mode (``offline``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..errors import InvalidValueError

CallKwargs = Callable[[str, int, int], dict[str, Any]]  # (prompt, seed, steps) -> pipe(**kwargs)
LATENT_OUTPUT = "latent"
THUMBNAIL = 256  # longest side of a grid tile, pixels


@dataclass(frozen=True)
class Target:
    pipe: Any
    call_kwargs: CallKwargs
    name: str
    call: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # on top of call_kwargs

    def kwargs(self, prompt: str, seed: int, steps: int) -> dict[str, Any]:
        return {**self.call_kwargs(prompt, seed, steps), **self.call}

    def kind(self, prompt: str) -> str:
        """``latent`` when the pipeline is asked for latents, else ``image`` (decoded, values in [0, 1])."""
        return LATENT_OUTPUT if self.kwargs(prompt, 0, 1).get("output_type") == LATENT_OUTPUT else "image"

    def generate(self, prompt: str, seed: int, steps: int) -> torch.Tensor:
        """One generation's output as a float tensor on the CPU: images ``(B, [F,] C, H, W)`` or latents as the
        pipeline returns them."""
        kwargs = self.kwargs(prompt, seed, steps)
        with torch.no_grad():
            result = self.pipe(**kwargs)
        return output_tensor(result, kwargs.get("output_type", "pil"))


def default_call_kwargs(prompt: str, seed: int, steps: int) -> dict[str, Any]:
    """A text-to-image / video pipeline's own arguments; the seed drives a CPU generator (the same noise on
    every device)."""
    return {"prompt": prompt, "num_inference_steps": steps, "generator": torch.Generator().manual_seed(seed),
            "output_type": "pt"}


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """The Hugging Face Hub in offline mode: a file that is not already local fails instead of downloading."""
    try:
        from huggingface_hub import constants
    except ImportError:  # nothing can download through it then
        yield
        return
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def load_target(source: str, call: Mapping[str, Any] | None = None, device: str | None = None,
                dtype: str = "auto") -> Target:
    """The pipeline of ``source`` (a local directory or ``module:factory``; module doc)."""
    call = MappingProxyType(dict(call or {}))
    if Path(source).is_dir():
        return Target(_from_directory(source, device, dtype), default_call_kwargs, Path(source).name, call)
    if ":" not in source:
        raise InvalidValueError("pipeline", source, "a local pipeline directory or module:factory (a zero-argument "
                                "callable returning a pipeline or (pipeline, call_kwargs))")
    module_name, _, attr = source.partition(":")
    if os.getcwd() not in sys.path:  # as ``python -m`` imports
        sys.path.insert(0, os.getcwd())
    with offline():
        made = getattr(importlib.import_module(module_name), attr)()
    pipe, call_kwargs = made if isinstance(made, tuple) else (made, default_call_kwargs)
    if not callable(pipe) or getattr(pipe, "scheduler", None) is None:
        raise InvalidValueError("pipeline", f"{source} -> {type(pipe).__name__}", "a diffusers pipeline (with a "
                                "scheduler), or (pipeline, call_kwargs)")
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return Target(pipe, call_kwargs, attr, call)


def _from_directory(path: str, device: str | None, dtype: str) -> Any:
    from diffusers import DiffusionPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise InvalidValueError("dtype", dtype, "auto or a torch dtype name (bfloat16, float16, float32)")
    with offline():
        pipe = DiffusionPipeline.from_pretrained(path, torch_dtype=torch_dtype, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def read_prompts(prompts: Sequence[str] | None, prompts_file: str | None) -> tuple[str, ...]:
    """``prompts``, or the lines of ``prompts_file`` (blank lines and lines starting with # skipped)."""
    if bool(prompts) == bool(prompts_file):
        raise InvalidValueError("prompts", prompts or prompts_file, "either a list of prompts or a prompts file")
    if prompts_file:
        path = Path(prompts_file)
        if not path.is_file():
            raise InvalidValueError("prompts_file", prompts_file, "an existing text file, one prompt a line")
        prompts = [line.strip() for line in path.read_text().splitlines()]
        prompts = [p for p in prompts if p and not p.startswith("#")]
        if not prompts:
            raise InvalidValueError("prompts_file", prompts_file, "a file with at least one prompt")
    return tuple(prompts)


def output_tensor(result: Any, output_type: str) -> torch.Tensor:
    """The images (``images``, or a video pipeline's ``frames``) or latents of a pipeline call as a float tensor:
    images channels-first in [0, 1]."""
    value = result[0] if isinstance(result, tuple) else next(
        (getattr(result, k) for k in ("images", "frames") if getattr(result, k, None) is not None), result)
    if output_type == LATENT_OUTPUT or isinstance(value, torch.Tensor) and output_type == "pt":
        return value.detach().float().cpu()
    return _to_tensor(value)


def _to_tensor(value: Any) -> torch.Tensor:
    """PIL images (nested in lists for videos) or channels-last numpy arrays -> channels-first tensors."""
    if isinstance(value, (list, tuple)):
        return torch.stack([_to_tensor(v) for v in value])
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu()
    array = np.asarray(value)
    tensor = torch.from_numpy(array.astype(np.float32))
    if array.dtype == np.uint8:
        tensor = tensor / 255.0
    if tensor.dim() == 2:  # a grey PIL image
        tensor = tensor[..., None]
    return tensor.movedim(-1, -3)


def frames(images: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` images, or the first frame of each ``(B, F, C, H, W)`` video."""
    while images.dim() > 4:
        images = images[:, 0]
    return images


def thumbnail(output: torch.Tensor, kind: str) -> torch.Tensor | None:
    """A grid tile ``(3, h, w)`` in [0, 1]: the image (a video's first frame), or a latent's first 3 channels
    each scaled to [0, 1]; None for a latent without two spatial dims (packed tokens)."""
    if kind == "image":
        x = frames(output)[0].clamp(0, 1)
    else:
        x = output[0]
        if x.dim() < 3:
            return None
        x = x[:3]
        while x.dim() > 3:  # (C, F, H, W): the first frame
            x = x[:, 0]
        low = x.flatten(1).min(1).values[:, None, None]
        high = x.flatten(1).max(1).values[:, None, None]
        x = (x - low) / (high - low).clamp(min=1e-12)
    if x.shape[0] != 3:
        x = x[:1].expand(3, -1, -1)
    scale = THUMBNAIL / max(x.shape[-2:])
    if scale < 1:
        x = torch.nn.functional.interpolate(x[None], scale_factor=scale, mode="area")[0]
    return x.float()
