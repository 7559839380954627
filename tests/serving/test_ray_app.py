"""The step server as a Ray Serve deployment on a local Ray instance: requests sent together through the
deployment's handle are batched by the replica and each equals the same request served alone; a malformed one
gets its typed error as a 400 answer."""

from __future__ import annotations

import functools

import pytest
import torch

serve = pytest.importorskip("ray.serve")
ray = pytest.importorskip("ray")

from c4d_compile.serving.ray_app import cached_deployment  # noqa: E402
from c4d_compile.serving.tiny import tiny_server  # noqa: E402
from c4d_compile.zoo.tiny_diffusers import get_tiny_model  # noqa: E402

SPEC = get_tiny_model("flux")


def _body(rid: int, steps: int) -> dict:
    inputs = SPEC.make_inputs(batch=1, seed=rid)
    del inputs["timestep"]
    return {"id": rid, "timesteps": [float(t) for t in SPEC.timesteps(steps)],
            "inputs": {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}}


def test_a_ray_serve_replica_batches_requests_and_answers_each_as_alone():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    try:
        build = functools.partial(tiny_server, "flux", "taylorseer", max_batch=4)
        handle = serve.run(cached_deployment(build), name="c4d", route_prefix=None)
        steps = {1: 5, 2: 4, 3: 6}
        pending = {rid: handle.remote(_body(rid, n)) for rid, n in steps.items()}
        bad = handle.remote({"inputs": {"hidden_states": [[0.0]]}, "timesteps": [1.0]}).result()
        answers = {rid: p.result() for rid, p in pending.items()}
        together = handle.stats.remote().result()
        alone = {rid: handle.remote({**_body(rid, n), "id": f"alone-{rid}"}).result() for rid, n in steps.items()}
        stats = handle.stats.remote().result()
    finally:
        serve.shutdown()
        ray.shutdown()
    assert bad["status"] == 400 and bad["error"] == "InvalidValueError"
    assert together["rows"] > together["calls"]  # the replica batched the requests it was sent together
    assert stats["pending"] == 0 and stats["state_bytes"] == 0
    for rid, got in answers.items():
        assert got["status"] == 200 and got["id"] == rid and got["shape"] == [1, 16, 16]
        torch.testing.assert_close(torch.tensor(got["output"]), torch.tensor(alone[rid]["output"]), rtol=1e-5,
                                   atol=1e-6)
