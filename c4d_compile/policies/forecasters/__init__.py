"""Forecasters: each predicts a cached value as weights over the values of past full steps."""

from .adams_bashforth import AdamsBashforth
from .base import Forecaster
from .foca import FoCa
from .hermite import Hermite
from .least_squares import LeastSquares
from .reuse import Reuse
from .spectrum import Spectrum
from .taylor import Taylor

__all__ = ["AdamsBashforth", "FoCa", "Forecaster", "Hermite", "LeastSquares", "Reuse", "Spectrum", "Taylor"]
