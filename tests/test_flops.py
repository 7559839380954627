import torch
import torch.fx as fx
import torch.nn.functional as F

from c4d_compile.flops import count_flops, flop_counter


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
