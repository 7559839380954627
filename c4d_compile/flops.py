"""FLOP count of a graph at its example shapes, without running real compute.

Runs the graph on fake tensors under ``FlopCounterMode`` (matmuls, attention, convolutions), so
the ideal speedup of a schedule is a ratio of counted work, not of wall time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from .opaque_calls import opaque_call_flops
from .passes.graph_utils import size_hint


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _int_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


# torch counts the CUDA attention kernels but has no formula for the CPU one, so on CPU attention
# would count as free and every ideal speedup would be off by the model's attention share.
# Nor for the int8 x int8 matmul of torchao's dynamic int8 quantization (``aten._int_mm``): its linears would
# count as free. A module called opaquely (opaque_calls) counts what it counted when it ran on zeros.
_MISSING_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
                     torch.ops.aten._int_mm: _int_mm,
                     torch.ops.c4d.opaque_call: opaque_call_flops}


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts CPU attention; every FLOP figure of the project uses it."""
    return FlopCounterMode(display=False, custom_mapping=_MISSING_FORMULAS)


def _fake(mode: FakeTensorMode, x):
    if isinstance(x, torch.Tensor):
        return mode.from_tensor(x, static_shapes=True)
    return size_hint(x) if isinstance(x, torch.SymInt) else x


def count_flops(gm: fx.GraphModule, example_inputs: Sequence) -> int:
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        fakes = [_fake(mode, x) for x in example_inputs]
    counter = flop_counter()
    with mode, counter, torch.no_grad():
        gm(*fakes)
    return int(counter.get_total_flops())


class LazyFlops:
    """The FLOP count of a variant, computed the first time someone asks (stats), not at compile time.

    The example inputs are turned into fake tensors right away, so nothing real (activations,
    zero-filled state examples) stays alive for the count.
    """

    def __init__(self, gm: fx.GraphModule, example_inputs: Sequence):
        self._gm = gm
        self._mode = FakeTensorMode(allow_non_fake_inputs=True)
        with self._mode:
            self._examples = [_fake(self._mode, x) for x in example_inputs]

    @cached_property
    def value(self) -> int:
        counter = flop_counter()
        with self._mode, counter, torch.no_grad():
            self._gm(*self._examples)
        self._examples = []
        return int(counter.get_total_flops())
