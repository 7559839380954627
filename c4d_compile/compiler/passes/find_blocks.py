"""Find the block stack: the repeated residual blocks of the model's ModuleLists.

Why from ``nn_module_stack``: Dynamo records for every traced node the module call it came from,
so block i of any ModuleList is the run of nodes whose module path passes through ``<list>.<i>``.
That needs no attribute names, no class names and no copied forward. A list counts as a block list
when at least one item does real work (two or more matrix products / attention calls) on the data:
a Sequential of single layers in the embedders does not, and neither does a list that only reads
the timestep and constants (Chroma's conditioning network, a stack of MLPs turning the timestep
into modulation vectors, which must be recomputed every step). The top-most list wins, so
``blocks.3.attn.to_out.0`` belongs to block 3 of ``blocks``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx

from .graph_utils import is_matmul, module_path, tensor_meta, user_inputs

MIN_MATMULS_PER_BLOCK = 2


@dataclass(frozen=True)
class Block:
    list_name: str
    index: int
    start: int  # position of its first node in the graph
    end: int  # position of its last node
    matmuls: int

    @property
    def name(self) -> str:
        return f"{self.list_name}.{self.index}"


@dataclass(frozen=True)
class BlockStack:
    blocks: tuple[Block, ...]  # graph order
    lists: tuple[str, ...]  # block lists in order of first appearance
    problems: tuple[str, ...]
    split: bool = False  # a list holds a part of its blocks only: a graph break split the stack

    @property
    def glue(self) -> tuple[tuple[str, str, int], ...]:
        """(list before, list after, nodes between) wherever the stack moves from one list to another."""
        return tuple(
            (a.list_name, b.list_name, b.start - a.end - 1)
            for a, b in zip(self.blocks, self.blocks[1:])
            if a.list_name != b.list_name
        )

    @property
    def span(self) -> tuple[int, int] | None:
        if not self.blocks:
            return None
        return self.blocks[0].start, max(b.end for b in self.blocks)


def top_list_item(path: str) -> tuple[str, int] | None:
    """``a.blocks.3.attn`` -> (``a.blocks``, 3): the outermost ModuleList item on the path."""
    parts = path.split(".")
    for i in range(1, len(parts)):
        if parts[i].isdigit():
            return ".".join(parts[:i]), int(parts[i])
    return None


def _item_runs(gm: fx.GraphModule) -> list[tuple[tuple[str, int], int, int, int]]:
    """Runs of consecutive nodes under one list item: (item, start, end, matmuls)."""
    runs: list[list] = []
    for pos, node in enumerate(gm.graph.nodes):
        if node.op in ("placeholder", "output", "get_attr"):
            continue  # placeholders carry their first user's stack: never evidence of membership
        path = module_path(node)
        item = top_list_item(path) if path else None
        if item is None:
            continue  # nodes without a path inside a run stay in it (the run is a span)
        if runs and runs[-1][0] == item:
            runs[-1][2] = pos
            runs[-1][3] += is_matmul(node)
        else:
            runs.append([item, pos, pos, int(is_matmul(node))])
    return [tuple(r) for r in runs]


def _data_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    """Tensors computed from a data input: a floating-point user input of rank >= 2 (latents, text
    embeddings), as opposed to the timestep, guidance scale, ids and constants. Only tensors carry
    the dependency: reading a data input's size (to repeat an embedding per batch item) does not."""
    data = {n for n in user_inputs(gm) if (m := tensor_meta(n)) is not None and m.is_floating_point() and m.dim() >= 2}
    for n in gm.graph.nodes:
        if n not in data and tensor_meta(n) is not None and any(a in data for a in n.all_input_nodes):
            data.add(n)
    return data


_SPLITS = {"chunk", "split", "tensor_split", "narrow"}


def _after_entry_split(nodes: list[fx.Node], start: int, end: int, data: set[fx.Node]) -> int:
    """Where the first block of a list starts once a split of its input on entry is left out.

    Context parallelism (diffusers' ``_cp_plan``) shards the tokens in a pre-forward hook of the first
    block: ``x.chunk(world, dim)[rank]`` runs under that block's module path. Counted in the block, its
    input and output differ in length and the block pairs with no residual; the split belongs before
    the stack. Only leading nodes go: splits of data tensors made before the block, and the items taken
    from them."""
    before = set(nodes[:start])
    splits: set[fx.Node] = set()
    pos = start
    while pos < end:
        node = nodes[pos]
        target = getattr(node.target, "__name__", node.target)
        source = node.all_input_nodes[0] if node.all_input_nodes else None
        if target in _SPLITS and source in data and source in before:
            splits.add(node)
        elif not (target == "getitem" and source in splits):
            break
        pos += 1
    return pos if splits else start


def find_blocks(gm: fx.GraphModule) -> BlockStack:
    # A block is the longest run of its item's nodes. Shorter runs elsewhere are the model reusing
    # a block's submodule outside the block (DiT's epilogue calls block 0's embedding): glue.
    spans: dict[tuple[str, int], list[int]] = {}
    matmuls: dict[tuple[str, int], int] = {}
    for item, start, end, count in _item_runs(gm):
        if item not in spans or end - start > spans[item][1] - spans[item][0]:
            spans[item] = [start, end]
            matmuls[item] = count
    working = {name for (name, _), count in matmuls.items() if count >= MIN_MATMULS_PER_BLOCK}
    data = _data_dependent(gm)
    nodes = list(gm.graph.nodes)
    on_data = {name for (name, _), (start, end) in spans.items() if any(n in data for n in nodes[start : end + 1])}
    working &= on_data
    for (name, idx), span in spans.items():
        if idx == 0 and name in working:
            span[0] = _after_entry_split(nodes, span[0], span[1], data)
    blocks = sorted(
        (Block(name, idx, s, e, matmuls[(name, idx)]) for (name, idx), (s, e) in spans.items() if name in working),
        key=lambda b: b.start,
    )
    problems, split = [], False
    for a, b in zip(blocks, blocks[1:]):
        if b.start <= a.end:
            problems.append(f"blocks {a.name} and {b.name} overlap in the graph (not contiguous)")
    lists = tuple(dict.fromkeys(b.list_name for b in blocks))
    for name in lists:
        indices = sorted(b.index for b in blocks if b.list_name == name)
        if indices[0] != 0 or indices != list(range(indices[0], indices[0] + len(indices))):
            split = True
            problems.append(
                f"list {name!r} holds blocks {indices[0]}..{indices[-1]} with gaps or not from 0: "
                "the block stack was split across several graphs"
            )
    return BlockStack(tuple(blocks), lists, tuple(problems), split)
