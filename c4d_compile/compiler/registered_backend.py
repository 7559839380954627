"""``torch.compile(m, backend="c4d", options={...})``: the backend Dynamo finds by name, one per compiled module.

Dynamo calls a registered backend once per graph it compiles: every fragment of a model that graph breaks
split (a prologue, the split-stack repair's retrace), every recompile for a new shape. A cache needs one
session across all of them — the stack graph reads the timestep its prologue lends, a recompile must not
restart the generation — so every graph of one ``torch.compile`` call is handed the same ``C4DBackend``,
exactly as ``torch.compile(m, backend=c4d_backend(...))`` would be. The ``torch.compile`` call is told by the
object it wraps the backend in (``torch._TorchCompileWrapper``, one per call; it calls the backend directly);
``backend_of(compiled)`` finds the backend again from the compiled module, for its stats.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from typing import Any

import torch

from ..errors import C4DWarning, InvalidValueError
from .backend import C4DBackend

# the attribute of torch.compile's wrapper (one per call) that holds the backend of every graph the call compiles:
# it lives as long as the compiled module does (the wrapper is unhashable, so it cannot key a weak dictionary)
_ATTRIBUTE = "_c4d_backend"


def dynamo_backend(gm: torch.fx.GraphModule, example_inputs: list, options: dict[str, Any] | None = None,
                   **_: Any):
    """The ``"c4d"`` entry point: ``options`` are ``c4d_backend``'s (``policy`` names the preset, default
    ``"taylorseer"``)."""
    call = _compile_call()
    backend = getattr(call, _ATTRIBUTE, None)
    if backend is None:
        options = dict(options or {})
        backend = C4DBackend(options.pop("policy", "taylorseer"), **options)
        if call is None:  # not called by torch.compile's wrapper: nothing ties this graph to the others
            warnings.warn("c4d: the 'c4d' backend was not called by torch.compile, so each graph gets a backend of "
                          "its own; pass backend=c4d_compile.c4d_backend(...) to share one", C4DWarning, stacklevel=2)
        else:
            setattr(call, _ATTRIBUTE, backend)
    return backend(gm, example_inputs)


def _compile_call() -> object | None:
    """The ``torch.compile`` call this graph belongs to: the wrapper that called the backend."""
    wrapper = getattr(torch, "_TorchCompileWrapper", None)
    frame = sys._getframe(2)  # above dynamo_backend: its caller
    for _ in range(3):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if wrapper is not None and isinstance(owner, wrapper):
            return owner
        frame = frame.f_back
    return None


def backend_of(compiled: Any) -> C4DBackend:
    """The ``C4DBackend`` serving a compiled model: a ``torch.compile`` result (``backend="c4d"`` or
    ``backend=c4d_backend(...)``) or a module compiled in place (``module.compile(backend=...)``)."""
    callback = _dynamo_callback(compiled)
    seen = 0
    while callback is not None and seen < 8:  # Dynamo's wrappers, each holding the one it wraps
        if isinstance(callback, C4DBackend):
            return callback
        registered = getattr(callback, _ATTRIBUTE, None)
        if registered is not None:
            return registered
        compiler = getattr(callback, "compiler_fn", None)  # torch.compile's wrapper of a backend object
        if isinstance(compiler, C4DBackend):
            return compiler
        callback, seen = getattr(callback, "_torchdynamo_orig_backend", None), seen + 1
    raise InvalidValueError("compiled", type(compiled).__name__,
                            "a model compiled with backend='c4d' or backend=c4d_backend(...) that has been called once")


def _dynamo_callback(compiled: Any) -> object | None:
    context = getattr(compiled, "dynamo_ctx", None)  # torch.compile(module)
    if context is not None:
        return context.callback
    call = getattr(compiled, "_compiled_call_impl", None) or compiled  # module.compile(), or torch.compile(fn)
    if not callable(call) or not hasattr(call, "_torchdynamo_orig_callable"):
        return None
    return inspect.getclosurevars(call).nonlocals.get("callback")
