"""Find the probe of a signal-driven schedule: the values it measures and the prefix that computes them.

Why: a signal-driven schedule decides each call from a cheap signal computed before the expensive
part of the model. The PROBE variant runs the smallest prefix of the graph that yields the signal;
FULL and CACHED continue from the prefix's values, so nothing is computed twice. Both signals are
found from the graph's structure alone:

* first-blocks (FBCache, DBCache): the stream after the first ``Fn`` blocks (the block boundary the
  stream analysis found), each value paired with the stream input it is a residual against (the
  pairing of ``find_stream``); the signal is that residual, ``H(after Fn) - H(input)``.
* modulated-input (TeaCache): in the first block, the first matrix product that reads the stream; its
  stream operand is the normalised, timestep-modulated input (``(1 + scale) * norm(x) + shift`` in
  every adaLN block), whatever the model calls it.
* spectral-input (SeaCache): that modulated input, and the timestep input whose value sets the filter's
  noise level (the first timestep input: an embedded guidance scale comes after it in Flux-style signatures).
* model-input (EasyCache): the model's latent input itself, the user input the main stream is computed
  from (of the output's shape where one is: the prediction has the latent's shape); the prefix is empty.
* block-residual (AdaCache): the residual of one block on the latent stream, the middle one unless the
  schedule names another, ``H(after block b) - H(after block b - 1)``; FULL measures it, so there is
  no prefix to cut.

The prefix is every ancestor of the probed values, plus every in-place write into a prefix value
(a write is not an ancestor in the data flow, yet it changes the value: Wan's rotary tables are
built by ``out[..., 0::2] = ...``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.fx as fx

from ...errors import ConfigError, NotCacheableError
from ...policies.schedules.signal import Signal, SignalSchedule
from .analyze import GraphAnalysis
from .find_stream import pair_residuals
from .graph_utils import is_matmul, is_write, size_hint, tensor_meta, user_inputs


@dataclass(frozen=True)
class ProbeSite:
    values: tuple[tuple[str, str | None], ...]  # (probed value, value it is a residual against, or None)
    prefix: frozenset[str]  # nodes the PROBE variant computes; FULL and CACHED read the ones they need
    after_block: int | None  # first-blocks: index of the last block in the prefix (the cached span starts after)
    description: str


def _prefix(nodes: list[fx.Node], targets: list[fx.Node]) -> frozenset[str]:
    inside: set[fx.Node] = set()
    todo = list(targets)
    while todo:
        while todo:
            n = todo.pop()
            if n in inside or n.op in ("placeholder", "get_attr", "output"):
                continue
            inside.add(n)
            todo += n.all_input_nodes
        for n in nodes:  # writes into a prefix value belong to it, with what they read
            if n not in inside and is_write(n) and n.args and n.args[0] in inside:
                todo.append(n)
    return frozenset(n.name for n in inside)


def _latent_dependent(gm: fx.GraphModule, analysis: GraphAnalysis) -> set[fx.Node]:
    """Nodes computed from the main stream: the latent's tokens. A signal must move with the latent; blocks
    before the main stream is read (HunyuanVideo's and Lumina2's text refiners) say nothing about it.

    The main stream is the stack inputs the cached stack outputs are residuals of; when no output pairs
    with an input (Lumina2 joins text and image tokens inside the stack), the largest stack input: the
    latent's tokens outnumber the prompt's in the models this targets."""
    return _closure(list(gm.graph.nodes), _main_stream(gm, analysis))


def _main_stream(gm: fx.GraphModule, analysis: GraphAnalysis) -> set[fx.Node]:
    main = {partner for _, partner in analysis.stream.pairs if partner is not None}
    if not main and analysis.stream.inputs:
        sizes = {v.name: math.prod(size_hint(d) for d in v.shape) for v in analysis.stream.inputs}
        main = {name for name, size in sizes.items() if size == max(sizes.values())}
    return {n for n in gm.graph.nodes if n.name in main}


def _closure(nodes: list[fx.Node], roots: set[fx.Node]) -> set[fx.Node]:
    found = set(roots)
    for n in nodes:
        if any(a in found for a in n.all_input_nodes):
            found.add(n)
    return found


def _first_blocks(gm: fx.GraphModule, analysis: GraphAnalysis, schedule: SignalSchedule):
    latent = _latent_dependent(gm, analysis)
    blocks = analysis.stack.blocks
    first = _first_latent_block(gm, analysis, latent)
    fn, bn = schedule.first_blocks, schedule.last_blocks
    after = first + fn - 1
    if after + 1 + bn >= len(blocks):
        raise ConfigError(
            f"first_blocks={fn} + last_blocks={bn} leave no block to cache: this model has {len(blocks) - first} "
            f"blocks on the latent stream ({blocks[first].name} ... {blocks[-1].name}); choose first_blocks + "
            f"last_blocks <= {len(blocks) - first - 1}"
        )
    values, what = _residuals(gm, analysis, latent, after, -1)
    return values, after, f"{what} the first {fn} block(s) to {blocks[after].name}: {[v for v, _ in values]}"


def _residuals(gm: fx.GraphModule, analysis: GraphAnalysis, latent: set[fx.Node], last: int, before: int):
    """The latent stream after block ``last`` paired with the stream after block ``before`` (-1: the stack
    inputs) it is a residual against; the values without a partner only when none has one."""
    nodes = list(gm.graph.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    by_name = {n.name: n for n in nodes}
    boundary = [by_name[v.name] for v in analysis.stream.boundaries[last] if by_name[v.name] in latent]
    bases = analysis.stream.boundaries[before] if before >= 0 else analysis.stream.inputs
    pairs = pair_residuals(boundary, [by_name[v.name] for v in bases], pos, analysis.stack.blocks[before + 1].start)
    if any(base is not None for _, base in pairs):
        pairs = [(out, base) for out, base in pairs if base is not None]
    values = tuple((out.name, base.name if base is not None else None) for out, base in pairs)
    return values, "residual of" if any(base for _, base in values) else "stream after"


def _modulated_input(gm: fx.GraphModule, analysis: GraphAnalysis, schedule):
    nodes = list(gm.graph.nodes)
    latent = _latent_dependent(gm, analysis)
    for block in analysis.stack.blocks:
        for n in nodes[block.start : block.end + 1]:
            operands = [a for a in n.all_input_nodes if a in latent and tensor_meta(a) is not None]
            if is_matmul(n) and operands:
                value = operands[0].name
                where = f"input of the first matrix product on the stream in {block.name}: {value}"
                return ((value, None),), None, where
    raise NotCacheableError("no matrix product in the block stack reads the stream: no modulated input to probe")


def _spectral_input(gm: fx.GraphModule, analysis: GraphAnalysis, schedule):
    values, after, where = _modulated_input(gm, analysis, schedule)
    if not analysis.timesteps:
        raise NotCacheableError("signal 'spectral-input' reads the noise level from the timestep input, and this "
                                "graph has none (the timestep embedding ran in an earlier graph)")
    timestep = analysis.timesteps[0].name
    return (*values, (timestep, None)), after, f"{where}, filtered at the noise level of {timestep}"


def _first_latent_block(gm: fx.GraphModule, analysis: GraphAnalysis, latent: set[fx.Node]) -> int:
    nodes = list(gm.graph.nodes)
    return next(i for i, b in enumerate(analysis.stack.blocks) if any(n in latent for n in nodes[b.start : b.end + 1]))


def _block_residual(gm: fx.GraphModule, analysis: GraphAnalysis, schedule):
    latent = _latent_dependent(gm, analysis)
    blocks = analysis.stack.blocks
    first = _first_latent_block(gm, analysis, latent)
    count = len(blocks) - first
    index = count // 2 if schedule.block is None else schedule.block
    if index >= count:
        raise ConfigError(f"block={index}: this model has {count} blocks on the latent stream ({blocks[first].name} "
                          f"... {blocks[-1].name}); choose 0 <= block < {count}")
    b = first + index
    values, what = _residuals(gm, analysis, latent, b, b - 1)
    return values, None, f"{what} block {blocks[b].name} (measured by full steps): {[v for v, _ in values]}"


def _model_input(gm: fx.GraphModule, analysis: GraphAnalysis, schedule):
    """The user input the main stream is computed from; of the first output's shape where one is."""
    ancestors: set[fx.Node] = set()
    todo = list(_main_stream(gm, analysis))
    while todo:
        n = todo.pop()
        if n not in ancestors:
            ancestors.add(n)
            todo += n.all_input_nodes
    candidates = [n for n in user_inputs(gm) if n in ancestors and tensor_meta(n) is not None
                  and tensor_meta(n).is_floating_point()]
    if not candidates:
        raise NotCacheableError("no floating-point model input feeds the block stack: no latent input to probe")
    output = analysis.stream.graph_outputs[0].shape if analysis.stream.graph_outputs else None

    def shape(n: fx.Node) -> tuple[int, ...]:
        return tuple(size_hint(d) for d in tensor_meta(n).shape)

    same = [n for n in candidates if output is not None and shape(n) == tuple(size_hint(d) for d in output)]
    chosen = same[0] if same else max(candidates, key=lambda n: math.prod(shape(n)))
    return ((chosen.name, None),), None, f"the latent input {chosen.name} {list(shape(chosen))}"


_FINDERS = {
    Signal.FIRST_BLOCKS: _first_blocks,
    Signal.MODULATED_INPUT: _modulated_input,
    Signal.MODEL_INPUT: _model_input,
    Signal.BLOCK_RESIDUAL: _block_residual,
    Signal.SPECTRAL_INPUT: _spectral_input,
}


def find_probe(gm: fx.GraphModule, analysis: GraphAnalysis, schedule, prefixed: bool = True) -> ProbeSite:
    """The probed values; with ``prefixed``, the prefix a PROBE variant runs to compute them (a signal that
    FULL measures itself has none)."""
    values, after, description = _FINDERS[schedule.signal](gm, analysis, schedule)
    if not prefixed:
        return ProbeSite(values, frozenset(), after, description)
    by_name = {n.name: n for n in gm.graph.nodes}
    targets = [by_name[name] for pair in values for name in pair if name is not None]
    return ProbeSite(values, _prefix(list(gm.graph.nodes), targets), after, description)
