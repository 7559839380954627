"""Sanity checks for the random DiT generator: models run, trace as one Dynamo graph, and match their spec.

The spec checks re-derive the ground truth from the built model rather than from how random_dit computed it:
forward hooks observe the real block execution order, stream arity and token counts, and a torch.fx trace of
each block finds its residual adds from the data flow.
"""

import pytest
import support.random_dit as random_dit_module
import torch
import torch.fx
from support.random_dit import random_dit
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")

SEEDS = range(24)

# Stream inputs of each kind of block (the leading positional arguments of its forward).
_STREAMS_PER_KIND = {"refiner": 1, "single": 1, "parallel": 1, "dual": 2, "dual_pruned": 2, "joint": 2}


@pytest.mark.parametrize("seed", SEEDS)
def test_runs_finite_and_deterministic(seed):
    model, make_inputs, spec = random_dit(seed)
    inputs = make_inputs()
    with torch.no_grad():
        out = model(**inputs)
    assert out.shape == inputs["hidden_states"].shape
    assert torch.isfinite(out).all()

    model2, make_inputs2, spec2 = random_dit(seed)
    assert spec2 == spec
    with torch.no_grad():
        assert torch.equal(model2(**make_inputs2()), out)
        assert model2(**make_inputs2(batch=2)).shape[0] == 2


# One Dynamo graph per architecture (fullgraph=True) is checked where the graphs are used:
# tests/compiler/passes/test_random_architectures.py traces every seed once.


def test_feature_coverage():
    specs = [random_dit(seed)[2] for seed in SEEDS]
    features = {
        "dual_stream": lambda s: s.dual_stream,
        "joint_cat": lambda s: s.joint_cat_blocks > 0,
        "gated": lambda s: s.gated,
        "branch_first": lambda s: s.add_order_branch_first,
        "casts": lambda s: s.casts,
        "pruned_last_block": lambda s: s.pruned_last_block,
        "refiner": lambda s: s.refiner_blocks > 0,
        "interleaved": lambda s: s.interleaved,
        "long_skip": lambda s: s.long_skip,
        "recompute_cond": lambda s: s.recompute_cond_in_block,
    }
    for name, predicate in features.items():
        hits = sum(bool(predicate(s)) for s in specs)
        assert 2 <= hits <= len(specs) - 2, (name, hits)

    for s in specs:
        # Combinations that would be unbuildable or meaningless.
        assert not s.pruned_last_block or (s.dual_stream and s.joint_cat_blocks == 0)
        assert (s.text_tokens > 0) == (s.dual_stream or s.joint_cat_blocks > 0)
        # Size limits.
        assert 16 <= s.hidden <= 48 and s.tokens + s.text_tokens <= 32
        assert all(2 <= n <= 4 for n in s.blocks_per_list)
        assert len(set(s.list_names)) == len(s.list_names)
    assert len({name for s in specs for name in s.list_names}) >= 8  # list names really vary
    assert {1, 2, 4} <= {b for s in specs for b in s.branches_per_block}


def _op_name(node):
    if node.op == "call_method":
        return node.target
    if node.op == "call_function":
        return getattr(node.target, "__name__", "")
    return ""


# Ops through which a value stays "the stream": dtype casts, concat of streams, slicing the joined tokens.
_STREAM_PASSTHROUGH = {"float", "type_as", "to", "contiguous", "cat", "getitem"}


def _residual_adds(block, n_streams):
    """Residual adds of one block, found with torch.fx from the data flow alone.

    Stream values are the block's stream inputs, residual adds onto a stream, and pass-through ops of streams;
    a residual add is an ``add`` with a stream operand. Returns one record per residual add, and whether some
    nn.Linear is fed by the conditioning input alone (i.e. the block recomputes its own modulation).
    """
    graph = torch.fx.symbolic_trace(block).graph
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    streams = set(placeholders[:n_streams])
    cond_only = {placeholders[n_streams]}  # the conditioning input comes right after the streams
    params = {n for n in graph.nodes if n.op == "get_attr"}
    modules = dict(block.named_modules())
    adds, cond_linear = [], False
    for node in graph.nodes:
        op, inputs = _op_name(node), node.all_input_nodes
        if op in ("add", "iadd") and any(a in streams for a in node.args[:2]):
            stream_pos = 0 if node.args[0] in streams else 1
            stream, branch = node.args[stream_pos], node.args[1 - stream_pos]
            adds.append(
                {
                    "stream_pos": stream_pos,
                    "gated": _op_name(branch) == "mul",
                    "cast": _op_name(stream) == "float" and [_op_name(u) for u in node.users] == ["type_as"],
                }
            )
            streams.add(node)
        elif op in _STREAM_PASSTHROUGH and inputs:
            first = node.args[0]
            if all(f in streams for f in (first if isinstance(first, (list, tuple)) else [first])):
                streams.add(node)
        elif inputs and set(inputs) <= cond_only | params and set(inputs) & cond_only:
            cond_only.add(node)
            if node.op == "call_module" and isinstance(modules[node.target], nn.Linear):
                cond_linear = True
    return adds, cond_linear


