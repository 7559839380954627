"""find_stream on small traced models: the stream that enters and leaves the block stack and what it pairs with,
the invariants every block reads, glue recomputed rather than cached, two streams of one shape paired along their
skip paths, an output with no partner, a stack split by a graph break — and a graph with no stack, where it finds
nothing."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from support.three_blocks import Model, example_inputs

from c4d_compile.compiler.passes.find_blocks import BlockStack, find_blocks
from c4d_compile.compiler.passes.find_branches import find_branches
from c4d_compile.compiler.passes.find_stream import SPLIT_OUTPUT, StreamValue, find_stream, pair_residuals
from c4d_compile.inspect_model import trace_graphs


def _facts(model: torch.nn.Module, inputs: dict | None = None):
    (gm,) = trace_graphs(model, inputs or example_inputs())
    return gm, find_stream(gm, find_blocks(gm))


def _last_block_end(gm: fx.GraphModule) -> str:
    """The last node of the last block: the stream's residual add."""
    return list(gm.graph.nodes)[find_blocks(gm).blocks[-1].end].name


def _names(values) -> list[str]:
    return [v.name for v in values]


@pytest.fixture(scope="module")
def three_blocks():
    torch.manual_seed(0)
    return _facts(Model())


def test_the_stream_enters_as_the_embedded_latent_and_leaves_after_the_last_block(three_blocks):
    _, facts = three_blocks
    stream = StreamValue("s", (2, 5, 8), torch.float32)
    assert facts.inputs == (stream,) and str(stream) == "s[2x5x8, float32]"
    assert _names(facts.outputs) == ["s_3"] and facts.pairs == (("s_3", "s"),)
    assert [_names(b) for b in facts.boundaries] == [["s_1"], ["s_2"], ["s_3"]]  # the stream after each block
    assert _names(facts.invariants) == ["temb"]  # read by every block
    assert _names(facts.graph_outputs) == ["linear_8"] and facts.recomputed_outputs == ()
    assert facts.problems == () and not facts.split


def test_a_graph_without_a_block_stack_has_no_stream(three_blocks):
    gm, _ = three_blocks
    facts = find_stream(gm, BlockStack((), (), ()))
    assert facts.problems == ("no block stack",)
    assert facts.inputs == facts.outputs == facts.pairs == facts.invariants == facts.graph_outputs == ()


class ReadsTheStreamAgain(Model):
    """The epilogue reads the embedded latent again: the stack does not replace it, so it is no stream input."""

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        s0 = self.embed(x)
        s = s0
        for block in self.blocks:
            s = block(s, temb)
        return self.out(s + s0)


def test_a_value_read_after_the_stack_is_an_invariant_not_a_stream_input():
    gm, facts = _facts(ReadsTheStreamAgain())
    out = _last_block_end(gm)
    assert facts.inputs == () and _names(facts.invariants) == ["temb", "s0"]
    assert facts.pairs == ((out, None),)
    assert facts.problems == (f"stack output {out} has no input of its shape: cached as a value",)


class LateGate(Model):
    """A gate made from the timestep between block 0 and block 1 and read after the stack: glue in the stack's
    span that no block feeds, recomputed on a cached step."""

    def __init__(self):
        super().__init__()
        self.gate = torch.nn.Linear(8, 8)

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        s = self.blocks[0](self.embed(x), temb)
        gate = self.gate(temb)
        s = self.blocks[2](self.blocks[1](s, temb), temb)
        return self.out(s * gate[:, None])


def test_glue_in_the_stack_span_that_no_block_feeds_is_recomputed_not_cached():
    gm, facts = _facts(LateGate())
    assert facts.recomputed_outputs == ("gate",) and _names(facts.outputs) == [_last_block_end(gm)]
    assert len(facts.pairs) == 1 and facts.pairs[0][1] is not None and facts.problems == ()


class Narrowing(Model):
    """The last block maps the stream to another width: its output has no input of its shape."""

    def __init__(self):
        super().__init__()
        self.blocks[2] = torch.nn.ModuleDict({"f1": torch.nn.Linear(8, 8), "f2": torch.nn.Linear(8, 4)})
        self.out = torch.nn.Linear(4, 4)

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        s = self.blocks[1](self.blocks[0](self.embed(x), temb), temb)
        last = self.blocks[2]
        return self.out(last["f2"](torch.relu(last["f1"](s))) * temb[:, None, :4])


def test_an_output_of_another_shape_than_every_input_is_cached_as_a_value():
    _, facts = _facts(Narrowing())
    ((out, partner),) = facts.pairs
    assert partner is None and facts.outputs[0].shape == (2, 5, 4)
    assert facts.problems == (f"stack output {out} has no input of its shape: cached as a value",)


