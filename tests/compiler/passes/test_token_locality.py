"""Token dims and token-locality: which dim of the stream is the tokens, which branches keep each token's
row to itself (recomputable on a token subset), and why the others mix tokens."""

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from support.variants import capture_graph
from torch import nn

from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.dim_flow import Why, follow
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def trace(model, **inputs) -> fx.GraphModule:
    return capture_graph(model, **inputs)[0]


def locality(analysis) -> dict[str, tuple[str, bool, str]]:
    return {t.feature: (t.block, t.local, t.reason) for t in analysis.token_local}


@pytest.fixture(scope="module")
def flux():
    spec = get_tiny_model("flux")
    return analyze(trace(spec.build().eval(), **spec.make_inputs()))


def test_flux_token_dims_are_found_from_attention(flux):
    assert {k: (t.dims, t.proven) for k, t in flux.token_dims.items()} == {
        "hidden_states": ((1,), True), "encoder_hidden_states": ((1,), True)}


def test_flux_double_block_mlps_are_token_local_and_attention_is_not(flux):
    found = locality(flux)
    for bb in flux.branches:
        features = [b.feature for b in bb.branches]
        if bb.block.startswith("transformer_blocks"):  # image attention, image MLP, text attention, text MLP
            assert [found[f][1] for f in features] == [False, True, False, True], bb.block
            assert "concatenates along the token dim" in found[features[0]][2]  # joint attention's cat
        else:  # single blocks: attention and MLP share one projection; rotary tables are per token
            assert [found[f][1] for f in features] == [False]
            assert "indexed by the token dim" in found[features[0]][2]
    local = [t for t in flux.token_local if t.local]
    assert {t.tokens for t in local} == {16, 8}  # image and text token spaces
    assert all(dict(t.body)[t.feature] == 1 for t in local)


def test_wan_ffn_and_cross_attention_are_token_local_self_attention_is_not():
    spec = get_tiny_model("wan")
    analysis = analyze(trace(spec.build().eval(), **spec.make_inputs()))
    for bb in analysis.branches:
        self_attention, cross_attention, ffn = (locality(analysis)[b.feature] for b in bb.branches)
        assert not self_attention[1] and cross_attention[1] and ffn[1]  # cross-attention: keys are the text


class Block(nn.Module):
    """Attention + MLP; ``mixing`` hides a token-mixing op inside the MLP branch."""

    def __init__(self, mixing: str | None, dim: int, tokens: int, attention: bool = True):
        super().__init__()
        self.mixing, self.attention = mixing, attention
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.up, self.down, self.tokens = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim), nn.Linear(tokens, tokens)

    def forward(self, x):
        if self.attention:
            q, k, v = self.qkv(F.layer_norm(x, x.shape[-1:])).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)
            x = x + self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))
        h = F.gelu(self.up(F.layer_norm(x, x.shape[-1:])))
        if self.mixing == "mean over tokens":
            h = h - h.mean(dim=1, keepdim=True)
        elif self.mixing == "token MLP":
            h = self.tokens(h.transpose(1, 2)).transpose(1, 2)
        elif self.mixing == "roll":
            h = h.roll(1, dims=1)
        elif self.mixing == "per-token table":
            h = h * torch.arange(h.shape[1], dtype=h.dtype)[:, None]
        return x + self.down(h)


class TinyDiT(nn.Module):
    def __init__(self, mixing: str | None, dim: int = 16, tokens: int = 8, attention: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(Block(mixing, dim, tokens, attention) for _ in range(2))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("mixing, why", [
    (None, None), ("mean over tokens", "contracts it"), ("token MLP", "contracts it"), ("roll", "no token rule"),
    ("per-token table", "indexed by the token dim"),
])
def test_a_token_mixing_op_hidden_in_an_mlp_is_found(mixing, why):
    analysis = analyze(trace(TinyDiT(mixing).eval(), x=torch.randn(2, 8, 16)))
    assert analysis.token_dims["l_x_"].dims == (1,) and analysis.token_dims["l_x_"].proven
    found = [(t.local, t.reason) for t in analysis.token_local]
    assert [local for local, _ in found] == [False, why is None] * 2
    assert "attention over it mixes tokens" in found[0][1]
    if why is not None:
        assert why in found[1][1]


def test_a_stream_without_attention_has_its_token_dims_assumed_and_said_so():
    analysis = analyze(trace(TinyDiT(None, attention=False).eval(), x=torch.randn(1, 8, 16)))
    (dims,) = analysis.token_dims.values()
    assert dims.dims == (1,) and not dims.proven and "assumed" in dims.why
    assert [t.local for t in analysis.token_local] == [True, True]  # no op mixes rows
    assert "(assumed)" in analysis.report()


def test_the_dim_follows_permutes_and_views_and_stops_where_it_is_merged():
    def f(x, w, w2):
        y = x.permute(0, 2, 1)  # (B, C, N): tokens at 2
        z = y.reshape(2, 4, 2, 6)  # C split, tokens whole at 3 (last)
        merged = x.reshape(12, 8)  # batch and tokens merged
        return F.linear(z, w), F.linear(x, w2), merged

    gm = fx.symbolic_trace(f)
    x, w, w2 = torch.randn(2, 6, 8), torch.randn(5, 6), torch.randn(5, 8)  # x: (batch, tokens, channels)
    from torch.fx.passes.shape_prop import ShapeProp
    ShapeProp(gm).propagate(x, w, w2)
    for n in gm.graph.nodes:  # the passes read Dynamo's example values
        if hasattr(n.meta.get("tensor_meta"), "shape"):
            n.meta["example_value"] = torch.empty(n.meta["tensor_meta"].shape)
    nodes = {n.name: n for n in gm.graph.nodes}
    flow = follow(gm.graph.nodes, {nodes["x"]: 1})
    assert flow.positions[nodes["permute"]] == 2 and flow.positions[nodes["reshape"]] == 3
    assert flow.stops[nodes["linear"]].why is Why.CONTRACTS  # a linear over the tokens mixes them
    assert flow.positions[nodes["linear_1"]] == 1  # over the channels: the tokens stay batch-like
    assert flow.stops[nodes["reshape_1"]].why is Why.ROWS
