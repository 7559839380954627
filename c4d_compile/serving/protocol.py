"""The JSON form of a request and its answer, one for every front (HTTP, Ray Serve)::

    {"id": "r1", "inputs": {"hidden_states": [[...]], ...}, "timesteps": [1.0, 0.75, ...]}
      200 {"id": "r1", "shape": [1, 16, 16], "output": [[...]]}
      400 {"error": "InvalidValueError", "message": "..."}      a malformed request, refused before any batch
      409 {"error": "Cancelled", "id": "r1"}                     cancelled between steps
      500 {"error": "RequestFailedError", "message": "..."}      its batch raised (the others went on)

Tensors travel as nested lists and take the template's dtype and device.
"""

from __future__ import annotations

from concurrent.futures import CancelledError

import torch

from ..errors import C4DError, InvalidValueError
from .server import RequestFuture, StepServer


def submit_json(server: StepServer, body) -> RequestFuture:
    """Check and queue a JSON request (a typed error when it is malformed)."""
    if not isinstance(body, dict):
        raise InvalidValueError("request", type(body).__name__, 'an object {"inputs": ..., "timesteps": ...}')
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise InvalidValueError("inputs", type(inputs).__name__, "an object of the model's inputs")
    tensors = {}
    for key, value in inputs.items():
        like = server.template.get(key)
        if isinstance(like, torch.Tensor):
            try:
                value = torch.tensor(value, dtype=like.dtype, device=like.device)
            except (TypeError, ValueError, RuntimeError) as error:
                raise InvalidValueError(key, type(value).__name__, f"a nested list of numbers ({error})") from None
        tensors[key] = value
    return server.submit(tensors, body.get("timesteps") or (), body.get("id"))


def answer(future: RequestFuture, latent: torch.Tensor) -> tuple[int, dict]:
    return 200, {"id": future.rid, "shape": list(latent.shape), "output": latent.tolist()}


def failure(error: BaseException, rid=None) -> tuple[int, dict]:
    """The status and body of a request that did not complete; errors that are not the request's are raised."""
    if isinstance(error, CancelledError):
        return 409, {"error": "Cancelled", "id": rid}
    if isinstance(error, C4DError):
        return (400 if isinstance(error, InvalidValueError) else 500), {"error": type(error).__name__,
                                                                        "message": str(error)}
    raise error
