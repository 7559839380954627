"""Tiny, randomly initialised diffusers transformers.

Each entry mirrors the structure of a real checkpoint (block lists, conditioning paths, positional
embeddings, the forward kwargs its pipeline passes) at a size where one forward takes milliseconds on a
CPU. The weights are random but seeded, so outputs are reproducible; they are for exercising graph capture
and caching, not for producing images.

diffusers is imported only inside ``build()``: listing the registry stays cheap and works without it.
"""

from __future__ import annotations

from ..errors import ConfigError
from .tiny_image_models import _DIT, _FLUX, _FLUX_BENCH, _PIXART, _QWENIMAGE, _SD3
from .tiny_model import TIMESTEP_KINDS, TinyModel, first_output
from .tiny_video_models import _COGVIDEOX, _HUNYUANVIDEO, _LTXVIDEO, _WAN

__all__ = [
    "TIMESTEP_KINDS",
    "TINY_MODELS",
    "TinyModel",
    "UnknownModelError",
    "first_output",
    "get_tiny_model",
]


class UnknownModelError(ConfigError, KeyError):
    """Raised by get_tiny_model for a name not in TINY_MODELS."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it.
        return str(self.args[0])


def get_tiny_model(name: str) -> TinyModel:
    try:
        return TINY_MODELS[name]
    except KeyError:
        valid = ", ".join(sorted(TINY_MODELS))
        raise UnknownModelError(f"unknown tiny model {name!r}; valid names: {valid}") from None


TINY_MODELS: dict[str, TinyModel] = {
    m.name: m
    for m in (
        _FLUX,
        _SD3,
        _PIXART,
        _DIT,
        _WAN,
        _HUNYUANVIDEO,
        _QWENIMAGE,
        _COGVIDEOX,
        _LTXVIDEO,
        _FLUX_BENCH,
    )
}