@pytest.mark.parametrize("seed", SEEDS)
def test_spec_matches_model(seed):
    model, make_inputs, spec = random_dit(seed)
    assert spec.num_blocks == sum(spec.blocks_per_list) == len(spec.branches_per_block)
    assert len(spec.block_paths) == len(spec.block_kinds) == spec.num_blocks
    assert len(spec.list_names) == len(spec.blocks_per_list)

    # Lists: exactly the ModuleLists on the model, with the stated lengths, holding exactly the blocks.
    lists = {name: child for name, child in model.named_children() if isinstance(child, nn.ModuleList)}
    assert set(lists) == set(spec.list_names)
    assert [len(lists[name]) for name in spec.list_names] == list(spec.blocks_per_list)
    all_paths = [f"{name}.{i}" for name, blocks in lists.items() for i in range(len(blocks))]
    assert sorted(spec.block_paths) == sorted(all_paths)
    kinds = zip(spec.block_paths, spec.block_kinds)
    main = [path.split(".")[0] for path, kind in kinds if kind not in ("refiner", "joint")]
    if spec.interleaved:
        assert len(set(main)) == 2 and all(a != b for a, b in zip(main, main[1:]))
    else:
        assert len(set(main)) == 1

    # Forward order, stream arity and token counts, observed with hooks.
    seen = []
    handles = [
        model.get_submodule(path).register_forward_hook(
            lambda module, args, output, path=path: seen.append((path, args, output))
        )
        for path in spec.block_paths
    ]
    with torch.no_grad():
        model(**make_inputs())
    for handle in handles:
        handle.remove()
    assert [path for path, _, _ in seen] == list(spec.block_paths)
    for (path, args, output), kind in zip(seen, spec.block_kinds):
        n_streams = _STREAMS_PER_KIND[kind]
        if kind == "refiner":
            expected_tokens = [spec.text_tokens or spec.tokens]
        else:
            expected_tokens = [spec.tokens, spec.text_tokens][:n_streams]
        assert [a.shape[1] for a in args[:n_streams]] == expected_tokens, path
        outputs = output if isinstance(output, tuple) else (output,)
        assert len(outputs) == (1 if kind == "dual_pruned" else n_streams), path

    # Long skip: along the image stream each block's input is the previous block's output, except at a skip
    # destination, where the earlier block's output was added in between.
    assert bool(spec.skip_pairs) == spec.long_skip
    assert all(dst - src >= 2 for src, dst in spec.skip_pairs)
    skip_dsts = {dst for _, dst in spec.skip_pairs}
    on_image = [i for i, kind in enumerate(spec.block_kinds) if kind != "refiner" or not spec.text_tokens]
    for prev, nxt in zip(on_image, on_image[1:]):
        prev_output = seen[prev][2]
        prev_image = prev_output[0] if isinstance(prev_output, tuple) else prev_output
        assert (seen[nxt][1][0] is prev_image) != (nxt in skip_dsts), (prev, nxt)

    # Residual adds per block, re-derived from each block's data flow.
    for i, (path, kind) in enumerate(zip(spec.block_paths, spec.block_kinds)):
        adds, cond_linear = _residual_adds(model.get_submodule(path), _STREAMS_PER_KIND[kind])
        assert len(adds) == spec.branches_per_block[i], path
        assert all(a["stream_pos"] == int(spec.add_order_branch_first) for a in adds), path
        assert all(a["gated"] == spec.gated for a in adds), path
        assert all(a["cast"] == spec.casts for a in adds), path
        assert cond_linear == spec.recompute_cond_in_block, path


def test_residual_add_count_can_fail(monkeypatch):
    """Drop one branch by turning the first residual add into a no-op: the fx count must notice."""
    model, _, spec = random_dit(0)
    block, kind = model.get_submodule(spec.block_paths[0]), spec.block_kinds[0]
    real_residual, calls = random_dit_module.residual, []

    def drop_first(s, f, gate, st):
        calls.append(None)
        return s if len(calls) == 1 else real_residual(s, f, gate, st)

    monkeypatch.setattr(random_dit_module, "residual", drop_first)
    adds, _ = _residual_adds(block, _STREAMS_PER_KIND[kind])
    assert len(adds) == spec.branches_per_block[0] - 1
