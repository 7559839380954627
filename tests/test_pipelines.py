"""Real diffusers pipelines, cached through ``enable_cache``: their own ``__call__``, schedulers, guidance
code and ``cache_context`` calls (tiny random-weight components, prompt embeddings passed in).

Per pipeline: ``interval=1`` equals the uncompiled pipeline bit-exactly (eager lowering); the default
preset caches at least one step per guidance context; a second call with another seed and step count
equals the same call after ``backend.reset()``.
"""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning")

from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, enable_cache  # noqa: E402

# Cache contexts each guidance kind needs with guidance on: named by the pipeline ("cond" / "uncond") or,
# for a pipeline that does not name them, told apart by the timestep ("branch0" / "branch1").
CONTEXTS = {"none": 1, "batched": 1, "separate": 2}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=sorted(PIPELINES))
def case(request):
    torch._dynamo.reset()
    return PIPELINES[request.param]


def test_interval_one_is_the_uncompiled_pipeline(case):
    reference = run(case.build(), case, steps=3, seed=0)
    pipe = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C4DWarning)
        backend = enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
        got = run(pipe, case, steps=3, seed=0)
    assert torch.equal(got, reference)
    assert backend.stats().cached_steps == 0


def test_default_preset_caches_every_context_and_a_second_call_is_independent(case):
    pipe = case.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, case, steps=8, seed=0)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)], [str(w.message) for w in caught]
    contexts = backend.stats().last.contexts
    names = {name.split("[")[0] for name in contexts}
    assert len(names) == CONTEXTS[case.guidance], contexts
    for name, ctx in contexts.items():
        assert ctx.cached_steps >= 1, (name, ctx)
    if len(case.transformers) == 1:
        for ctx in contexts.values():
            assert ctx.computed[-1] == 7  # the pipeline told the step count: the last step is full
    second = run(pipe, case, steps=6, seed=1)
    backend.reset()
    assert torch.equal(second, run(pipe, case, steps=6, seed=1))
