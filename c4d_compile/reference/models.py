"""Two class-conditional rectified-flow models built from diffusers transformers.

Rectified flow: ``x_t = (1 - t) * x0 + t * noise`` for t in [0, 1], and the model predicts the
velocity ``v = noise - x0`` (so ``dx_t/dt = v``; sampling integrates from t=1, pure noise, to t=0).

Each wrapper keeps the diffusers transformer as ``.transformer``, untouched, because the caching
backend compiles that module itself. Everything the wrapper adds lives around it:

    kwargs = model.transformer_inputs(x, t, labels)   # what a pipeline would pass
    v = model.output_to_v(model.transformer(**kwargs))

and ``model(x, t, labels)`` is exactly that composition.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .data import IMAGE_SIZE, NUM_CLASSES

__all__ = ["DEFAULT_CONFIGS", "DiTReference", "FluxReference", "ReferenceModel", "build_reference_model"]

# Sizes picked so that training reaches >= 90 % classifier-judged class accuracy within ~15 CPU minutes
# on one thread. The "transformer" entry goes verbatim to the diffusers constructor.
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "dit": {
        "transformer": {
            "num_attention_heads": 2,
            "attention_head_dim": 32,
            "in_channels": 1,
            # out_channels=1: the output *is* v. DiT checkpoints default to 2x channels (a learned sigma for
            # DDPM's variance); rectified flow has no variance to learn, so those channels would be dead weight.
            "out_channels": 1,
            "num_layers": 4,
            "sample_size": IMAGE_SIZE,
            "patch_size": 2,  # 8x8 = 64 tokens
            "num_embeds_ada_norm": NUM_CLASSES,  # DiT uses this as the number of classes of its label embedding
        },
    },
    "flux": {
        "transformer": {
            "patch_size": 1,
            "in_channels": 4,  # 2x2-packed 1-channel latent
            "num_layers": 2,
            "num_single_layers": 2,
            "attention_head_dim": 32,
            "num_attention_heads": 2,
            "joint_attention_dim": 32,
            "pooled_projection_dim": 32,
            "guidance_embeds": False,
            "axes_dims_rope": [8, 12, 12],  # sums to attention_head_dim; row and column get most, like Flux
        },
        "text_tokens": 4,  # length of the learned per-class "prompt"
    },
}


class ReferenceModel(nn.Module):
    """``forward(x, t, labels) -> v`` over a diffusers ``transformer``; x (B, 1, 16, 16), t (B,) in [0, 1]."""

    name: str
    transformer: nn.Module
    timestep_scale: float  # multiplier from the ``timestep`` kwarg to the 0..1000 training-step scale

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def output_to_v(self, out: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.output_to_v(self.transformer(**self.transformer_inputs(x, t, labels)))


def _first(out: Any) -> torch.Tensor:
    # The kwargs ask for return_dict=False, but a replacement callable may still hand back an output object.
    if isinstance(out, (tuple, list)):
        return out[0]
    return getattr(out, "sample", out)


class DiTReference(ReferenceModel):
    """DiTTransformer2DModel; the class goes through DiT's own adaLN-zero label embedding."""

    name = "dit"
    timestep_scale = 1.0  # fed t * 1000 already

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        from diffusers import DiTTransformer2DModel
        from diffusers.models.embeddings import LabelEmbedding

        self.config = copy.deepcopy(config)
        self.transformer = DiTTransformer2DModel(**self.config["transformer"])
        # diffusers drops labels (10 %, for classifier-free guidance) independently in *each* block's
        # embedding and again for the output layer, so one sample would be conditional in some blocks and
        # not in others. We train conditional only, so switch the dropping off; the unused null-class row
        # stays in the table (its shape is fixed by the config).
        for module in self.transformer.modules():
            if isinstance(module, LabelEmbedding):
                module.dropout_prob = 0.0

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        # DiT's sinusoidal timestep embedding was designed for DDPM's 0..1000 integer steps: feed t * 1000
        # so that the frequencies cover the range they were built for (a float, not rounded).
        return {"hidden_states": x, "timestep": t * 1000.0, "class_labels": labels, "return_dict": False}

    def output_to_v(self, out: Any) -> torch.Tensor:
        return _first(out)


class FluxReference(ReferenceModel):
    """FluxTransformer2DModel; the class is a learned L-token "prompt" plus a learned pooled vector."""

    name = "flux"
    timestep_scale = 1000.0  # fed t in [0, 1]; Flux scales it inside

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        from diffusers import FluxTransformer2DModel

        self.config = copy.deepcopy(config)
        tcfg = self.config["transformer"]
        self.transformer = FluxTransformer2DModel(**{**tcfg, "axes_dims_rope": tuple(tcfg["axes_dims_rope"])})
        self.text_tokens = int(self.config["text_tokens"])
        self.text_dim = int(tcfg["joint_attention_dim"])
        # Stand-ins for the text encoders: a class id maps to a token sequence (T5's role) and a vector (CLIP's).
        self.class_tokens = nn.Embedding(NUM_CLASSES, self.text_tokens * self.text_dim)
        self.class_pooled = nn.Embedding(NUM_CLASSES, int(tcfg["pooled_projection_dim"]))
        grid = IMAGE_SIZE // 2
        # As FluxPipeline builds them: (0, row, col) per packed image token, zeros for the text tokens.
        # Not persistent: they are a function of the config, not learned.
        img_ids = torch.zeros(grid, grid, 3)
        img_ids[..., 1] = torch.arange(grid)[:, None]
        img_ids[..., 2] = torch.arange(grid)[None, :]
        self.register_buffer("img_ids", img_ids.reshape(grid * grid, 3), persistent=False)
        self.register_buffer("txt_ids", torch.zeros(self.text_tokens, 3), persistent=False)

    @staticmethod
    def pack(x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H/2 * W/2, C * 4): each 2x2 patch becomes one token, as FluxPipeline packs."""
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // 2) * (w // 2), c * 4)

    @staticmethod
    def unpack(tokens: torch.Tensor, height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> torch.Tensor:
        """Inverse of ``pack``."""
        b, _, d = tokens.shape
        c = d // 4
        x = tokens.reshape(b, height // 2, width // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, c, height, width)

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        text = self.class_tokens(labels).reshape(labels.shape[0], self.text_tokens, self.text_dim)
        return {
            "hidden_states": self.pack(x),
            "encoder_hidden_states": text,
            "pooled_projections": self.class_pooled(labels),
            "timestep": t,  # Flux multiplies by 1000 itself
            "img_ids": self.img_ids,
            "txt_ids": self.txt_ids,
            "return_dict": False,
        }

    def output_to_v(self, out: Any) -> torch.Tensor:
        return self.unpack(_first(out))


_CLASSES: dict[str, type[ReferenceModel]] = {"dit": DiTReference, "flux": FluxReference}


def build_reference_model(name: str, config: dict[str, Any] | None = None, seed: int = 0) -> ReferenceModel:
    """A freshly initialised (seeded) model; ``config`` defaults to DEFAULT_CONFIGS[name]."""
    from .registry import check_model_name

    check_model_name(name)
    # fork_rng: seed the init without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _CLASSES[name](config if config is not None else DEFAULT_CONFIGS[name])
