"""Check that every rank runs the same collectives in every variant, before any of them runs.

Why: under context parallelism (diffusers' Ulysses / ring attention) the blocks exchange tokens with
collectives inside the graph, and a cached step removes the ones it no longer needs (``dead_code.py``).
A rank that enters a collective another rank skipped waits forever: the job hangs with no error. The
ranks trace the same graph and run the same passes, so their variants should agree; this makes sure.
Each rank lists, per variant, its collectives in graph order (op and process group), and states its
policy (a schedule that differs would run a variant another rank does not); both are exchanged once
per compiled graph (``all_gather_object`` over the default group, which every rank of a
context-parallel job joins as it compiles the same graph), and any difference is a typed error on
every rank alike. Graphs without collectives, and processes without an initialised process group,
exchange nothing.

A signal-driven schedule decides from a signal each rank measures on its shard of the tokens: the
Runtime adds the signal's sums over the ranks before dividing (``sum_over_ranks``), so every rank
takes the same decision. The device path (``decision="device"``) adds them inside its graph
(``in_graph_sum``: a functional all-reduce over the group the graph's own collectives use), so its
decision too is the same on every rank, and that all-reduce is in the sequence this check compares.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.fx as fx

from ...errors import ConfigError
from .dead_code import is_collective


class CollectiveMismatchError(ConfigError):
    """The ranks' variants would run different collectives: caching would hang the job."""


def collective_sequence(gm: fx.GraphModule) -> tuple[str, ...]:
    """The collectives of a graph in order: the op and its process group (its name, a string argument)."""
    out = []
    for node in gm.graph.nodes:
        if is_collective(node):
            groups = [a for a in node.args if isinstance(a, str)]
            out.append(f"{str(node.target).split('.')[1]}({','.join(groups)})")
    return tuple(out)


def check_collectives(variants: dict, policy: str) -> dict[str, tuple[str, ...]]:
    """Per variant kind, its collective sequence; raises CollectiveMismatchError if another rank's differ or
    another rank runs another policy (``policy``: its repr)."""
    sequences = {kind.value: collective_sequence(v.gm) for kind, v in variants.items()}
    if not is_parallel(sequences):
        return sequences
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, (policy, sequences))
    policies = [rank for rank, (other, _) in enumerate(gathered) if other != gathered[0][0]]
    collectives = [rank for rank, (_, other) in enumerate(gathered) if other != gathered[0][1]]
    if policies or collectives:
        counts = {rank: {kind: len(seq) for kind, seq in other.items()} for rank, (_, other) in enumerate(gathered)}
        raise CollectiveMismatchError(
            f"the ranks would run different collectives: a rank would wait for one another skips (ranks {policies} "
            f"run another policy than rank 0: {sorted({p for p, _ in gathered})}; ranks {collectives} other "
            f"collectives, per variant and rank: {counts}). Give every rank the same policy and options"
        )
    return sequences


def is_parallel(sequences: dict[str, tuple[str, ...]]) -> bool:
    """The graph exchanges data between ranks (its variants hold collectives) in an initialised group."""
    return any(sequences.values()) and dist.is_available() and dist.is_initialized()


def exchange_group(gm: fx.GraphModule) -> str | None:
    """The process group the graph's collectives exchange tokens over (its name), or None without any."""
    for node in gm.graph.nodes:
        if is_collective(node):
            groups = [a for a in node.args if isinstance(a, str)]
            if groups:  # the group name is a functional collective's last string argument
                return groups[-1]
    return None


def in_graph_sum(group: str):
    """``reduce`` for a graph being built: the tensor added over the ranks of ``group`` by a functional
    all-reduce and its wait, as graph nodes (works on fx proxies)."""
    def reduce(tensor):
        summed = torch.ops._c10d_functional.all_reduce(tensor, "sum", group)
        return torch.ops._c10d_functional.wait_tensor(summed)
    return reduce


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """A signal's sums added over the ranks (the default group: every rank compiled this graph)."""
    dist.all_reduce(tensor)
    return tensor
