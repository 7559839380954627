"""The step server as a Ray Serve deployment: each replica builds its own server (model compiled there, its own
requests and cache state) and batches the requests Ray routes to it; replicas scale the loop out, Ray does the
routing and the HTTP. Requests and answers are ``protocol.py``'s JSON::

    from c4d_compile.serving.ray_app import cached_deployment
    from c4d_compile.serving.tiny import tiny_server
    app = cached_deployment(functools.partial(tiny_server, "flux", "taylorseer"), num_replicas=2)
    handle = serve.run(app)                    # HTTP: POST http://127.0.0.1:8000/ with the JSON body
    print(handle.remote({"inputs": ..., "timesteps": [...]}).result())

Needs ``pip install "ray[serve]"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..errors import MissingDependencyError
from .protocol import answer, failure, submit_json
from .server import StepServer

try:
    from ray import serve
    from starlette.responses import JSONResponse  # installed with ray[serve]
except ImportError:  # the rest of the package does not need Ray
    serve = JSONResponse = None


class CachedDiffusion:
    """One replica: a step server built by ``build`` and started; each call is one request, answered when its
    last step is done while the server batches it with the replica's other requests."""

    def __init__(self, build: Callable[[], StepServer]):
        self.server = build()
        self.server.start()

    async def __call__(self, request) -> dict:
        body = request if isinstance(request, dict) else await request.json()  # a handle's dict, or HTTP
        try:
            future = submit_json(self.server, body)
            status, reply = answer(future, await asyncio.wrap_future(future))
        except Exception as error:  # noqa: BLE001 - what is not the request's is raised again by failure()
            status, reply = failure(error, body.get("id") if isinstance(body, dict) else None)
        if isinstance(request, dict):
            return {"status": status, **reply}
        return JSONResponse(reply, status_code=status)

    def stats(self) -> dict:
        """The replica's batched calls, the rows they computed, requests pending, cache state held."""
        server = self.server
        return {"calls": server.calls, "rows": server.rows, "pending": server.pending,
                "state_bytes": server.state_bytes}

    def check_health(self) -> None:
        """Ray restarts a replica whose check raises: one whose serving loop has stopped."""
        if not self.server.alive:
            raise RuntimeError("the step server's loop is not running")

    def __del__(self) -> None:
        self.server.stop()


def cached_deployment(build: Callable[[], StepServer], *, num_replicas: int = 1, **deployment_options):
    """A Ray Serve application of :class:`CachedDiffusion` replicas, each built by ``build`` (picklable: a
    module-level function or a ``functools.partial`` of one)."""
    if serve is None:
        raise MissingDependencyError('the Ray Serve deployment needs Ray: pip install "ray[serve]"')
    deployment = serve.deployment(CachedDiffusion, num_replicas=num_replicas, **deployment_options)
    return deployment.bind(build)
