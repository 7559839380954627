"""c4d-compile: training-free feature caching for diffusion transformers as a torch.compile backend.

    backend = c4d_backend("taylorseer-lite")
    model = torch.compile(transformer, backend=backend)
"""

from __future__ import annotations

from typing import Any

from .backend import C4DBackend, C4DWarning, c4d_backend
from .errors import C4DError, ConfigError, InvalidValueError, NotCacheableError, UnknownOptionError, UnknownPolicyError
from .policies import FixedSchedule, Policy, Region, get_policy, list_policies

__version__ = "0.1.0"

__all__ = [
    "C4DBackend", "C4DError", "C4DWarning", "ConfigError", "FixedSchedule", "InvalidValueError",
    "NotCacheableError", "Policy", "Region", "UnknownOptionError", "UnknownPolicyError", "c4d_backend",
    "get_policy", "list_policies",
]


def _dynamo_backend(gm, example_inputs, options: dict[str, Any] | None = None, **_: Any):
    """``torch.compile(m, backend="c4d", options={"policy": "taylorseer-lite", ...})``."""
    options = dict(options or {})
    policy = options.pop("policy", "taylorseer-lite")
    return C4DBackend(policy, **options)(gm, example_inputs)


def _register() -> None:
    from torch._dynamo import list_backends, register_backend

    if "c4d" not in list_backends(exclude_tags=()):
        register_backend(_dynamo_backend, name="c4d")


_register()
