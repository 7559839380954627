"""Shared fixtures. ``tests/`` is on sys.path so test-support modules import as ``support.*``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (pyproject's addopts): one worker per core, at most 4 — each worker holds its own torch,
    diffusers and compiled graphs in memory."""
    return max(1, min(4, os.cpu_count() or 1))


def pytest_configure(config):
    """Under pytest-xdist, the cores are shared among the workers: each worker's torch takes its share of the
    intra-op threads instead of all of them (tiny models gain nothing from more, and oversubscribed OpenMP
    workers spin)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


def pytest_collection_modifyitems(items):
    """A compatibility cell's marker travels with its reports (as a user property, which pytest-xdist carries to
    the controller), where ``examples/compatibility_check.py`` collects it."""
    for item in items:
        marker = item.get_closest_marker("compat")
        if marker is not None:
            stack, feature, case = marker.args
            item.user_properties.append(("compat", {"stack": stack, "feature": feature, "case": case,
                                                    "refused": marker.kwargs.get("refused")}))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Every test compiles from scratch: Dynamo's caches would otherwise leak graphs between tests."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and spinning OpenMP workers make forwards much slower
    when the CPU is shared with another process. Modules opt in with ``pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
