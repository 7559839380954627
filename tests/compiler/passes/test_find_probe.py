"""find_probe on the three-block graph: which value each kind of signal probes, the prefix a PROBE runs, the
probed residual's value against the blocks written out plainly — and what it refuses."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from support.three_blocks import Model, example_inputs

from c4d_compile import ConfigError
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.passes.find_probe import find_probe
from c4d_compile.inspect_model import trace
from c4d_compile.policies.schedules import CodebookSchedule, SignalSchedule
from c4d_compile.policies.schedules.signal import Signal


@pytest.fixture(scope="module")
def traced():
    torch.manual_seed(0)
    model = Model().eval()
    ((gm, args),) = trace(model, example_inputs())
    return model, gm, analyze(gm), args


def _values(gm: fx.GraphModule, args: list, names: list[str]) -> dict[str, torch.Tensor]:
    """The named values of one run of the graph on the example inputs."""
    seen: dict[str, torch.Tensor] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in names:
                seen[n.name] = out
            return out

    with torch.no_grad():
        Recorder(gm).run(*args)
    return seen


def test_first_blocks_probes_the_residual_of_block_0_and_its_prefix_stops_there(traced):
    model, gm, analysis, args = traced
    site = find_probe(gm, analysis, SignalSchedule(signal=Signal.FIRST_BLOCKS, first_blocks=1))
    ((after, base),) = site.values
    assert site.after_block == 0 and base is not None
    nodes = list(gm.graph.nodes)
    block0, block1 = analysis.stack.blocks[0], analysis.stack.blocks[1]
    assert {n.name for n in nodes[block0.start: block0.end + 1]} <= site.prefix  # block 0 runs in the probe
    assert not {n.name for n in nodes[block1.start: block1.end + 1]} & site.prefix  # block 1 does not
    got = _values(gm, args, [after, base])
    inputs = example_inputs()
    with torch.no_grad():  # block 0's residual, written out
        temb = model.t(torch.sin(inputs["timestep"][:, None] * torch.arange(8.0)))
        s = model.embed(inputs["x"])
        b = model.blocks[0]
        expected = temb[:, None] * b.f2(torch.relu(b.f1(s)))
    torch.testing.assert_close(got[after] - got[base], expected)


def test_the_modulated_input_is_the_stream_operand_of_the_first_matmul(traced):
    model, gm, analysis, args = traced
    site = find_probe(gm, analysis, SignalSchedule(signal=Signal.MODULATED_INPUT))
    ((value, base),) = site.values
    assert base is None and site.after_block is None
    inputs = example_inputs()
    with torch.no_grad():  # block 0's f1 reads the embedded latent as it is (no norm, no modulation here)
        torch.testing.assert_close(_values(gm, args, [value])[value], model.embed(inputs["x"]))


def test_the_model_input_probe_is_the_latent_placeholder_with_nothing_before_it(traced):
    _, gm, analysis, _ = traced
    site = find_probe(gm, analysis, SignalSchedule(signal=Signal.MODEL_INPUT, warmup=1))
    ((value, base),) = site.values
    node = next(n for n in gm.graph.nodes if n.name == value)
    assert node.op == "placeholder" and base is None and site.prefix == frozenset()  # placeholders are inputs


def test_a_signal_measured_by_full_steps_has_no_prefix_and_defaults_to_the_middle_block(traced):
    _, gm, analysis, _ = traced
    site = find_probe(gm, analysis, CodebookSchedule(), prefixed=False)
    assert site.prefix == frozenset() and "transformer" not in site.description
    assert analysis.stack.blocks[1].name in site.description  # the middle one of three


def test_first_blocks_that_leave_no_block_to_cache_are_refused(traced):
    _, gm, analysis, _ = traced
    with pytest.raises(ConfigError, match="leave no block to cache"):
        find_probe(gm, analysis, SignalSchedule(signal=Signal.FIRST_BLOCKS, first_blocks=2, last_blocks=1))
