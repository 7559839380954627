"""How the backend compiles, apart from what it caches: one frozen settings object.

Policy overrides (``interval``, ``budget``, ``order``, ...) change what is cached and when; these
change how the variants are built and lowered. ``c4d_backend(policy, lowering=..., strict=...)``
routes each keyword to the one that owns it; ``settings=Settings(...)`` passes them at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ..errors import InvalidValueError
from ..lowering import LOWERINGS
from ..lowering.npu import NPU_MODES

# Dynamo's limits while one process compiles the same forward code many times, each with its own backend (the
# bench's rows, auto's candidates, an evaluation's methods): past the default of 8 cache entries Dynamo would run
# the later ones uncompiled, so uncached, without a word in the results.
DYNAMO_LIMITS = {"recompile_limit": 256, "accumulated_recompile_limit": 4096}

INDUCTOR_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Settings:
    # "inductor" (CPU and CUDA), "eager" (the GraphModules as Python: the reference) or "npu" (Ascend, torchair)
    lowering: str = "inductor"
    # True: a graph that cannot be cached, or a failure in analysis / plan / rewrite / lowering, raises
    # instead of running that graph uncached with a C4DWarning.
    strict: bool = False
    mode: str | None = None  # inductor mode, as torch.compile's ``mode=``; for npu, torchair's (NPU_MODES)
    inductor_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # config patches
    # npu: torchair CompilerConfig fields by dotted path, e.g. {"experimental_config.frozen_parameter": True}
    npu_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Keep data-dependent ops (nonzero, .item(), .tolist()) in the graph instead of breaking it there: sets
    # Dynamo's capture_scalar_outputs and capture_dynamic_output_shape_ops for the whole process (Dynamo
    # reads them when it starts tracing, before any backend is called). Off by default because it is global.
    capture_data_dependent: bool = False
    # A graph break inside the blocks (which leaves nothing to cache): call the submodule class that holds it
    # as one opaque op (it runs eagerly, uncompiled) and retrace the forward as one graph. See split_stack.
    opaque_calls: bool = True
    # A projection a variant reads only in part (the modulation of an adaLN block whose gates alone a cached step
    # reads) computes only the rows read. See compiler/passes/narrow_projections.py; off: every variant computes
    # its projections whole, as the model does.
    narrow_projections: bool = True

    def __post_init__(self) -> None:
        if self.lowering not in LOWERINGS:
            raise InvalidValueError("lowering", self.lowering, f"one of {sorted(LOWERINGS)}")
        for name in ("strict", "capture_data_dependent", "opaque_calls", "narrow_projections"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidValueError(name, getattr(self, name), "True or False")
        modes = (None, *NPU_MODES) if self.lowering == "npu" else INDUCTOR_MODES
        if self.mode not in modes:
            raise InvalidValueError("mode", self.mode, f"one of {list(modes)} with lowering={self.lowering!r}")
        for name, owner in (("inductor_options", "inductor"), ("npu_options", "npu")):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise InvalidValueError(name, value, f"a mapping of {owner} config names")
            if value and self.lowering != owner:
                raise InvalidValueError(name, dict(value), f"empty with lowering={self.lowering!r} (they configure "
                                        f"lowering={owner!r})")
            object.__setattr__(self, name, MappingProxyType(dict(value)))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def apply_capture(self) -> None:
        import torch._dynamo

        torch._dynamo.config.capture_scalar_outputs = True
        torch._dynamo.config.capture_dynamic_output_shape_ops = True

    def inductor_config(self) -> dict[str, Any]:
        """The inductor config patches of ``mode`` and ``inductor_options`` (later wins)."""
        import torch

        patches = dict(torch._inductor.list_mode_options(self.mode)) if self.mode else {}
        patches.update(self.inductor_options)
        return patches
