"""A step server over one of the project's tiny diffusers transformers (``c4d_compile.zoo``): what the examples,
the tests and a Ray Serve replica build (a module-level function, so a replica can be handed it)."""

from __future__ import annotations

import torch

from ..compiler.backend import c4d_backend
from ..zoo.tiny_diffusers import get_tiny_model
from .server import StepServer


def tiny_server(model: str = "flux", policy: str | None = "taylorseer", *, lowering: str = "eager",
                max_batch: int = 16, **options) -> StepServer:
    """The tiny ``model`` compiled with a dynamic batch size, cached with ``policy`` and its ``options``
    (``policy=None``: the plain compiled model), served by a :class:`StepServer`."""
    spec = get_tiny_model(model)
    backend = c4d_backend(policy, lowering=lowering, **options) if policy is not None else None
    compiled = torch.compile(spec.build().eval(), backend=backend if backend is not None else lowering, dynamic=True)
    return StepServer(compiled, backend, spec.make_inputs(batch=1), latent_key=spec.latent_key,
                      timestep_key=spec.timestep_key, max_batch=max_batch)
