"""A three-block residual model small enough to read its graph: the plan, analysis and rewrite tests' subject."""

from __future__ import annotations

import torch


class Block(torch.nn.Module):
    def __init__(self, dim=8):
        super().__init__()
        self.f1, self.f2 = torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)

    mix_tokens = False

    def forward(self, s, temb):
        h = self.f1(s)
        if self.mix_tokens:
            h = h + h.mean(dim=1, keepdim=True)
        return s + temb[:, None] * self.f2(torch.relu(h))


class Model(torch.nn.Module):
    """Three blocks, called one by one (Dynamo resumes after a break in straight-line code, not inside a loop);
    ``mix_tokens``: each block also adds the mean over the tokens, so no branch is token-local."""

    def __init__(self, break_after_block: bool = False, break_after_embedding: bool = False, mix_tokens=False):
        super().__init__()
        self.embed, self.t, self.out = torch.nn.Linear(4, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 4)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(3)])
        self.break_after_block, self.break_after_embedding = break_after_block, break_after_embedding
        if mix_tokens:
            for block in self.blocks:
                block.mix_tokens = True

    def forward(self, x, timestep):
        temb = self.t(torch.sin(timestep[:, None] * torch.arange(8.0)))
        s = self.embed(x)
        if self.break_after_embedding:
            torch._dynamo.graph_break()  # a prologue graph, then the stack in a graph without the timestep
        s = self.blocks[0](s, temb)
        if self.break_after_block:
            torch._dynamo.graph_break()  # what a data-dependent op between blocks does
        s = self.blocks[1](s, temb)
        s = self.blocks[2](s, temb)
        return self.out(s)


def example_inputs(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(2, 5, 4, generator=gen), "timestep": torch.rand(2, generator=gen)}
