"""The named presets. Each method is one module here; importing it registers its presets."""

from . import abcache, clusca, duca, foca, fora, hicache, signal, taylorseer, toca  # noqa: F401
