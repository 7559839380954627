"""The named presets. Each method is one module here; importing it registers its presets."""

from . import abcache, foca, fora, hicache, taylorseer  # noqa: F401
