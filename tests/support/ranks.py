"""Run a function on several CPU ranks (gloo on 127.0.0.1), as a context-parallel job runs, with a deadline.

Each rank is a fresh process (``spawn``); the function gets ``(rank, world, out_dir, *args)`` and writes
what the test checks to ``out_dir`` (``torch.save``). A rank that fails or a job that outlives the
deadline (a hang) fails the test with every rank's error.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, fn, world: int, port: int, out_dir: str, args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(rank, world, Path(out_dir), *args)
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world: int, out_dir: Path, *args, timeout: float = 180.0) -> list:
    """Run ``fn`` on ``world`` ranks; returns each rank's ``out_dir/rank{r}.pt``."""
    context = mp.start_processes(_entry, args=(fn, world, _free_port(), str(out_dir), args), nprocs=world,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise TimeoutError(f"{world} ranks did not finish in {timeout:.0f} s: a rank waits for a collective")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(world)]
