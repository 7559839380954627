"""c4d-compile: training-free feature caching for diffusion transformers as a torch.compile backend.

    backend = c4d_backend("taylorseer")
    model = torch.compile(transformer, backend=backend)            # any DiT, bare loops included
    backend = enable_cache(pipe, "taylorseer", budget=10)          # a diffusers pipeline, set up in one call
    c4d_compile.export(transformer, kwargs, "taylorseer", "out/", num_steps=28)   # ONNX + plan.json
    model = c4d_compile.load_exported("out/")                      # ... run by onnxruntime
"""

from __future__ import annotations

from typing import Any

from .backend import C4DBackend, C4DCompileError, C4DWarning, c4d_backend
from .calibration import calibrate
from .errors import (
    C4DError,
    ConfigError,
    ExportedCallError,
    ExportFormatError,
    InvalidValueError,
    MissingDependencyError,
    NotCacheableError,
    NotExportableError,
    UnknownOptionError,
    UnknownPolicyError,
)
from .pipelines import enable_cache
from .policies import (
    BudgetSchedule,
    CalibratedSchedule,
    ExplicitSchedule,
    IntervalSchedule,
    MissingStepCountError,
    Policy,
    Region,
    SpreadSchedule,
    Variable,
    get_policy,
    list_policies,
)
from .policies.schedules import CalibrationFileError
from .settings import Settings

__version__ = "0.2.0"

__all__ = [
    "BudgetSchedule", "C4DBackend", "C4DCompileError", "C4DError", "C4DWarning", "CalibratedSchedule",
    "CalibrationFileError", "ConfigError", "ExplicitSchedule", "ExportFormatError", "ExportedCallError",
    "IntervalSchedule", "InvalidValueError", "MissingDependencyError", "MissingStepCountError", "NotCacheableError",
    "NotExportableError", "Policy", "Region", "Settings", "SpreadSchedule",
    "UnknownOptionError", "UnknownPolicyError", "Variable", "c4d_backend", "calibrate", "enable_cache", "get_policy",
    "list_policies", "export", "load_exported",
]

_LAZY = {"export", "load_exported", "ExportResult", "ExportedModel"}  # the onnx extra: imported when first used


def __getattr__(name: str):
    if name in _LAZY:
        from . import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module 'c4d_compile' has no attribute {name!r}")


def _dynamo_backend(gm, example_inputs, options: dict[str, Any] | None = None, **_: Any):
    """``torch.compile(m, backend="c4d", options={"policy": "taylorseer", ...})``."""
    options = dict(options or {})
    policy = options.pop("policy", "taylorseer")
    return C4DBackend(policy, **options)(gm, example_inputs)


def _register() -> None:
    from torch._dynamo import list_backends, register_backend

    if "c4d" not in list_backends(exclude_tags=()):
        register_backend(_dynamo_backend, name="c4d")


_register()
