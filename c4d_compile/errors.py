"""Typed errors a user can meet. Each message says what was wrong and what is valid."""

from __future__ import annotations

from collections.abc import Iterable


class C4DError(Exception):
    """Base class of every error raised by c4d-compile."""


class ConfigError(C4DError, ValueError):
    """A policy, option or value the configuration does not accept."""


class UnknownPolicyError(ConfigError, KeyError):
    def __init__(self, name: str, valid: Iterable[str]):
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown policy {name!r}; valid policies: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class UnknownOptionError(ConfigError, TypeError):
    def __init__(self, option: str, valid: Iterable[str], where: str = "policy"):
        self.option = option
        self.valid = sorted(valid)
        super().__init__(f"unknown {where} option {option!r}; valid options: {', '.join(self.valid)}")


class InvalidValueError(ConfigError):
    def __init__(self, field: str, value: object, valid: str):
        self.field = field
        self.value = value
        super().__init__(f"invalid value for {field!r}: {value!r}; expected {valid}")


class NotCacheableError(C4DError):
    """strict=True and the traced graph offers nothing to cache (no block stack, no timestep input...)."""


class NotExportableError(C4DError):
    """``export`` cannot write this model or policy; the message says why and what does export."""


class ExportFormatError(C4DError):
    """An exported directory is incomplete, corrupted or does not match its ``plan.json``: it is refused,
    never run to a wrong result."""


class ExportedCallError(C4DError, ValueError):
    """An exported model was called with inputs or steps it was not exported for; the message lists them."""


class MissingDependencyError(C4DError, ImportError):
    """An optional feature needs a package that is not installed; the message says what to install."""


class C4DWarning(UserWarning):
    """The model runs, but (part of) it is not cached; the message says why."""


class C4DCompileError(C4DError):
    """strict=True and a stage of the compilation failed; the message names the stage."""
