"""Residual-branch detection on the nine tiny diffusers models and on hand-built graphs."""

import pytest
import torch

from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.inspect_model import trace_graphs
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

# branches per block, in graph order, as each model defines them
EXPECTED = {
    "flux": [4, 4, 1, 1],  # double: img attn, txt attn, img mlp, txt mlp; single: one fused branch
    "sd3": [4, 4, 2],  # the last block is context_pre_only: no text branches
    "pixart": [3, 3],  # self-attention, cross-attention (ungated), MLP
    "dit": [2, 2],
    "wan": [3, 3],  # self-attention, cross-attention (ungated), FFN
    "hunyuanvideo": [2, 2, 4, 4, 1, 1],  # token refiner blocks, double, single
    "qwenimage": [4, 4],
    "cogvideox": [4, 4],
    "ltxvideo": [3, 3],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_branches_per_block_match_the_model(name):
    spec = get_tiny_model(name)
    analysis = analyze(trace_graphs(spec.build(), spec.make_inputs())[0])
    assert [len(bb.branches) for bb in analysis.branches] == EXPECTED[name]
    assert all(bb.proven for bb in analysis.branches), [bb.reason for bb in analysis.branches]
    report = analysis.report()
    assert "residual branches per block" in report and "not proven" not in report


class Gated(torch.nn.Module):
    """s <- s + g * F with g from the timestep embedding: one branch."""

    def __init__(self, dim=8):
        super().__init__()
        self.f1, self.f2, self.mod = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, s, temb):
        return s + self.mod(temb)[:, None] * self.f2(torch.relu(self.f1(s)))


class NotResidual(torch.nn.Module):
    """s <- norm(s + F): the stream passes through a norm, so the skeleton is not skip + branches."""

    def __init__(self, dim=8):
        super().__init__()
        self.f1, self.f2 = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, s, temb):
        return torch.nn.functional.layer_norm(s + self.f2(self.f1(s)), s.shape[-1:])


class Stack(torch.nn.Module):
    def __init__(self, block):
        super().__init__()
        self.embed, self.t = torch.nn.Linear(4, 8), torch.nn.Linear(8, 8)
        self.layers = torch.nn.ModuleList([block(), Gated()])
        self.out = torch.nn.Linear(8, 4)

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        s = self.embed(x)
        for layer in self.layers:
            s = layer(s, temb)
        return self.out(s)


def _analysis(block):
    model = Stack(block)
    return analyze(trace_graphs(model, {"x": torch.randn(2, 5, 4), "timestep": torch.rand(2)})[0])


def test_gated_branch_has_f_and_its_invariant_gate():
    analysis = _analysis(Gated)
    first = analysis.branches[0]
    assert first.proven and len(first.branches) == 1
    branch = first.branches[0]
    assert branch.gate is not None and branch.feature != branch.gate


def test_a_block_that_is_not_skip_plus_branches_is_reported_and_falls_back():
    analysis = _analysis(NotResidual)
    first, second = analysis.branches
    assert not first.proven and "not the stream plus residual branches" in first.reason
    assert second.proven
    assert "not proven" in analysis.report()

    from c4d_compile import C4DWarning, c4d_backend

    model = Stack(NotResidual)
    x = torch.randn(2, 5, 4)
    backend = c4d_backend("taylorseer", lowering="eager", interval=1)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with pytest.warns(C4DWarning, match="layers.0"), torch.no_grad():
        for t in (0.9, 0.5, 0.1):
            timestep = torch.full((2,), t)
            assert torch.equal(compiled(x, timestep), model(x, timestep))
    assert backend.stats().coarse_blocks == ("layers.0",) and "layers.0" in str(backend.stats())
    kinds = {f.kind for f in backend.plan.features}
    assert kinds == {"block", "branch"}  # the unproven block is cached whole, the other per branch


class SwappedJoint(torch.nn.Module):
    """Two streams of one shape; the block hands on (tanh(b + F(a)), a + G(b)): not skip + branches, and its
    first output is a residual against its *second* input. The first input of matching shape is the wrong
    partner; the skip-path walk finds the right one."""

    def __init__(self, dim=8):
        super().__init__()
        self.f, self.g = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)
        self.f2, self.g2 = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    def forward(self, a, b):
        return torch.tanh(b + self.f2(self.f(a))), a + self.g2(self.g(b))


class TwoStreams(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ea, self.eb, self.t = torch.nn.Linear(4, 8), torch.nn.Linear(4, 8), torch.nn.Linear(8, 8)
        self.layers = torch.nn.ModuleList([SwappedJoint(), SwappedJoint()])
        self.out = torch.nn.Linear(8, 4)

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        a, b = self.ea(x) + temb[:, None], self.eb(x)
        for layer in self.layers:
            a, b = layer(a, b)
        return self.out(a + b)


def test_a_whole_block_residual_pairs_each_output_with_its_skip_input():
    model = TwoStreams()
    gm = trace_graphs(model, {"x": torch.randn(2, 5, 4), "timestep": torch.rand(2)})[0]
    analysis = analyze(gm)
    block = analysis.branches[0]
    assert not block.proven
    nodes = {n.name: n for n in gm.graph.nodes}
    for out, partner in block.residual_pairs:
        # walk the output back to the add that made it: its partner is the add's operand that enters the block
        node = nodes[out]
        while node.target is not torch.tanh and node.target.__name__ not in ("add", "iadd"):
            node = node.args[0]
        add = node.args[0] if node.target is torch.tanh else node
        assert partner in {a.name for a in add.args if hasattr(a, "name")}, (out, partner)
    assert len({p for _, p in block.residual_pairs}) == 2  # each input pairs once
