"""``backend="c4d"`` is one backend per ``torch.compile`` call, so it caches models that Dynamo compiles as
several graphs: Lumina2 (a prologue graph lends the stack its timestep), Mochi and HiDream (graph breaks in
every block: the split-stack repair retraces). Each run is compared with ``backend=c4d_backend(...)``."""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, backend_of, c4d_backend  # noqa: E402

STEPS = 6
OPTIONS = {"lowering": "eager", "num_steps": STEPS}


@pytest.mark.parametrize("name", ["lumina2", "mochi", "hidream"])
def test_a_multi_graph_model_is_cached_through_the_registered_name(name):
    case = PIPELINES[name]
    outs, computed = [], []
    for by_name in (True, False):
        torch._dynamo.reset()
        pipe = case.build()
        backend = "c4d" if by_name else c4d_backend("taylorseer", **OPTIONS)
        options = {"options": {"policy": "taylorseer", **OPTIONS}} if by_name else {}
        pipe.transformer = torch.compile(pipe.transformer, backend=backend, **options)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outs.append(run(pipe, case, steps=STEPS, seed=0))
        assert not [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
        stats = backend_of(pipe.transformer).stats()
        assert stats.graphs > 1 and stats.cached_steps >= 1, stats
        computed.append({k: c.computed for k, c in stats.last.contexts.items()})
    assert torch.equal(*outs)
    assert computed[0] == computed[1]


def test_a_graph_compiled_without_torch_compile_says_it_gets_a_backend_of_its_own():
    from c4d_compile.compiler.registered_backend import dynamo_backend

    gm = torch.fx.symbolic_trace(torch.nn.Linear(2, 2))
    with pytest.warns(C4DWarning, match="backend of its own"):
        dynamo_backend(gm, [torch.randn(1, 2)], {"policy": "taylorseer", "lowering": "eager"})
