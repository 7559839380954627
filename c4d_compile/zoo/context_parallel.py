"""diffusers' context parallelism on CPU ranks, for the tests and examples (gloo on 127.0.0.1).

``enable_parallelism`` places each rank on ``rank % torch.accelerator.device_count()``, which divides by
zero on a machine without an accelerator. This harness reports one device while it runs; the library
itself patches nothing. Ulysses (all-to-all) works with the ``native`` attention backend on CPU; ring
attention needs an attention op that returns the log-sum-exp, which ``native`` does not on CPU.
"""

from __future__ import annotations

import torch


def enable_cpu_context_parallel(model, world: int) -> None:
    """Ulysses context parallelism over ``world`` ranks of the initialised (gloo) process group."""
    from diffusers import ContextParallelConfig

    model.set_attention_backend("native")
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1
    try:
        model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world))
    finally:
        torch.accelerator.device_count = count
