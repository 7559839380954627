"""Peer adapters: each runs on a reference model, starts every generation fresh, and saves compute."""

import pytest
import torch

from c4d_compile.bench.peers import PEERS
from c4d_compile.bench.peers.common import preset_mask, reachable_tensor_bytes
from c4d_compile.bench.workloads import load_workload
from c4d_compile.policies import get_policy

STEPS = 12


def test_preset_mask_is_the_presets_schedule():
    mask = preset_mask("taylorseer", 20, schedule="paper")  # warm-up 3, interval 6
    assert [i for i, m in enumerate(mask) if m] == [0, 1, 2, 8, 14]
    assert sum(preset_mask("foca", 50)) == len(get_policy("foca").schedule.planned(50))
    assert [i for i, m in enumerate(preset_mask("taylorseer", 12, budget=4)) if m] == [0, 4, 7, 11]


def test_reachable_tensor_bytes_counts_each_storage_once_and_skips_modules():
    a = torch.zeros(10)  # 40 bytes
    state = {"a": a, "view": a[2:], "nested": [(torch.zeros(2, dtype=torch.float64),)], "model": torch.nn.Linear(8, 8)}
    assert reachable_tensor_bytes(state) == 40 + 16
    assert reachable_tensor_bytes(None, [], {}) == 0


@pytest.fixture(scope="module")
def dit():
    workload = load_workload("dit", per_class=1)
    with torch.no_grad():
        reference = workload.run(workload.transformer, STEPS)
    return workload, reference


# The block-level peers that cache on this model at STEPS steps (PAB/FasterCache only act inside their
# timestep windows; FBCache/MagCache decide by thresholds) plus one of each library.
@pytest.mark.parametrize("name", ["diffusers-taylorseer", "diffusers-magcache", "cache-dit-taylorseer"])
def test_peer_runs_fresh_each_generation_and_saves_compute(dit, name):
    workload, reference = dit
    prepared = PEERS[name].prepare(workload, "eager", STEPS)
    try:
        outputs = []
        for _ in range(2):
            prepared.begin()
            outputs.append(workload.run(prepared.call, STEPS))
        assert torch.equal(outputs[0], outputs[1])  # begin() reset the cache state
        assert not torch.equal(outputs[0], reference)  # something was actually cached
        assert workload.score(outputs[0], reference).psnr_mean > 25
        assert prepared.cache_bytes() > 0
    finally:
        prepared.close()
    with torch.no_grad():  # close() restored the uncached model on the private copy; the shared one is untouched
        assert torch.equal(workload.run(workload.transformer, STEPS), reference)
