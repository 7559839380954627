"""diffusers' context parallelism on CPU ranks, for the tests and examples (gloo on 127.0.0.1).

Two things diffusers 0.42 assumes an accelerator for, bridged here for CPU runs only (the library itself
patches nothing):

* ``enable_parallelism`` places each rank on ``rank % torch.accelerator.device_count()``, which divides by
  zero on a machine without an accelerator: this harness reports one device while it runs.
* Ring attention merges the partial attention of each key/value chunk by its log-sum-exp, so it needs an
  attention op that returns it. ``native`` (SDPA) does not; ``_native_flash`` calls
  ``aten::_scaled_dot_product_flash_attention``, which has no CPU kernel. ``register_cpu_flash_attention``
  gives it one: torch's own CPU flash kernel (``_scaled_dot_product_flash_attention_for_cpu``), which
  returns the output and the log-sum-exp. On GPUs the op exists and nothing is registered.
"""

from __future__ import annotations

import torch

MODES = ("ulysses", "ring")
_registered: list[torch.library.Library] = []


def _flash_attention_on_cpu(query, key, value, dropout_p=0.0, is_causal=False, return_debug_mask=False, *,
                            scale=None):
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal,
                                                                         scale=scale)
    none = query.new_empty(0, dtype=torch.int64)  # sequence offsets, rng state, debug mask: unused in inference
    return out, lse, none, none, query.shape[2], key.shape[2], none, none, query.new_empty(0)


def register_cpu_flash_attention() -> None:
    """A CPU kernel for ``aten::_scaled_dot_product_flash_attention`` (once per process)."""
    if not _registered:
        library = torch.library.Library("aten", "IMPL")
        library.impl("_scaled_dot_product_flash_attention", _flash_attention_on_cpu, "CPU")
        _registered.append(library)  # the registration lives as long as the Library object


def enable_cpu_context_parallel(model, world: int, mode: str = "ulysses") -> None:
    """Context parallelism over ``world`` ranks of the initialised (gloo) process group.

    ``ulysses``: all-to-all of the heads (``native`` attention); ``ring``: every rank's keys and values
    gathered and merged by log-sum-exp (``_native_flash`` attention on the CPU kernel above).
    """
    from diffusers import ContextParallelConfig

    if mode not in MODES:
        raise ValueError(f"unknown context-parallel mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "ring":
        register_cpu_flash_attention()
        model.set_attention_backend("_native_flash")
        config = ContextParallelConfig(ring_degree=world)
    else:
        model.set_attention_backend("native")
        config = ContextParallelConfig(ulysses_degree=world)
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        model.enable_parallelism(config=config)
    finally:
        torch.accelerator.device_count = count
