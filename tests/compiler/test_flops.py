import torch
import torch.fx as fx
import torch.nn.functional as F

from c4d_compile.compiler.flops import count_flops, flop_counter


def test_cpu_attention_is_counted():
    # q @ k^T and attn @ v: 2 * (2 * B * H * L * L * D) multiply-adds as FLOPs
    q = torch.randn(2, 4, 64, 16)
    with flop_counter() as counter:
        F.scaled_dot_product_attention(q, q, q)
    assert counter.get_total_flops() == 2 * 2 * 2 * 4 * 64 * 64 * 16


def test_count_flops_of_a_graph_with_a_matmul_and_attention():
    def f(x, w):
        h = x @ w
        return F.scaled_dot_product_attention(h, h, h)

    gm = fx.symbolic_trace(f)
    x, w = torch.randn(1, 2, 8, 4), torch.randn(4, 4)
    matmul = 2 * 1 * 2 * 8 * 4 * 4
    attention = 2 * 2 * 1 * 2 * 8 * 8 * 4
    assert count_flops(gm, [x, w]) == matmul + attention


def test_a_float_input_read_with_item_is_counted():
    """A Python float Dynamo turned into an input (a ControlNet's conditioning scale, a LoRA scale after it changed)
    is a 0-d tensor the graph reads with ``.item()``; fake tensors have no value to read, so it keeps its own."""
    from c4d_compile.compiler.flops import LazyFlops

    def f(x, w, scale):
        return (x @ w) * scale.item()

    gm = fx.symbolic_trace(f)
    x, w, scale = torch.randn(8, 4), torch.randn(4, 4), torch.tensor(0.5)
    assert count_flops(gm, [x, w, scale]) == 2 * 8 * 4 * 4
    assert LazyFlops(gm, [x, w, scale]).value == 2 * 8 * 4 * 4


def test_flash_attention_3_of_diffusers_attention_dispatcher_is_counted():
    """diffusers' "_flash_3" backend wraps FlashAttention 3 in a custom op (CUDA only); its fake runs here. Its
    tensors are (batch, tokens, heads, head dim)."""
    import pytest

    pytest.importorskip("diffusers")
    import diffusers.models.attention_dispatch  # noqa: F401  (registers the op)

    def f(q, k, v):
        return torch.ops._diffusers_flash_attn_3._flash_attn_forward(q, k, v)[0]

    gm = fx.symbolic_trace(f)
    q, k = torch.randn(1, 16, 2, 8), torch.randn(1, 12, 2, 8)
    assert count_flops(gm, [q, k, k]) == 2 * 2 * 1 * 2 * 16 * 12 * 8


def test_an_attention_kernel_without_a_formula_is_said():
    """A custom-op attention kernel (flash-attn, xformers, one's own) counts as free in torch's FLOP counter: the
    ideal speedup would be too high without a word."""
    import warnings

    from c4d_compile import C4DWarning
    from c4d_compile.compiler.flops import LazyFlops, uncounted_attention

    @torch.library.custom_op("c4d_test::my_attention", mutates_args=())
    def my_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)

    @my_attention.register_fake
    def _(q, k, v):
        return torch.empty_like(q)

    def f(q, w):
        h = q @ w
        return torch.ops.c4d_test.my_attention(h, h, h) + F.scaled_dot_product_attention(h, h, h)

    gm = fx.symbolic_trace(f)
    assert uncounted_attention(gm) == ["c4d_test::my_attention"]  # SDPA has a formula
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flops = LazyFlops(gm, [torch.randn(1, 2, 8, 4), torch.randn(4, 4)]).value
    assert flops == 2 * 1 * 2 * 8 * 4 * 4 + 2 * 2 * 1 * 2 * 8 * 8 * 4  # the matmul and SDPA, not the custom op
    (warned,) = [str(w.message) for w in caught if issubclass(w.category, C4DWarning)]
    assert "c4d_test::my_attention" in warned


def test_flex_attention_is_counted_as_the_dense_attention_it_computes():
    """torch's FLOP counter cannot run the flex HOP eagerly (diffusers' "flex" attention backend puts it in the
    graph); it is counted as dense attention, as SDPA on the same tensors."""
    from torch.nn.attention.flex_attention import flex_attention

    graphs = []

    def capture(gm, example_inputs):
        graphs.append((gm, list(example_inputs)))
        return gm.forward

    torch._dynamo.reset()
    q = torch.randn(1, 2, 16, 8)
    torch.compile(lambda q: flex_attention(q, q, q), backend=capture, fullgraph=True)(q)
    (gm, examples), = graphs
    assert count_flops(gm, examples) == 2 * 2 * 1 * 2 * 16 * 16 * 8
