"""SeaCache (signal 'spectral-input', eager lowering): the spectral filter against a numpy FFT written out, the
signal and the decisions of every call against a plainly written SeaCache loop over the uncompiled model, exactness
at threshold 0, the grid found in the graph, and the typed errors of its options."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.fx as fx
from support.sampling import loop

from c4d_compile import ConfigError, InvalidValueError, c4d_backend, get_policy
from c4d_compile.compiler.signals import handler_for
from c4d_compile.compiler.signals.spectral_input import noise_scales, sea_filter
from c4d_compile.policies.schedules.spectral import Noise
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

ALPHA_BAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))  # DDPM's linear betas


def numpy_filter(x: np.ndarray, grid: tuple[int, ...], a: float, b: float, power: float) -> np.ndarray:
    """The SEA filter as the paper states it: per axis a / (a^2 + b^2 (|f|^p + 1e-16)) over the full FFT
    frequencies, their outer product over its mean, Re IFFT(G FFT(x)) per channel."""
    gains = [a / (a * a + b * b * (np.abs(np.fft.fftfreq(n)) ** power + 1e-16)) for n in grid]
    response = functools.reduce(np.multiply.outer, gains)
    response = response / response.mean()
    cells = x.astype(np.float64).reshape(*x.shape[:-2], *grid, x.shape[-1])
    axes = tuple(range(x.ndim - 2, x.ndim - 2 + len(grid)))
    out = np.fft.ifftn(np.fft.fftn(cells, axes=axes) * response[..., None], axes=axes).real
    return out.reshape(x.shape)


def plain_scales(t: float, noise: str) -> tuple[float, float]:
    if noise == "flow":
        sigma = min(max(t / 1000, 1e-6), 1 - 1e-6)
        return 1 - sigma, sigma
    alpha_bar = np.interp(t, np.arange(1000), ALPHA_BAR)
    return float(np.sqrt(alpha_bar)), float(np.sqrt(1 - alpha_bar))


@pytest.mark.parametrize("grid,power", [((5, 6), 2.0), ((4, 3), 2.0), ((2, 3, 4), 3.0)])
@pytest.mark.parametrize("a,b", [(0.3, 0.7), (1e-6, 1 - 1e-6), (0.99, 0.01)])
def test_the_filter_is_the_papers_written_with_numpy(grid, power, a, b):
    x = torch.randn(2, int(np.prod(grid)), 3, generator=torch.Generator().manual_seed(0))
    got = sea_filter(x, grid, torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), power)
    want = numpy_filter(x.numpy(), grid, a, b, power)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got.double(), torch.from_numpy(want), rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_noise_scales_follow_sigma_or_the_ddpm_schedule():
    a, b = noise_scales(torch.tensor([250.0]), Noise.FLOW, 1000.0)
    assert (float(a), float(b)) == pytest.approx((0.75, 0.25))
    a, b = noise_scales(torch.tensor(1.0), Noise.FLOW, 1.0)  # σ = 1 is clamped off the degenerate filter
    assert (float(a), float(b)) == pytest.approx((1e-6, 1 - 1e-6), rel=1e-9)
    for t in (0.0, 500.0, 500.5, 999.0):
        a, b = noise_scales(torch.tensor([t, t]), Noise.VP, 1000.0)
        assert (float(a), float(b)) == pytest.approx(plain_scales(t, "vp"), rel=1e-9)


class PlainSeaCache:
    """SeaCache written plainly over diffusers' DiT blocks with hooks: at the first block's modulated input
    (``norm1``'s output), filter it with ``numpy_filter`` at this call's noise level, accumulate its relative L1
    change against the previous call's filtered input; compute when the sum reaches the threshold (then reset),
    and at the first and last step; a cached call puts the stored stack residual on the stack's input."""

    def __init__(self, model, threshold: float, steps: int, noise: str, raw_first: bool):
        self.threshold, self.steps, self.noise, self.raw_first = threshold, steps, noise, raw_first
        self.ref = self.residual = None
        self.acc, self.step, self.kinds, self.signals = 0.0, 0, [], []
        blocks = model.transformer_blocks
        model.register_forward_pre_hook(self._timestep, with_kwargs=True)
        blocks[0].register_forward_pre_hook(self._stack_in)
        blocks[0].norm1.register_forward_hook(self._modulated)
        blocks[-1].register_forward_hook(self._last_block)

    def _timestep(self, module, args, kwargs):
        self.t = float(kwargs["timestep"].reshape(-1)[0])

    def _stack_in(self, module, args):
        self.stack_in = args[0]

    def _modulated(self, module, args, out):
        probe = out[0].float().numpy()
        filtered = numpy_filter(probe, (4, 4), *plain_scales(self.t, self.noise), 2.0)
        forced = self.step in (0, self.steps - 1)
        if self.ref is None:
            signal, compute = None, True
            self.ref = probe if self.raw_first else filtered
        else:
            signal = float(np.abs(filtered - self.ref).sum() / np.abs(self.ref).sum())
            self.ref = filtered
            self.acc += signal
            compute = forced or self.acc >= self.threshold
        if compute:
            self.acc = 0.0
        self.cache = not compute
        self.signals.append(signal)
        self.kinds.append("full" if compute else "cached")
        self.step += 1

    def _last_block(self, module, args, out):
        if self.cache:
            return self.stack_in + self.residual
        self.residual = out - self.stack_in
        return out


@pytest.mark.parametrize("noise,raw_first", [("flow", False), ("vp", True)])
def test_signals_and_decisions_are_a_plain_seacache_loops(noise, raw_first):
    spec, steps, threshold = get_tiny_model("dit"), 12, 0.3
    model = spec.build()
    backend = c4d_backend("seacache", lowering="eager", threshold=threshold, noise=noise, raw_first=raw_first,
                          num_steps=steps)
    got = loop(torch.compile(model, backend=backend, fullgraph=True), spec, steps)
    plain = PlainSeaCache(model, threshold, steps, noise, raw_first)
    want = loop(model, spec, steps)
    stats = backend.stats().last.contexts["branch0"]
    assert stats.kinds == plain.kinds
    assert {"full", "cached"} <= set(plain.kinds)  # the threshold gives both decisions: the test can fail
    assert stats.signals[0] is None and plain.signals[0] is None
    torch.testing.assert_close(torch.tensor(stats.signals[1:]), torch.tensor(plain.signals[1:]), rtol=1e-4, atol=0)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model,options,grid", [("flux", {}, (4, 4)), ("wan", {}, (2, 4, 4)),
                                                ("dit", {"schedule": "paper", "noise": "vp"}, (4, 4))])
