"""The step server under a small bounded load: requests of random step counts, two prompt lengths and random
arrival times, submitted from another thread while the server's loop batches them; some cancelled, some
malformed. Every completed request equals its solo run through the same server, malformed ones get a typed error
without disturbing the others, and no cache state is left when the server is idle."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest
import torch

from c4d_compile import c4d_backend
from c4d_compile.errors import InvalidValueError
from c4d_compile.serving import RequestFailedError, StepServer
from c4d_compile.serving.http import post, serve_http
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

SPEC = get_tiny_model("flux")


def _request(seed: int, text_len: int) -> dict:
    inputs = SPEC.make_inputs(batch=1, seed=seed)
    inputs.pop("timestep")
    inputs["encoder_hidden_states"] = torch.randn(1, text_len, 32, generator=torch.Generator().manual_seed(seed))
    inputs["txt_ids"] = torch.zeros(text_len, 3)
    return inputs


def _grid(steps: int) -> list[float]:
    return [float(t) for t in SPEC.timesteps(steps)]


@pytest.fixture(scope="module")
def server():
    backend = c4d_backend("teacache", lowering="eager", threshold=0.6)
    compiled = torch.compile(SPEC.build().eval(), backend=backend, dynamic=True)
    return StepServer(compiled, backend, SPEC.make_inputs(batch=1), latent_key="hidden_states",
                      timestep_key="timestep", max_batch=4)


def test_a_bounded_load_completes_each_request_as_its_solo_run(server):
    draw = random.Random(0)
    plan = [(i, draw.randint(3, 6), draw.choice((8, 11))) for i in range(12)]  # id, steps, prompt length
    futures, refused = {}, []

    def arrive():
        for rid, steps, text_len in plan:
            futures[rid] = server.submit(_request(rid, text_len), _grid(steps), rid=rid)
            if rid in (3, 7):  # a malformed request between the others: refused at once, nothing queued
                for bad in ({"hidden_states": torch.zeros(1, 16, 16)},  # missing inputs
                            {**_request(0, 8), "hidden_states": torch.zeros(2, 16, 16)}):  # two rows
                    with pytest.raises(InvalidValueError) as caught:
                        server.submit(bad, _grid(3))
                    refused.append(caught.value)
                with pytest.raises(InvalidValueError, match="timesteps") as caught:
                    server.submit(_request(0, 8), [1.0, float("nan")])
                refused.append(caught.value)
            if rid == 5:  # well formed, but image ids that do not match its tokens: fails in its own batch
                broken = {**_request(99, 8), "img_ids": torch.zeros(9, 3)}
                futures["broken"] = server.submit(broken, _grid(3), rid="broken")
            time.sleep(draw.uniform(0, 0.05))
        server.cancel(2)  # wherever it is by now: waiting, running or done
        futures["gone"] = server.submit(_request(50, 8), _grid(30), rid="gone")
        server.cancel("gone")

    arrivals = threading.Thread(target=arrive)
    server.start()
    try:
        arrivals.start()
        arrivals.join()
        with pytest.raises(RequestFailedError):
            futures.pop("broken").result(timeout=120)
        with pytest.raises(CancelledError):
            futures.pop("gone").result(timeout=120)
        finished = {}
        for rid, future in futures.items():
            try:
                finished[rid] = future.result(timeout=120)
            except CancelledError:
                assert rid == 2
    finally:
        server.stop()
    assert len(refused) == 6 and len(finished) >= 11  # 2 x (missing inputs, two rows, NaN timestep)
    assert server.rows > server.calls  # requests shared batches
    assert server.pending == 0 and server.backend.session.requests.state_bytes == 0  # nothing left behind
    served_kinds = dict(server.backend.stats().last.contexts)
    for rid, steps, text_len in plan:
        if rid not in finished:
            continue
        solo = server.submit(_request(rid, text_len), _grid(steps), rid=f"solo-{rid}")
        server.run_until_idle()
        torch.testing.assert_close(finished[rid], solo.result(), rtol=1e-5, atol=1e-6)
    kinds = server.backend.stats().last.contexts
    for rid in finished:
        assert served_kinds[f"{rid}/cond"].kinds == kinds[f"solo-{rid}/cond"].kinds
    assert {"full", "cached"} <= {k for c in served_kinds.values() for k in c.kinds}


def test_over_http_on_loopback_requests_are_served_refused_and_cancelled(server):
    def body(rid: str, steps: int) -> dict:
        inputs = {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in _request(int(rid[1:]), 8).items()}
        return {"id": rid, "inputs": inputs, "timesteps": _grid(steps)}

    server.start()
    httpd = serve_http(server)
    port = httpd.server_address[1]
    try:
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda rid: post(port, "/generate", body(rid, 4)), ["h1", "h2", "h3"]))
            slow = pool.submit(post, port, "/generate", body("h4", 200))
            while not server.cancel("h4"):  # cancel it once it is queued
                time.sleep(0.01)
            assert slow.result() == (409, {"error": "Cancelled", "id": "h4"})
        assert post(port, "/generate", b"{not json")[0] == 400
        status, reply = post(port, "/generate", {"inputs": {"hidden_states": [[0.0]]}, "timesteps": [1.0]})
        assert status == 400 and reply["error"] == "InvalidValueError" and "inputs" in reply["message"]
        assert post(port, "/nowhere", {})[0] == 404
    finally:
        httpd.shutdown()
        server.stop()
    for rid, (status, reply) in zip(["h1", "h2", "h3"], replies):
        assert status == 200 and reply["id"] == rid and reply["shape"] == [1, 16, 16]
        solo = server.submit(_request(int(rid[1:]), 8), _grid(4))
        server.run_until_idle()
        torch.testing.assert_close(torch.tensor(reply["output"]), solo.result(), rtol=1e-5, atol=1e-6)
    assert server.state_bytes == 0
