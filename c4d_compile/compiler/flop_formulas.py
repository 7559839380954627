"""The FLOP formulas every count of the project uses, beyond torch's own, and the counter that applies them.

torch's ``FlopCounterMode`` counts matmuls, convolutions and the CUDA attention kernels; the formulas here add
what it lacks (CPU attention, int8 matmuls, library attention kernels) and what an op of this package
registers for itself (``register_formula``: a module called opaquely counts what it counted on zeros).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _int_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _attention_bshd(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """Attention kernels that take (batch, tokens, heads, head dim), as flash-attention's do."""
    def heads_first(shape):
        return (shape[0], shape[2], shape[1], shape[3])

    return sdpa_flop_count(heads_first(query_shape), heads_first(key_shape), heads_first(value_shape))


# torch counts the CUDA attention kernels but has no formula for the CPU one, so on CPU attention
# would count as free and every ideal speedup would be off by the model's attention share.
# Nor for the int8 x int8 matmul of torchao's dynamic int8 quantization (``aten._int_mm``): its linears would
# count as free. A module called opaquely (opaque_calls) registers its op's formula: what it counted on zeros.
_MISSING_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
                     torch.ops.aten._int_mm: _int_mm}
# custom-op attention kernels of libraries that may not be loaded (namespace, op, formula): diffusers' "_flash_3"
# attention backend wraps FlashAttention 3 in a custom op, registered when diffusers' attention dispatcher is imported
_LIBRARY_FORMULAS = (("_diffusers_flash_attn_3", "_flash_attn_forward", _attention_bshd),)


def formulas() -> dict:
    found = dict(_MISSING_FORMULAS)
    for namespace, name, formula in _LIBRARY_FORMULAS:
        try:
            found[getattr(getattr(torch.ops, namespace), name)] = formula
        except (AttributeError, RuntimeError):  # the library is not loaded
            pass
    return found


def register_formula(op, formula: Callable) -> None:
    """Count ``op`` with ``formula`` (FlopCounterMode's signature: the input shapes, then ``out_shape=``)."""
    _MISSING_FORMULAS[op] = formula


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts CPU attention; every FLOP figure of the project uses it."""
    return FlopCounterMode(display=False, custom_mapping=formulas())