def test_threshold_zero_computes_every_step_exactly_on_the_grid_found_in_the_graph(model, options, grid):
    """flux: 16 packed tokens (a square); wan: the (B, C, T, H, W) latent over a 1x2x2 patch; dit: (B, C, H, W)."""
    spec = get_tiny_model(model)
    module = spec.build()
    want = loop(module, spec, 5)
    backend = c4d_backend("seacache", lowering="eager", num_steps=5, **options, threshold=0.0)
    got = loop(torch.compile(module, backend=backend, fullgraph=True), spec, 5)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert backend.stats().last.contexts["branch0"].kinds == ["full"] * 5
    assert backend.plan.signal.grid == grid and backend.plan.signal.power == len(grid)
    signal_state = [e for e in backend.plan.state if e.kind == "signal"]  # the filtered reference, nothing else
    assert [(e.name, e.shape) for e in signal_state] == [("signal.ref.0", backend.plan.probe_shapes[0])]


def _flux_of(rows: int, cols: int):
    """The tiny Flux and its inputs with a rows x cols grid of packed image tokens."""
    spec = get_tiny_model("flux")
    inputs = spec.make_inputs()
    ids = torch.zeros(rows, cols, 3)
    ids[..., 1], ids[..., 2] = torch.arange(rows)[:, None], torch.arange(cols)[None, :]
    inputs.update(hidden_states=torch.randn(1, rows * cols, 16), img_ids=ids.reshape(-1, 3))
    return spec, spec.build(), inputs


def _compile_error(backend, spec, module, inputs) -> BaseException:
    with pytest.raises(Exception) as err:
        loop(torch.compile(module, backend=backend, fullgraph=True), spec, 2, inputs)
    return getattr(err.value, "inner_exception", err.value)  # Dynamo wraps what a backend raises


def test_a_grid_the_graph_does_not_say_is_asked_for_and_a_given_one_is_checked():
    spec, module, inputs = _flux_of(3, 4)  # 12 packed tokens: no latent input of rank 4, not a square
    inner = _compile_error(c4d_backend("seacache", lowering="eager"), spec, module, inputs)
    assert isinstance(inner, ConfigError) and "give grid=(h, w)" in str(inner) and "12" in str(inner)
    torch._dynamo.reset()
    backend = c4d_backend("seacache", lowering="eager", grid=(3, 4), threshold=0.0, num_steps=2)
    loop(torch.compile(module, backend=backend, fullgraph=True), spec, 2, inputs)
    assert backend.plan.signal.grid == (3, 4)
    torch._dynamo.reset()
    spec = get_tiny_model("dit")  # 16 tokens
    inner = _compile_error(c4d_backend("seacache", lowering="eager", grid=(2, 5)), spec, spec.build(), None)
    assert isinstance(inner, ConfigError) and "multiply to 16" in str(inner)


@pytest.mark.parametrize("options,field,valid", [
    ({"noise": "ddpm"}, "noise", "'flow', 'vp'"),
    ({"grid": (4,)}, "grid", "(t, h, w)"),
    ({"grid": (0, 4)}, "grid", "positive integers"),
    ({"grid": "4x4"}, "grid", "(h, w)"),
    ({"power": -1}, "power", ">= 0"),
    ({"timestep_scale": -1.0}, "timestep_scale", ">= 0"),
    ({"raw_first": "yes"}, "raw_first", "True or False"),
    ({"decision": "device"}, "decision", "'host'"),
])
def test_bad_options_are_typed_errors_naming_what_is_valid(options, field, valid):
    with pytest.raises(InvalidValueError) as err:
        c4d_backend("seacache", **options)
    assert err.value.field == field and valid in str(err.value)


def test_spectral_options_belong_to_the_spectral_signal():
    with pytest.raises(ConfigError, match="grid, noise: options of signal='spectral-input'"):
        get_policy("teacache", grid=(4, 4), noise="vp")
    assert get_policy("teacache", signal="spectral-input", grid=(4, 4)).schedule.grid == (4, 4)


def test_context_parallelism_is_refused_where_the_plan_is_made():
    """A graph with collectives holds a shard of the tokens on each rank: the filter cannot see the grid."""
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.ops._c10d_functional.all_reduce.default, (x, "sum", "0")))
    policy = get_policy("seacache")
    with pytest.raises(ConfigError, match="context parallelism"):
        handler_for(policy.schedule).find(fx.GraphModule(torch.nn.Module(), graph), None, policy, [])
