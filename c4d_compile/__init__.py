"""c4d-compile: training-free feature caching for diffusion transformers as a torch.compile backend.

    backend = c4d_backend("taylorseer")
    model = torch.compile(transformer, backend=backend)            # any DiT, bare loops included
    backend = enable_cache(pipe, "taylorseer", budget=10)          # a diffusers pipeline, set up in one call
    c4d_compile.export(transformer, kwargs, "taylorseer", "out/", num_steps=28)   # ONNX + plan.json
    model = c4d_compile.load_exported("out/")                      # ... run by onnxruntime

``torch.compile(m, backend="c4d", options={"policy": ...})`` finds the backend through the package's
``torch_dynamo_backends`` entry point. The names below are imported when first used, so ``import c4d_compile``
(and ``c4d --help``) does not import Dynamo.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("c4d-compile")  # one version string: pyproject's
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("C4DBackend", "c4d_backend"), ".compiler.backend"),
    "backend_of": ".compiler.registered_backend",
    "calibrate": ".calibration",
    **dict.fromkeys(("C4DCompileError", "C4DError", "C4DWarning", "ConfigError", "ExportedCallError",
                     "ExportFormatError", "InvalidValueError", "MissingDependencyError", "NotCacheableError",
                     "NotExportableError", "UnknownOptionError", "UnknownPolicyError"), ".errors"),
    "enable_cache": ".pipelines",
    **dict.fromkeys(("BudgetSchedule", "CalibratedSchedule", "ExplicitSchedule", "IntervalSchedule",
                     "MissingStepCountError", "Policy", "Region", "SpreadSchedule", "Variable", "get_policy",
                     "list_policies"), ".policies"),
    **dict.fromkeys(("CalibrationFileError", "RatiosTransferError"), ".policies.schedules"),
    "Settings": ".compiler.settings",
    **dict.fromkeys(("export", "load_exported", "ExportResult", "ExportedModel"), ".onnx_export"),  # the onnx extra
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'c4d_compile' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see
    from .calibration import calibrate  # noqa: F401
    from .compiler.backend import C4DBackend, c4d_backend  # noqa: F401
    from .compiler.registered_backend import backend_of  # noqa: F401
    from .compiler.settings import Settings  # noqa: F401
    from .errors import (  # noqa: F401
        C4DCompileError,
        C4DError,
        C4DWarning,
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
    from .onnx_export import ExportedModel, ExportResult, export, load_exported  # noqa: F401
    from .pipelines import enable_cache  # noqa: F401
    from .policies import (  # noqa: F401
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
    from .policies.schedules import CalibrationFileError, RatiosTransferError  # noqa: F401