class DualBlock(torch.nn.Module):
    """Image and text streams of one shape; the text stream is updated first, so the stack's outputs come in the
    other order than its inputs."""

    def __init__(self, dim=8):
        super().__init__()
        self.mix, self.to_txt, self.to_img = (torch.nn.Linear(dim, dim) for _ in range(3))

    def forward(self, img, txt, temb):
        joint = torch.relu(self.mix(img + txt))
        txt = txt + self.to_txt(joint) * temb[:, None]
        img = img + self.to_img(joint)
        return img, txt


class DualStream(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.img_in, self.txt_in, self.t, self.out = (torch.nn.Linear(n, 8) for n in (4, 4, 8, 8))
        self.blocks = torch.nn.ModuleList([DualBlock() for _ in range(2)])

    def forward(self, x, context, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        img, txt = self.img_in(x), self.txt_in(context)
        img, txt = self.blocks[0](img, txt, temb)
        img, txt = self.blocks[1](img, txt, temb)
        return self.out(torch.cat([txt, img], dim=1))


def test_two_streams_of_one_shape_pair_along_their_skip_paths_not_in_graph_order():
    gm, facts = _facts(DualStream(), {**example_inputs(), "context": torch.randn(2, 5, 4)})
    nodes = {n.name: n for n in gm.graph.nodes}
    img, txt = _names(facts.inputs)
    assert nodes[img].target is nodes[txt].target and nodes[img].args[0].name == "l_x_"  # the order they were made
    out_txt, out_img = _names(facts.outputs)
    assert facts.pairs == ((out_txt, txt), (out_img, img))
    # what pairs them: each output's skip operand, block after block
    assert nodes[out_txt].args[0].args[0] is nodes[txt] and nodes[out_img].args[0].args[0] is nodes[img]
    assert all(len(b) == 2 for b in facts.boundaries) and _names(facts.invariants) == ["temb"]


def test_a_stack_split_by_a_graph_break_is_said_where_its_output_leaves_the_graph():
    first, second = trace_graphs(Model(break_after_block=True), example_inputs())
    facts = find_stream(first, find_blocks(first))
    assert facts.split and facts.problems == (SPLIT_OUTPUT,) and _names(facts.graph_outputs) == ["s_1"]
    facts = find_stream(second, find_blocks(second))  # the rest of the stack, resumed: its input is the stream
    assert not facts.split and facts.pairs == (("s_1", "l_s_"),) and _names(facts.invariants) == ["l_temb_"]


def _graph(inputs: dict[str, torch.Tensor], outputs: dict[str, str]):
    """Placeholders with values, and outputs each the relu of one input (a span of one op each)."""
    graph = fx.Graph()
    ins = {name: graph.placeholder(name) for name in inputs}
    for name, value in inputs.items():
        ins[name].meta["val"] = value
    outs = []
    for name, source in outputs.items():
        node = graph.call_function(torch.relu, (ins[source],))
        node.name, node.meta["val"] = name, torch.relu(inputs[source])
        outs.append(node)
    return list(ins.values()), outs, {n: i for i, n in enumerate(graph.nodes)}


def test_each_input_pairs_once_and_only_with_an_output_of_its_shape_and_dtype():
    ins, outs, pos = _graph({"a": torch.zeros(2, 3), "half": torch.zeros(2, 4, dtype=torch.float16)},
                            {"o1": "a", "o2": "a", "o3": "half"})
    o3 = outs[2]
    o3.meta["val"] = o3.meta["val"].float()  # same shape as `half`, another dtype
    pairs = pair_residuals(outs, ins, pos, start=len(ins))
    assert [(o.name, p.name if p is not None else None) for o, p in pairs] == [("o1", "a"), ("o2", None), ("o3", None)]


class NormedBlock(torch.nn.Module):
    """A pre-norm block: the norm's eps is a float attribute, which Dynamo lifts into a 0-d graph input under
    ``dynamic=True`` — read by this block alone, like a stream input, yet a constant."""

    def __init__(self, dim=8):
        super().__init__()
        self.norm, self.f1, self.f2 = torch.nn.LayerNorm(dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, s, temb):
        return s + temb[:, None] * self.f2(torch.relu(self.f1(self.norm(s))))


class NormedModel(Model):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.ModuleList([NormedBlock() for _ in range(3)])


def test_a_scalar_a_dynamic_graph_lifts_into_an_input_is_no_stream():
    found = []

    def capture(gm, example_inputs):  # analysed inside the backend call, as the backend does
        stack = find_blocks(gm)
        facts = find_stream(gm, stack)
        found.append((gm, facts, find_branches(gm, stack, facts)))
        return gm.forward

    torch._dynamo.reset()
    torch.manual_seed(0)
    torch.compile(NormedModel(), backend=capture, dynamic=True)(**example_inputs())
    (gm, facts, branches), = found
    scalars = [n.name for n in gm.graph.nodes if n.op == "placeholder" and n.name.endswith("eps")]
    assert len(scalars) == 3  # one lifted eps per block: what the test is about
    assert _names(facts.inputs) == ["s"] and set(scalars) <= set(_names(facts.invariants))
    assert all(b.proven for b in branches) and [len(b.branches) for b in branches] == [1, 1, 1]
