"""A CACHED step equals a plainly written eager TaylorSeer-Lite (TaylorSeer, arXiv 2503.06923; Cache4Diffusion)."""

import math

import pytest
import torch
from support.sampling import sample

from c4d_compile import c4d_backend
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


class TaylorSeerLiteReference:
    """The method as the paper's code does it: run the model on full steps, keep Taylor factors of
    its output, and on other steps return  sum_i D^i k^i / i!  without calling the model."""

    def __init__(self, model, order: int, interval: int, warmup: int):
        self.model, self.order, self.interval, self.warmup = model, order, interval, warmup
        self.step, self.last_full, self.factors = -1, None, {}

    def __call__(self, **kwargs):
        self.step += 1
        s = self.step
        full = s < self.warmup or self.last_full is None or s - self.last_full >= self.interval
        if full:
            out = self.model(**kwargs)[0]
            new = {0: out}
            for i in range(self.order):
                if i not in self.factors:
                    break
                new[i + 1] = (new[i] - self.factors[i]) / (s - self.last_full)
            self.factors, self.last_full = new, s
            return (out,)
        k = s - self.last_full
        return (sum(d * (k**i / math.factorial(i)) for i, d in self.factors.items()),)


@pytest.mark.parametrize("name", ["flux", "wan"])
@pytest.mark.parametrize("order,interval,warmup", [(2, 5, 3), (1, 3, 1)])
def test_cached_steps_match_the_reference(name, order, interval, warmup):
    spec = get_tiny_model(name)
    model = spec.build()
    ref_out, ref_preds = sample(TaylorSeerLiteReference(model, order, interval, warmup), spec, num_steps=12)
    backend = c4d_backend("taylorseer-lite", lowering="eager", order=order, interval=interval, warmup=warmup,
                          variable="step")
    got_out, got_preds = sample(torch.compile(model, backend=backend, fullgraph=True), spec, num_steps=12)
    assert backend.stats().cached_steps >= 5
    for ref, got in zip(ref_preds, got_preds):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_out, ref_out, rtol=1e-5, atol=1e-5)
