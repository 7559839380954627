"""Schedules: which step calls compute in full. A new kind is a new file and an entry in SCHEDULE_KINDS."""

from .base import MissingStepCountError, RunFacts, Schedule, ScheduleBase, StepSetSchedule
from .budget import BudgetSchedule
from .calibrated import (
    CalibratedSchedule,
    CalibrationFileError,
    CalibrationRequired,
    CalibrationRequiredError,
    read_calibration,
    write_calibration,
)
from .codebook import CodebookSchedule
from .explicit import ExplicitSchedule
from .growing import GrowingIntervalSchedule
from .interval import IntervalSchedule
from .magnitude import MagnitudeSchedule, RatiosMissingError, RatiosTransferError, read_ratios, write_ratios
from .placement import spread_evenly
from .signal import Decision, Reference, Signal, SignalSchedule, read_rescale, write_rescale
from .speculative import SpeculativeSchedule
from .spread import SpreadSchedule

# Kinds a flat override can select by its fields, in the order of preference when several own them.
SCHEDULE_KINDS = (SpreadSchedule, IntervalSchedule, BudgetSchedule, ExplicitSchedule, SignalSchedule,
                  MagnitudeSchedule, CodebookSchedule, SpeculativeSchedule, GrowingIntervalSchedule)

__all__ = [
    "SCHEDULE_KINDS", "BudgetSchedule", "CalibratedSchedule", "CalibrationFileError", "CalibrationRequired",
    "CalibrationRequiredError", "CodebookSchedule",
    "Decision", "ExplicitSchedule", "GrowingIntervalSchedule", "IntervalSchedule", "MagnitudeSchedule",
    "MissingStepCountError", "RatiosMissingError", "RatiosTransferError", "Reference", "RunFacts", "Schedule",
    "ScheduleBase", "Signal", "SignalSchedule",
    "SpeculativeSchedule", "SpreadSchedule", "StepSetSchedule", "read_calibration", "read_ratios", "read_rescale",
    "spread_evenly", "write_calibration", "write_ratios", "write_rescale",
]
