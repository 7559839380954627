"""Signal handlers: one kind of signal's whole slice of a plan per file, registered by its ``Signal``.

Importing the package registers every handler; ``handler_for(schedule)`` returns the plan's.
"""

from . import full_step_change, probe_change, spectral_input, transformation_rate, verification  # noqa: F401  (register)
from .base import SignalHandler, l1_sums, relative_l1
from .registry import handler_for, register_signal
from .verification import VERIFY_ERROR

__all__ = ["VERIFY_ERROR", "SignalHandler", "handler_for", "l1_sums", "register_signal", "relative_l1"]
