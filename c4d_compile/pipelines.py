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
caches: state is keyed by the model's parameters. A ControlNet pipeline's ``controlnet`` is a DiT stack too and
is compiled by ``enable_cache`` with the same backend, so it caches on the same schedule with a cache of its own
(its contexts are named ``context[controlnet]`` in stats); each net of a multi-ControlNet (``controlnet.nets``) is
compiled apart (``context[controlnet.0]``, ...). ``denoisers=("transformer",)`` leaves it uncompiled, and so does a
schedule fitted to the transformer's graph (a calibration file, magnitude ratios, a rescale polynomial: with a
warning); ``enable_cache_with`` compiles the denoisers alone unless told (calibration records one model's graph).
Offloading that keeps the block stack out of one graph (group offloading, weights on the meta device) is refused
with a ``ConfigError`` saying what to use instead (``refuse_offloading``). Swap the scheduler before calling this,
not after (the new one would not report its timesteps).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .compiler.backend import C4DBackend, c4d_backend
from .errors import C4DWarning, ConfigError, InvalidValueError
from .policies import Policy, Region

DENOISERS = ("transformer", "transformer_2")
CONTROLNETS = ("controlnet",)  # compiled with the denoisers when the pipeline has one; named in stats


def enable_cache(
    pipe: Any, policy: str | Policy = "taylorseer", *, denoisers: Sequence[str] | None = None,
    compile_options: dict[str, Any] | None = None, **options: Any,
) -> C4DBackend:
    """Compile the pipeline's denoiser(s) (and ControlNet) with a c4d backend and return the backend (for ``stats()``).

    ``denoisers`` names the pipeline attributes to compile (default: those of ``DENOISERS`` and ``CONTROLNETS`` the
    pipeline has; ``("transformer",)`` leaves a ControlNet uncompiled). ``options`` go to ``c4d_backend`` (policy
    overrides and settings); ``compile_options`` to ``torch.compile`` (e.g. ``{"fullgraph": True}``).
    """
    backend = c4d_backend(policy, **options)
    if denoisers is None:
        denoisers = [n for n in DENOISERS if getattr(pipe, n, None) is not None]
        for name in CONTROLNETS if denoisers else ():  # a ControlNet alone is no pipeline to cache
            if getattr(pipe, name, None) is not None and _serves_another(backend, name):
                denoisers.append(name)
    enable_cache_with(pipe, backend, denoisers=denoisers, compile_options=compile_options)
    return backend


def _serves_another(backend: C4DBackend, name: str) -> bool:
    """Whether the backend's schedule also serves a model it was not fitted to: a calibration file, magnitude ratios or
    a rescale polynomial recorded on the transformer's graph refuse the ControlNet's (say so: it then runs uncached)."""
    try:
        backend.policy.schedule.check_plan({"graph": f"c4d: the graph of pipe.{name}"})
    except ConfigError:
        warnings.warn(f"c4d: pipe.{name} runs uncompiled and uncached, in full every step: the schedule "
                      f"({backend.policy.schedule.describe()}) was fitted to the transformer's graph and refuses "
                      f"another; to cache it, give it a backend of its own: enable_cache_with(pipe, c4d_backend(...), "
                      f"denoisers=({name!r},))", C4DWarning, stacklevel=3)
        return False
    return True


def enable_cache_with(
    pipe: Any, backend: C4DBackend, *, denoisers: Sequence[str] | None = None,
    compile_options: dict[str, Any] | None = None,
) -> Callable[[], None]:
    """``enable_cache`` with a backend made elsewhere; returns a function that undoes it. By default it compiles the
    denoisers alone (calibration records and measures one model's graph); ``denoisers`` may name a ControlNet."""
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
        # a multi-ControlNet (Flux's, SD3's, ...) is a wrapper that calls its nets in turn and sums their residuals:
        # each net is compiled apart, a model with caches of its own; the wrapper's Python loop stays eager
        nets = getattr(module, "nets", None) if name in CONTROLNETS else None
        parts = ([(f"{name}.{i}", net) for i, net in enumerate(nets)] if isinstance(nets, torch.nn.ModuleList)
                 else [(name, module)])
        for label, part in parts:
            refuse_offloading(part, f"pipe.{label}")
            undo.append(_compile_in_place(part, backend, compile_options))
            if name not in DENOISERS:
                backend.name_model(part, label)
            _guard_calls(part, backend, f"pipe.{label}", controlnet=name in CONTROLNETS)
        setattr(pipe, name, module)
        undo.append(lambda name=name, given=given: setattr(pipe, name, given))
    undo.append(_report_timesteps(pipe.scheduler, backend))

    def restore() -> None:
        for step in undo:
            step()

    return restore


def _compile_in_place(module: torch.nn.Module, backend: C4DBackend,
                      compile_options: dict[str, Any] | None) -> Callable[[], None]:
    """Compile ``module`` in place with ``backend``; returns the undo.

    In place (``Module.compile``), so the pipeline's attribute stays the diffusers model: the pipeline's methods that
    look for ModelMixin components (set_adapters, fuse_lora, unfuse_lora, disable_lora, unload_lora_weights, ...)
    would not see an OptimizedModule, and some of them then do nothing without a word.
    """
    _route_cache_context(module, backend)
    previous = module._compiled_call_impl
    module.compile(backend=backend, **(compile_options or {}))
    return lambda: (setattr(module, "_compiled_call_impl", previous), module.__dict__.pop("cache_context", None))


def _guard_calls(module: torch.nn.Module, backend: C4DBackend, where: str, controlnet: bool) -> None:
    """Wrap the compiled call (the one ``Module.compile`` set, so this runs outside Dynamo, per call; undone with it):

    * once per generation, ``refuse_offloading``: offloading turned on after ``enable_cache`` is refused too;
    * a ControlNet's ``conditioning_scale`` that changes within a generation drops its cached features, where they
      hold it: the ``output`` region forecasts the ControlNet's outputs, which are scaled, so across a change
      (``control_guidance_start`` / ``control_guidance_end``, a scale schedule) it would forecast the old scale's
      residuals; the ``branch`` and ``stack`` regions forecast values before the scale and keep theirs.
    """
    compiled = module._compiled_call_impl
    checked: list = [object()]  # the generation whose first call checked the offloading
    seen: list = [None, None]  # the generation and the conditioning scale of the last call

    @functools.wraps(compiled)
    def call(*args: Any, **kwargs: Any):
        generation = backend.session.generation()
        if checked[0] is not generation:
            refuse_offloading(module, where, after=True)
            checked[0] = generation
        scale = kwargs.get("conditioning_scale") if controlnet else None
        if scale is not None and backend.policy.region is Region.OUTPUT:
            if isinstance(scale, torch.Tensor):
                scale = tuple(scale.reshape(-1).tolist())
            elif isinstance(scale, (list, tuple)):
                scale = tuple(scale)
            if seen[0] is generation and generation is not None and seen[1] != scale:
                backend.invalidate(module)
            seen[:] = [generation, scale]
        return compiled(*args, **kwargs)

    module._compiled_call_impl = call


def refuse_offloading(module: torch.nn.Module, where: str = "the model", after: bool = False) -> None:
    """Raise ``ConfigError`` for an offloading that keeps a model's block stack out of one graph, saying what to do.

    * diffusers' group offloading (``enable_group_offload``, ``apply_group_offloading``, block or leaf level): its
      hooks move each group's weights in ``torch.compiler.disable``-d calls, so Dynamo breaks the graph at every
      group and no graph holds the blocks;
    * weights on the ``meta`` device (accelerate's ``enable_sequential_cpu_offload``, or a ``device_map`` that
      offloads to CPU or disk): accelerate's hooks load each layer's weights inside its forward, in calls Dynamo
      does not trace.

    ``enable_model_cpu_offload`` (one hook on the whole model, which is resident while it runs) and accelerate hooks
    that only move inputs between devices are traced into the graph and cached.
    """
    how = None
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None and registry.get_hook("group_offloading") is not None:
            how = "group offloading (enable_group_offload / apply_group_offloading)"
            break
    if how is None and any(p.device.type == "meta" for p in module.parameters()):
        how = ("weights on the meta device, loaded layer by layer by accelerate (enable_sequential_cpu_offload, or a "
               "device_map that offloads)")
    if how is None:
        return
    when = "was turned on after enable_cache; " if after else ""
    raise ConfigError(
        f"c4d cannot cache {where}: it has {how}, which {when}moves weights in calls that torch.compile does not "
        "trace, so no graph holds its block stack. Use pipe.enable_model_cpu_offload() instead (each model moves to "
        "the device whole; cached), or no offloading; then call enable_cache")


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
