"""Signals measured from the model input (EasyCache) and at full steps (AdaCache), end to end in eager
lowering, against plainly written loops over the uncompiled model (exactness at threshold 0: tests/test_signal.py); the
paths they do not take are refused with typed errors."""

from __future__ import annotations

import pytest
import torch
from support.sampling import loop, relative_l1

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.errors import InvalidValueError
from c4d_compile.policies.schedules import CodebookSchedule, SignalSchedule
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import first_output, get_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


class PlainEasyCache:
    """EasyCache as its reference code writes it (means, not sums), around the uncompiled model: the first
    ``warmup`` steps and the last one compute; then ``k |x - x_prev| / |v_p|`` accumulates, with
    ``k = |v_s - v_p| / |x_s - x_p|`` measured between the last two full steps, and a cached call returns
    ``x + (v_p - x_p)`` (the last output as is when its shape is not the input's)."""

    def __init__(self, model, spec, threshold: float, warmup: int, num_steps: int):
        self.model, self.spec = model, spec
        self.threshold, self.warmup, self.num_steps = threshold, warmup, num_steps
        self.step, self.acc, self.rate = 0, 0.0, None
        self.prev_x = self.full_x = self.full_out = None
        self.kinds, self.signals = [], []

    def __call__(self, **kwargs):
        x = kwargs[self.spec.latent_key].float()
        signal = None
        if self.prev_x is not None and self.rate is not None:
            signal = self.rate * float((x - self.prev_x).abs().mean() / self.full_out.abs().mean())
        self.signals.append(signal)
        step, self.step, self.prev_x = self.step, self.step + 1, x
        compute = step < self.warmup or step >= self.num_steps - 1 or signal is None
        if not compute:
            self.acc += signal
            compute = self.acc >= self.threshold
        if not compute:
            self.kinds.append("cached")
            return self._reuse(x)
        self.kinds.append("full")
        self.acc = 0.0
        out = first_output(self.model(**kwargs)).float()
        if self.full_out is not None:
            self.rate = float((out - self.full_out).abs().mean() / (x - self.full_x).abs().mean())
        self.full_x, self.full_out = x, out
        return out

    def _reuse(self, x):
        if self.full_out.shape == x.shape:
            return x + (self.full_out - self.full_x)
        return self.full_out


