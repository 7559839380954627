"""Serving: a step-level server over a cached model (``server.py``), its HTTP front (``http.py``) and a Ray Serve
deployment of it (``ray_app.py``, with ``ray[serve]`` installed)."""

from .server import RequestFailedError, RequestFuture, StepServer, euler_flow

__all__ = ["RequestFailedError", "RequestFuture", "StepServer", "euler_flow"]
