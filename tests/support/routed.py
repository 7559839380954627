"""A tiny DiT whose blocks graph-break: each feed-forward routes tokens to experts in a Python loop over
per-expert counts (as HiDream's mixture-of-experts does), so Dynamo splits every block there."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DIM, TOKENS, CHANNELS = 32, 16, 8


class Routed(nn.Module):
    """Two experts, one per token by argmax of a gate; dispatched by a loop over ``bincount().tolist()``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, 2)
        self.experts = nn.ModuleList([nn.Linear(dim, dim) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        choice = self.gate(flat).argmax(-1)
        order, out, start = choice.argsort(), torch.zeros_like(flat), 0
        for i, count in enumerate(torch.bincount(choice, minlength=2).tolist()):  # data-dependent: a break
            if count:
                rows = order[start:start + count]
                out[rows] = self.experts[i](flat[rows])
                start += count
        return out.reshape(x.shape)


class Labelled(nn.Module):
    """A part of a block that returns a dict (its structure passes through the opaque call)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> dict:
        keep = torch.nonzero(x[0, :, 0] > -10).flatten()  # every token, found through data: a break
        return {"out": self.proj(x[:, keep])}


class Checked(nn.Module):
    """A part of a block that refuses all-zero input: it cannot be called opaquely (its shapes are learnt on
    zeros), so the graph breaks at the call."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x == 0).all()):  # data-dependent: a break
            raise ValueError("all-zero input")
        return self.proj(x)


class Plain(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(x))


class Block(nn.Module):
    def __init__(self, dim: int, ff: type) -> None:
        super().__init__()
        self.mod = nn.Linear(dim, 2 * dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff = ff(dim)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        g1, g2 = self.mod(temb).unsqueeze(1).chunk(2, dim=-1)
        q, k, v = self.qkv(F.layer_norm(x, x.shape[-1:])).chunk(3, dim=-1)
        x = x + g1 * self.proj(F.scaled_dot_product_attention(q, k, v))
        ff = self.ff(F.layer_norm(x, x.shape[-1:]))
        return x + g2 * (ff["out"] if isinstance(ff, dict) else ff)


class RoutedDiT(nn.Module):
    def __init__(self, depth: int = 3, ff: type = Routed, break_in_forward: bool = False) -> None:
        super().__init__()
        self.embed = nn.Linear(CHANNELS, DIM)
        self.time = nn.Linear(DIM, DIM)
        self.blocks = nn.ModuleList([Block(DIM, ff) for _ in range(depth)])
        self.out = nn.Linear(DIM, CHANNELS)
        self.break_in_forward = break_in_forward

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        half = DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        angles = timestep.float()[:, None] * freqs[None]
        temb = self.time(torch.cat([angles.sin(), angles.cos()], dim=-1))
        h = self.embed(x)
        for i, block in enumerate(self.blocks):
            if self.break_in_forward and i == 1:  # a break in the model's own loop, between two blocks
                h = h * float(len(torch.nonzero(timestep >= 0).flatten().tolist()))
            h = block(h, temb)
        return self.out(h)


def build(seed: int = 0, **kwargs) -> RoutedDiT:
    torch.manual_seed(seed)
    return RoutedDiT(**kwargs).eval()


def denoise(call, steps: int = 6, seed: int = 1, backend=None) -> list[torch.Tensor]:
    """A plain loop: each prediction moves the latent; returns every prediction. Given a backend, the loop
    tells it the generation's timesteps, as ``enable_cache`` does for a pipeline."""
    x = torch.randn(1, TOKENS, CHANNELS, generator=torch.Generator().manual_seed(seed))
    timesteps = torch.linspace(999, 0, steps)
    if backend is not None:
        backend.begin_generation(timesteps)
    outs = []
    with torch.no_grad():
        for t in timesteps:
            out = call(x, t.reshape(1))
            outs.append(out)
            x = x - 0.1 * out
    return outs
