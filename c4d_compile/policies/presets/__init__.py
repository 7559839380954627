"""The named presets. Each method is one module here; importing it registers its presets."""

from . import abcache, auto, clusca, duca, foca, fora, hicache, signal, spectrum, taylorseer, toca  # noqa: F401
