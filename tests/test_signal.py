"""Signal-driven caching end to end (eager lowering): PROBE + FULL / CACHED against plainly written
FBCache and TeaCache loops over the uncompiled model, exactness at threshold 0, FLOPs, no recompiles."""

from __future__ import annotations

import pytest
import torch
from support.sampling import loop, relative_l1

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.compiler.passes.graph_utils import module_path
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


class PlainDiTCache:
    """FBCache / TeaCache written plainly over diffusers' DiT blocks with hooks: the decision is taken
    after the first block (FBCache: its residual vs the last full step's) or at its modulated input
    (TeaCache: ``norm1``'s output vs the previous call's, accumulated); a cached call replaces the last
    block's output by the stored residual on top of its base (stream after block 0 / stack input)."""

    def __init__(self, model, method: str, threshold: float):
        self.method, self.threshold = method, threshold
        self.ref = self.residual = None
        self.acc, self.step, self.kinds, self.signals = 0.0, 0, [], []
        blocks = model.transformer_blocks
        blocks[0].register_forward_pre_hook(self._stack_in)
        blocks[0].norm1.register_forward_hook(self._modulated)
        blocks[0].register_forward_hook(self._first_block)
        blocks[-1].register_forward_hook(self._last_block)

    def _stack_in(self, module, args):
        self.stack_in = args[0]

    def _decide(self, probe):
        signal = relative_l1(probe, self.ref) if self.ref is not None else None
        self.signals.append(signal)
        if self.method == "fbcache":
            cache = signal is not None and signal < self.threshold
            if not cache:
                self.ref = probe
        else:
            self.ref = probe
            self.acc = self.acc + signal if signal is not None else 0.0
            cache = signal is not None and self.acc < self.threshold
            if not cache:
                self.acc = 0.0
        self.cache = cache
        self.kinds.append("cached" if cache else "full")
        self.step += 1

    def _modulated(self, module, args, out):
        if self.method == "teacache":
            self._decide(out[0])

    def _first_block(self, module, args, out):
        self.after_first = out
        if self.method == "fbcache":
            self._decide(out.float() - self.stack_in.float())

    def _last_block(self, module, args, out):
        base = self.after_first if self.method == "fbcache" else self.stack_in
        if self.cache:
            return base + self.residual
        self.residual = out - base
        return out


