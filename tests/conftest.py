"""Shared fixtures. ``tests/`` is on sys.path so test-support modules import as ``support.*``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Every test compiles from scratch: Dynamo's caches would otherwise leak graphs between tests."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
