"""diffusers' attention dispatcher under the cache: ``transformer.set_attention_backend(...)``, tiny Flux pipeline.

The backends that run on a CPU: ``native`` (SDPA, the default), ``_native_math`` and ``_native_flash`` (SDPA pinned to
one kernel with ``sdpa_kernel``) and ``flex`` (torch's flex attention; its block mask is built with ``vmap`` inside
the graph). What is checked for each: ``interval=1`` is the uncompiled pipeline with the same backend bit for bit,
the default preset caches with no warning, and the attention is counted in the FLOPs as with ``native``. Switching
the backend between generations compiles another graph (Dynamo guards on it): exact again, nothing reused. The
GPU backends (flash, _flash_3, sage, xformers, _native_cudnn, _native_efficient, the hub kernels) are not run here;
on a CPU diffusers (or torch) refuses them before c4d does anything (docs/stacks.md).
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*flex_attention called without torch.compile.*:UserWarning"),
              pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES, run  # noqa: E402
from support.stacks import restore_attention_backend  # noqa: E402

from c4d_compile import C4DWarning, enable_cache  # noqa: E402
from c4d_compile.compiler.flops import flop_counter  # noqa: E402
from c4d_compile.runtime.executor import VariantKind  # noqa: E402

CASE = PIPELINES["flux"]
CPU_BACKENDS = ("native", "_native_math", "_native_flash", "flex")


@pytest.fixture(autouse=True)
def _active_backend():
    """``set_attention_backend`` also makes its backend the process-wide default of models that set none."""
    restore = restore_attention_backend()
    yield
    restore()


def _pipe(backend: str):
    pipe = CASE.build()
    pipe.transformer.set_attention_backend(backend)
    return pipe


def _forward_flops() -> int:
    """FLOPs of one uncompiled forward of the tiny Flux transformer (native attention) at the pipeline's sizes."""
    pipe = _pipe("native")
    calls = []
    original = pipe.transformer.forward

    def counted(*args, **kwargs):
        counter = flop_counter()
        with counter:
            out = original(*args, **kwargs)
        calls.append(counter.get_total_flops())
        return out

    pipe.transformer.forward = counted
    run(pipe, CASE, steps=1, seed=0)
    return calls[0]


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_a_cpu_backend_is_exact_at_interval_one_and_cached(name):
    reference = run(_pipe(name), CASE, steps=3, seed=0)
    pipe = _pipe(name)
    exact = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    assert torch.equal(run(pipe, CASE, steps=3, seed=0), reference)
    assert exact.stats().cached_steps == 0 and exact.stats().uncached_calls == 0
    torch._dynamo.reset()
    pipe = _pipe(name)
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, CASE, steps=8, seed=0)
        stats = backend.stats().last
        assert stats.ideal_speedup > 3  # counted here: a FLOP count that fails or warns fails the test
    warned = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert not warned, warned
    (ctx,) = stats.contexts.values()
    assert ctx.computed == [0, 7] and ctx.cached_steps == 6
    (runtime,) = backend.runtimes
    assert runtime.flops[VariantKind.FULL].value == _forward_flops()  # the attention counted as native's


def test_switching_the_backend_between_generations_compiles_another_graph_and_stays_exact():
    pipe = _pipe("native")
    backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
    first = run(pipe, CASE, steps=3, seed=0)
    pipe.transformer.set_attention_backend("_native_math")
    second = run(pipe, CASE, steps=3, seed=0)
    assert len(backend.runtimes) == 2  # Dynamo guards on the processors' backend
    assert torch.equal(second, run(_pipe("_native_math"), CASE, steps=3, seed=0))
    assert not torch.equal(first, second)  # the math kernel rounds otherwise: the switch took effect


@pytest.mark.parametrize("name", ["_native_cudnn", "_native_efficient"])
def test_a_gpu_only_sdpa_kernel_fails_on_the_cpu_as_it_does_uncompiled(name):
    """Pinned to a kernel the CPU lacks, SDPA finds none: the same error uncompiled, never a silent fallback."""
    with pytest.raises(RuntimeError, match="No viable backend"):
        run(_pipe(name), CASE, steps=1, seed=0)
    pipe = _pipe(name)
    enable_cache(pipe, "taylorseer", lowering="eager")
    with pytest.raises(RuntimeError, match="No viable backend"):
        run(pipe, CASE, steps=1, seed=0)
