"""Signal handlers by the ``Signal`` their schedule names: ``handler_for(schedule)`` is the plan's handler."""

from __future__ import annotations

from ...errors import InvalidValueError
from ...policies.schedules.signal import Signal

HANDLERS: dict[Signal, type] = {}


def register_signal(*signals: Signal):
    """Class decorator: the handler of these signals."""

    def register(cls: type) -> type:
        for signal in signals:
            HANDLERS[signal] = cls
        return cls

    return register


def handler_for(schedule):
    """The handler of ``schedule``'s signal, bound to the schedule; None for a schedule that reads no signal."""
    if schedule.signal is None:
        return None
    cls = HANDLERS.get(schedule.signal)
    if cls is None:
        raise InvalidValueError("signal", schedule.signal, ", ".join(s.value for s in HANDLERS))
    return cls(schedule)