@pytest.mark.parametrize("method,threshold", [("fbcache", 0.2), ("teacache", 0.08)])
def test_signal_cache_matches_a_plain_loop_over_the_model(method, threshold):
    spec = get_tiny_model("dit")
    model = spec.build()
    backend = c4d_backend(method, lowering="eager", threshold=threshold, last_steps_full=0)
    got = loop(torch.compile(model, backend=backend, fullgraph=True), spec, 16)
    plain = PlainDiTCache(model, method, threshold)
    want = loop(model, spec, 16)
    stats = backend.stats().last.contexts["branch0"]
    assert stats.kinds == plain.kinds
    assert {"full", "cached"} <= set(plain.kinds)  # the thresholds give both decisions: the test can fail
    assert stats.signals[0] is None and plain.signals[0] is None
    torch.testing.assert_close(torch.tensor(stats.signals[1:]), torch.tensor(plain.signals[1:]), rtol=1e-5, atol=0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


MEASURED_AFTER = ("adacache", "speca")  # their signal comes from the call that ran (FULL, VERIFY): no probe


@pytest.mark.parametrize("model,preset", [
    ("flux", "fbcache"), ("flux", "customcache"), ("wan", "teacache"), ("hunyuanvideo", "fbcache"),
    ("qwenimage", "customcache"), ("wan", "easycache"), ("qwenimage", "easycache"), ("wan", "adacache"),
    ("qwenimage", "adacache"), ("wan", "speca"), ("qwenimage", "speca"),
])
def test_threshold_zero_computes_every_step_exactly(model, preset):
    spec = get_tiny_model(model)
    module = spec.build()
    want = loop(module, spec, 5)
    backend = c4d_backend(preset, lowering="eager", threshold=0.0, num_steps=5)
    got = loop(torch.compile(module, backend=backend, fullgraph=True), spec, 5)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert backend.stats().last.contexts["branch0"].kinds == ["full"] * 5
    assert (VariantKind.PROBE in backend.rewrite.variants) == (preset not in MEASURED_AFTER)


def test_a_call_computes_nothing_twice_and_a_cached_call_is_probe_plus_forecast():
    spec = get_tiny_model("flux")
    model = spec.build()
    plain = c4d_backend("stack-reuse", lowering="eager", num_steps=2)  # its FULL is the original graph
    loop(torch.compile(model, backend=plain, fullgraph=True), spec, 2)
    original = plain.runtimes[0].variants[VariantKind.FULL].flops.value
    torch._dynamo.reset()
    backend = c4d_backend("teacache", lowering="eager", threshold=1.0, num_steps=6)
    loop(torch.compile(model, backend=backend, fullgraph=True), spec, 6)
    runtime = backend.runtimes[0]
    probe, full, cached = (runtime.variants[k].flops.value for k in (VariantKind.PROBE, VariantKind.FULL,
                                                                     VariantKind.CACHED))
    assert runtime.flops[VariantKind.FULL].value == probe + full == original
    assert runtime.flops[VariantKind.CACHED].value == probe + cached
    assert probe < 0.05 * original and cached < 0.1 * original  # the modulated input is cheap to reach
    assert backend.stats().ideal_speedup > 1.5


@pytest.mark.parametrize("decision", ["host", "device"])
def test_fifty_steps_and_a_second_generation_compile_one_graph(decision):
    spec = get_tiny_model("flux")
    model = spec.build()
    for preset in ("fbcache", "teacache"):
        torch._dynamo.reset()
        backend = c4d_backend(preset, lowering="eager", threshold=0.3, num_steps=50, decision=decision)
        call = torch.compile(model, backend=backend, fullgraph=True)
        loop(call, spec, 50)
        loop(call, spec, 50, spec.make_inputs(seed=1))
        assert backend._graphs == 1
        stats = backend.stats()
        assert stats.steps == 100 and 0 < stats.cached_steps < 100


def test_the_probe_skips_blocks_that_do_not_read_the_latent():
    spec = get_tiny_model("hunyuanvideo")  # its text refiner is a block list before the transformer blocks
    backend = c4d_backend("fbcache", lowering="eager", threshold=0.3, num_steps=4)
    loop(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, 4)
    assert "transformer_blocks.0" in backend.plan.probe.description
    assert "refiner" not in backend.plan.probe.description


def test_dbcache_keeps_the_last_blocks_and_refuses_a_split_with_nothing_to_cache():
    spec = get_tiny_model("flux")  # 2 double + 2 single blocks
    model = spec.build()
    backend = c4d_backend("dbcache", lowering="eager", first_blocks=1, last_blocks=1, warmup=1, threshold=0.3,
                          num_steps=6)
    loop(torch.compile(model, backend=backend, fullgraph=True), spec, 6)
    cached = backend.rewrite.variants[VariantKind.CACHED].gm
    ran = {".".join(p.split(".")[:2]) for n in cached.graph.nodes if n.op != "placeholder" and (p := module_path(n))}
    assert "single_transformer_blocks.1" in ran  # Bn = 1: the last block runs on cached steps
    assert not ran & {"transformer_blocks.0", "transformer_blocks.1", "single_transformer_blocks.0"}
    torch._dynamo.reset()
    bad = c4d_backend("dbcache", lowering="eager", first_blocks=3, last_blocks=1)
    with pytest.raises(Exception) as err:
        loop(torch.compile(model, backend=bad, fullgraph=True), spec, 2)
    inner = getattr(err.value, "inner_exception", err.value)  # Dynamo wraps what a backend raises
    assert isinstance(inner, ConfigError) and "first_blocks=3 + last_blocks=1 leave no block" in str(inner)
    assert "first_blocks + last_blocks <= 3" in str(inner)


@pytest.mark.parametrize("model,preset,options", [
    ("flux", "fbcache", {"threshold": 0.3}),
    ("wan", "teacache", {"threshold": 0.15}),
    ("dit", "teacache", {"threshold": 0.3, "rescale": (1730.0, -648.0, 77.43, -2.311, 0.05069)}),
    ("flux", "dbcache", {"first_blocks": 1, "last_blocks": 1, "warmup": 2, "threshold": 0.35, "max_cached_in_row": 2}),
])
def test_the_device_decides_like_the_host_without_reading_anything_per_call(model, preset, options, monkeypatch):
    from c4d_compile.compiler.plan import CachePlan

    spec = get_tiny_model(model)
    module = spec.build()
    runs, measure = {}, CachePlan.measure
    for decision in ("host", "device"):
        torch._dynamo.reset()
        reads = []
        monkeypatch.setattr(CachePlan, "measure", lambda self, *a, reads=reads: reads.append(1) or measure(self, *a))
        backend = c4d_backend(preset, lowering="eager", num_steps=12, decision=decision, **options)
        outs = loop(torch.compile(module, backend=backend, fullgraph=True), spec, 12)
        runs[decision] = outs, backend.stats().last.contexts["branch0"], len(reads), backend
    (host, host_stats, host_reads, _), (device, device_stats, device_reads, backend) = runs["host"], runs["device"]
    assert device_stats.kinds == host_stats.kinds and {"full", "cached"} <= set(host_stats.kinds)
    torch.testing.assert_close(torch.tensor(device_stats.signals[1:]), torch.tensor(host_stats.signals[1:]),
                               rtol=1e-6, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(host, device))
    assert host_reads == 12 and device_reads == 1  # only the first call of the context, which has no reference
    assert VariantKind.DECIDE in backend.rewrite.variants and backend._graphs == 1


def test_the_device_path_refuses_a_forecast_that_needs_the_full_steps():
    spec = get_tiny_model("flux")
    backend = c4d_backend("customcache", lowering="eager", decision="device")
    with pytest.raises(Exception) as err:
        loop(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, 2)
    inner = getattr(err.value, "inner_exception", err.value)
    assert isinstance(inner, ConfigError) and "decision='host'" in str(inner)