@pytest.mark.parametrize("model", ["flux", "dit"])  # dit: a learned-variance output, reused as it is
def test_easycache_matches_a_plain_loop_over_the_model(model):
    spec = get_tiny_model(model)
    module = spec.build()
    options = {"threshold": 0.2, "warmup": 2}
    backend = c4d_backend("easycache", lowering="eager", num_steps=16, **options)
    got = loop(torch.compile(module, backend=backend, fullgraph=True), spec, 16)
    plain = PlainEasyCache(module, spec, num_steps=16, **options)
    want = loop(plain, spec, 16)
    stats = backend.stats().last.contexts["branch0"]
    assert stats.kinds == plain.kinds
    assert {"full", "cached"} <= set(plain.kinds)  # the threshold gives both decisions: the test can fail
    assert [s is None for s in stats.signals] == [s is None for s in plain.signals]
    torch.testing.assert_close(torch.tensor([s for s in stats.signals if s is not None]),
                               torch.tensor([s for s in plain.signals if s is not None]), rtol=1e-5, atol=0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    feature = backend.plan.features[0]
    assert (feature.residual_of is not None) == (model == "flux")  # the transformation vector v - x


class PlainAdaCache:
    """AdaCache around diffusers' DiT blocks with hooks: at a full step the middle block's residual against
    the last full step's, over the steps between them, picks the next interval from the codebook; a cached
    call puts the stored stack residual back on the stack input."""

    def __init__(self, model, schedule: CodebookSchedule, num_steps: int):
        self.schedule, self.num_steps = schedule, num_steps
        blocks = model.transformer_blocks
        self.middle = len(blocks) // 2
        self.step, self.full, self.residual_ref, self.distance, self.interval = 0, [], None, None, None
        self.kinds, self.signals = [], []
        blocks[0].register_forward_pre_hook(self._stack_in)
        blocks[self.middle].register_forward_hook(self._middle)
        blocks[-1].register_forward_hook(self._last)
        model.register_forward_pre_hook(self._decide)

    def _decide(self, module, args):
        s, step = self.schedule, self.step
        self.step += 1
        forced = step < s.warmup or step >= self.num_steps - s.last_steps_full or self.interval is None
        self.cache = not forced and step < self.full[-1] + self.interval
        self.kinds.append("cached" if self.cache else "full")
        if not self.cache:
            self.full.append(step)

    def _stack_in(self, module, args):
        self.stack_in = args[0]

    def _middle(self, module, args, out):
        if self.cache:
            return
        residual = out.float() - args[0].float()
        distance = relative_l1(residual, self.residual_ref) if self.residual_ref is not None else None
        self.signals.append(distance)
        self.residual_ref = residual
        self.interval = None
        if distance is not None:
            self.interval = self.schedule.interval(distance / (self.full[-1] - self.full[-2]))

    def _last(self, module, args, out):
        if self.cache:
            self.signals.append(None)
            return self.stack_in + self.stack_residual
        self.stack_residual = out - self.stack_in
        return out


def test_adacache_matches_a_plain_loop_over_the_model():
    spec = get_tiny_model("dit")
    module = spec.build()
    schedule = CodebookSchedule(threshold=3.0, codebook=((0.05, 4), (0.1, 3), (1.0, 2)))
    backend = c4d_backend("adacache", lowering="eager", num_steps=20, threshold=3.0, codebook=schedule.codebook)
    got = loop(torch.compile(module, backend=backend, fullgraph=True), spec, 20)
    plain = PlainAdaCache(module, schedule, 20)
    want = loop(module, spec, 20)
    stats = backend.stats().last.contexts["branch0"]
    assert stats.kinds == plain.kinds
    gaps = {b - a for a, b in zip(plain.full[1:-2], plain.full[2:-2])}  # after the warm-up, before the last steps
    assert len(gaps) > 1  # the codebook picked several intervals: the test can fail
    assert [s is None for s in stats.signals] == [s is None for s in plain.signals]
    torch.testing.assert_close(torch.tensor([s for s in stats.signals if s is not None]),
                               torch.tensor([s for s in plain.signals if s is not None]), rtol=1e-5, atol=0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert VariantKind.PROBE not in backend.rewrite.variants  # measured by FULL: no call runs anything extra


def test_signals_measured_on_the_host_refuse_the_device_path():
    spec = get_tiny_model("flux")
    backend = c4d_backend("easycache", lowering="eager", decision="device")
    with pytest.raises(Exception) as err:
        loop(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, 2)
    inner = getattr(err.value, "inner_exception", err.value)  # Dynamo wraps what a backend raises
    assert isinstance(inner, ConfigError) and "use decision='host'" in str(inner)
    with pytest.raises(InvalidValueError, match="block-residual is measured at full steps"):
        SignalSchedule(signal="block-residual")


@pytest.mark.parametrize("preset,needs", [("easycache", "region='output'"), ("speca", "region='branch'")])
def test_a_signal_tied_to_a_region_refuses_another(preset, needs):
    spec = get_tiny_model("flux")  # easycache measures the output's rate, speca verifies the last block's branches
    backend = c4d_backend(preset, lowering="eager", region="stack")
    with pytest.raises(Exception) as err:
        loop(torch.compile(spec.build(), backend=backend, fullgraph=True), spec, 2)
    inner = getattr(err.value, "inner_exception", err.value)  # Dynamo wraps what a backend raises
    assert isinstance(inner, ConfigError) and needs in str(inner)


@pytest.mark.parametrize("preset,options", [("easycache", {"threshold": 0.2, "warmup": 2}),
                                            ("adacache", {"threshold": 3.0}), ("speca", {"threshold": 0.5})])
def test_fifty_steps_and_a_second_generation_compile_one_graph(preset, options):
    spec = get_tiny_model("flux")
    backend = c4d_backend(preset, lowering="eager", num_steps=50, **options)
    call = torch.compile(spec.build(), backend=backend, fullgraph=True)
    loop(call, spec, 50)
    loop(call, spec, 50, spec.make_inputs(seed=1))
    assert backend._graphs == 1
    stats = backend.stats()
    assert stats.steps == 100 and 0 < stats.cached_steps < 100
