"""``enable_cache(pipe, policy, **options)``: set a diffusers pipeline up for caching in one call.

A compiled transformer cannot see how many steps the sampler will run or which guidance branch a
call is; the pipeline knows both. This helper compiles each denoiser of the pipeline with one
backend and connects the two facts:

* the step count: the scheduler's ``set_timesteps`` (every diffusers pipeline calls it, directly or
  through ``retrieve_timesteps``) begins a generation of ``len(scheduler.timesteps)`` step calls, so
  budgets and a full last step need no ``num_steps`` — also for samplers that call the model twice
  per step (Heun), whose timesteps list has an entry per call. Image-to-image and inpainting run only
  the last ``strength`` part of that list and say where it starts with ``set_begin_index``: the
  generation is then the steps that run;
* the guidance branch: the pipeline's ``transformer.cache_context("cond" / "uncond", ...)`` names the
  context of the calls inside (and its ``step_index`` / ``num_inference_steps``, when it passes them).
  diffusers' own cache hooks still see the context too.

Two denoisers (Wan 2.2's ``transformer`` and ``transformer_2``) share the backend and keep separate
caches: state is keyed by the model's parameters. Swap the scheduler before calling this, not after
(the new one would not report its timesteps).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .backend import C4DBackend, c4d_backend
from .errors import InvalidValueError
from .policies import Policy

DENOISERS = ("transformer", "transformer_2")


def enable_cache(
    pipe: Any, policy: str | Policy = "taylorseer", *, denoisers: Sequence[str] | None = None,
    compile_options: dict[str, Any] | None = None, **options: Any,
) -> C4DBackend:
    """Compile the pipeline's denoiser(s) with a c4d backend and return the backend (for ``stats()``).

    ``options`` go to ``c4d_backend`` (policy overrides and settings); ``compile_options`` to
    ``torch.compile`` (e.g. ``{"fullgraph": True}``).
    """
    backend = c4d_backend(policy, **options)
    enable_cache_with(pipe, backend, denoisers=denoisers, compile_options=compile_options)
    return backend


def enable_cache_with(
    pipe: Any, backend: C4DBackend, *, denoisers: Sequence[str] | None = None,
    compile_options: dict[str, Any] | None = None,
) -> Callable[[], None]:
    """``enable_cache`` with a backend made elsewhere; returns a function that undoes it."""
    names = list(denoisers) if denoisers is not None else [n for n in DENOISERS if getattr(pipe, n, None) is not None]
    if not names:
        raise InvalidValueError("pipe", type(pipe).__name__,
                                f"a pipeline with a denoiser attribute ({', '.join(DENOISERS)})")
    undo = []
    for name in names:
        given = getattr(pipe, name)
        module = getattr(given, "_orig_mod", given)  # already torch.compile'd: compile the module itself
        if not isinstance(module, torch.nn.Module):
            raise InvalidValueError(name, type(module).__name__, "a torch.nn.Module")
        _route_cache_context(module, backend)
        # compiled in place (Module.compile), so pipe.<name> stays the diffusers model: the pipeline's methods that
        # look for ModelMixin components (set_adapters, fuse_lora, unfuse_lora, disable_lora, unload_lora_weights,
        # ...) would not see an OptimizedModule, and some of them then do nothing without a word
        previous = module._compiled_call_impl
        module.compile(backend=backend, **(compile_options or {}))
        setattr(pipe, name, module)
        undo.append(lambda name=name, given=given, module=module, previous=previous: (
            setattr(pipe, name, given), setattr(module, "_compiled_call_impl", previous),
            module.__dict__.pop("cache_context", None)))
    undo.append(_report_timesteps(pipe.scheduler, backend))

    def restore() -> None:
        for step in undo:
            step()

    return restore


def _route_cache_context(module: torch.nn.Module, backend: C4DBackend) -> None:
    """The pipeline's ``cache_context(...)`` on this module also names the c4d context."""
    own = getattr(type(module), "cache_context", None)

    @contextlib.contextmanager
    def cache_context(name: str, **kwargs: Any) -> Iterator[None]:
        with backend.cache_context(name, kwargs.get("step_index"), kwargs.get("num_inference_steps")):
            if own is None:
                yield
            else:
                with own(module, name, **kwargs):
                    yield

    module.cache_context = cache_context  # an instance attribute: this module only


def _report_timesteps(scheduler: Any, backend: C4DBackend) -> Callable[[], None]:
    """Wrap the scheduler's ``set_timesteps`` and ``set_begin_index`` (once) so that they begin a generation in
    every backend set up on this pipeline (one per denoiser is allowed); returns the undo.

    ``set_begin_index(i)`` is how image-to-image and inpainting pipelines (and ``strength`` in general) say
    that only the timesteps from ``i`` on will run: the generation is those, so a budget is placed over the
    steps that run and the last of them is full.
    """
    if getattr(scheduler, "set_timesteps", None) is None:
        raise InvalidValueError("pipe.scheduler", type(scheduler).__name__, "a diffusers scheduler with set_timesteps")
    backends = getattr(scheduler.set_timesteps, "__c4d_backends__", None)
    if backends is None:
        backends = []
        _report_after(scheduler, "set_timesteps", backends, lambda *args, **kwargs: scheduler.timesteps)
        if getattr(scheduler, "set_begin_index", None) is not None:
            _report_after(scheduler, "set_begin_index", backends,
                          lambda begin_index=0: scheduler.timesteps[begin_index:])
    backends.append(backend)

    def undo() -> None:
        backends.remove(backend)
        if not backends:
            for name in ("set_timesteps", "set_begin_index"):
                scheduler.__dict__.pop(name, None)

    return undo


def _report_after(scheduler: Any, name: str, backends: list[C4DBackend], timesteps: Callable[..., Any]) -> None:
    """Replace ``scheduler.<name>`` (on the instance) by one that, after it ran, begins a generation of
    ``timesteps(*its arguments)`` in each of ``backends``."""
    original = getattr(scheduler, name)

    @functools.wraps(original)  # pipelines inspect its signature (``retrieve_timesteps`` looks for ``sigmas``)
    def reporting(*args: Any, **kwargs: Any):
        result = original(*args, **kwargs)
        run = timesteps(*args, **kwargs)
        for each in backends:
            each.begin_generation(run)
        return result

    reporting.__c4d_backends__ = backends
    setattr(scheduler, name, reporting)
