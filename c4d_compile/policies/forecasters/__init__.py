"""Forecasters: each predicts a cached value as weights over the values of past full steps."""

from .adams_bashforth import AdamsBashforth
from .base import Forecaster
from .foca import FoCa
from .hermite import Hermite
from .reuse import Reuse
from .spectrum import Spectrum
from .taylor import Taylor

__all__ = ["AdamsBashforth", "FoCa", "Forecaster", "Hermite", "Reuse", "Spectrum", "Taylor"]
