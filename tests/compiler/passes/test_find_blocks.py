"""find_blocks on small traced models: the blocks of a ModuleList found by their module paths, the epilogue's
reuse of a block's submodule left out as glue, a list without matrix products ignored."""

from __future__ import annotations

import torch
from support.three_blocks import Model, example_inputs

from c4d_compile.compiler.passes.find_blocks import find_blocks, top_list_item
from c4d_compile.inspect_model import trace_graphs


def test_a_module_path_names_its_outermost_list_item():
    assert top_list_item("blocks.3.attn.to_q") == ("blocks", 3)
    assert top_list_item("transformer.blocks.0.blocks.5") == ("transformer.blocks", 0)
    assert top_list_item("proj_out") is None


def test_the_three_blocks_are_found_in_graph_order_each_a_contiguous_span():
    (gm,) = trace_graphs(Model(), example_inputs())
    stack = find_blocks(gm)
    assert [b.name for b in stack.blocks] == ["blocks.0", "blocks.1", "blocks.2"] and stack.lists == ("blocks",)
    assert all(a.end < b.start for a, b in zip(stack.blocks, stack.blocks[1:]))
    assert all(b.matmuls == 2 for b in stack.blocks) and not stack.problems and not stack.split


class ReusesBlock0(Model):
    """The epilogue calls block 0's first linear again, as DiT's epilogue reuses block 0's embedding."""

    def forward(self, x, timestep):
        return super().forward(x, timestep) + self.blocks[0].f1(self.embed(x))[..., :4]


def test_a_block_submodule_called_again_after_the_stack_is_glue_not_a_block():
    (gm,) = trace_graphs(ReusesBlock0(), example_inputs())
    stack = find_blocks(gm)
    assert [b.name for b in stack.blocks] == ["blocks.0", "blocks.1", "blocks.2"]
    nodes = list(gm.graph.nodes)
    assert stack.blocks[0].end < stack.blocks[1].start  # block 0 is its run in the stack, not the later call
    assert any("blocks.0" in str(n.meta.get("nn_module_stack", "")) for n in nodes[stack.blocks[2].end + 1:])


class NormsOnly(torch.nn.Module):
    """A list of layer norms: no matrix product, so not blocks a cache could skip."""

    def __init__(self):
        super().__init__()
        self.norms = torch.nn.ModuleList([torch.nn.LayerNorm(4) for _ in range(3)])

    def forward(self, x, timestep):
        for norm in self.norms:
            x = norm(x) * timestep[:, None, None]
        return x


def test_a_list_without_matrix_products_is_no_block_stack():
    (gm,) = trace_graphs(NormsOnly(), example_inputs())
    stack = find_blocks(gm)
    assert stack.blocks == () and stack.span is None and not stack.problems
