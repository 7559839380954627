"""Factories for ``c4d inspect module:factory`` in tests."""

import torch


class PlainMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))

    def forward(self, x, timestep):
        return self.net(x) * torch.sin(timestep)[:, None]


def plain_mlp():
    return PlainMLP(), {"x": torch.randn(2, 8), "timestep": torch.rand(2)}
