"""Each exporter-gap rewrite gives the same values as the graph it rewrote, and leaves alone what it must."""

from __future__ import annotations

import torch
from support.variants import capture_graph

from c4d_compile.onnx_export.rewrites import bridge_exporter_gaps


class Squeezes(torch.nn.Module):
    def forward(self, x, y):
        return x.squeeze(1) * 2, y.squeeze(1), torch.squeeze(x, (0, 1))  # (2,3,4): a no-op; (2,1,4): a squeeze


class BoolMask(torch.nn.Module):
    def forward(self, valid, drop, scores):
        keep = valid.masked_fill(drop, False)
        force = valid.masked_fill(drop, True)
        return scores.masked_fill(~keep, -1.0), force.float(), scores.masked_fill(drop, 0.5)


class ComplexRotary(torch.nn.Module):
    """QwenImage's rotary form: the frequencies from a complex buffer, applied as a complex product."""

    def __init__(self):
        super().__init__()
        angles = torch.outer(torch.arange(6.0), torch.linspace(0.1, 1.0, 4))
        self.register_buffer("freqs", torch.polar(torch.ones_like(angles), angles), persistent=False)

    def forward(self, x, phase):
        f = self.freqs[:, None, :]  # (6, 1, 4): tokens, heads, pairs
        rotated = torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2)) * f).flatten(-2)
        g = torch.polar(torch.ones_like(phase), phase)  # from an input: not a constant, left alone
        other = torch.view_as_real(torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2)) * g).flatten(-2)
        return rotated, other


def _constants(gm, examples, model):
    owned = {id(t) for t in (*model.parameters(), *model.buffers())}
    return [e if id(e) in owned else None for e in examples]


def _check(model, inputs, expected):
    gm, examples = capture_graph(model, **inputs)
    rewritten, counts = bridge_exporter_gaps(gm, _constants(gm, examples, model))
    assert counts == expected
    for a, b in zip(gm(*examples), rewritten(*examples)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    return gm, rewritten


def test_noop_squeezes_are_dropped_and_real_ones_kept():
    gm, rewritten = _check(Squeezes(), {"x": torch.randn(2, 3, 4), "y": torch.randn(2, 1, 4)},
                           {"drop_noop_squeeze": 2})
    squeezes = [n for n in rewritten.graph.nodes if "squeeze" in str(n.target)]
    assert len(squeezes) == 1 and squeezes[0].args[1:] == (1,)  # y's real squeeze stays as it was


def test_bool_masked_fill_becomes_logic():
    valid, drop = torch.rand(3, 5) > 0.3, torch.rand(3, 5) > 0.6
    gm, rewritten = _check(BoolMask(), {"valid": valid, "drop": drop, "scores": torch.randn(3, 5)},
                           {"bool_masked_fill_as_logic": 2})
    fills = [n for n in rewritten.graph.nodes if n.target == "masked_fill"]
    assert len(fills) == 3 - 2 + 1  # the two float fills stay; ~keep's fill is on floats too


def test_complex_products_from_constants_become_real_arithmetic():
    gm, rewritten = _check(ComplexRotary(), {"x": torch.randn(1, 6, 2, 8), "phase": torch.randn(6, 2, 4)},
                           {"complex_products_as_real": 1})
    complex_calls = [n for n in rewritten.graph.nodes if n.target is torch.view_as_complex]
    assert len(complex_calls) == 1  # the input-dependent product is left to the exporter


class Plain(torch.nn.Module):
    def forward(self, x, mask):
        return x.squeeze(1).masked_fill(mask, 0.0)  # a real squeeze, a float fill


def test_nothing_to_bridge_is_a_copy():
    gm, examples = capture_graph(Plain(), x=torch.randn(2, 1, 4), mask=torch.rand(2, 4) > 0.5)
    rewritten, counts = bridge_exporter_gaps(gm, [None] * len(examples))
    assert counts == {} and rewritten is not gm
    assert [n.format_node() for n in rewritten.graph.nodes] == [n.format_node() for n in gm.graph.nodes]
