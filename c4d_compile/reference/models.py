"""Three class-conditional reference models built from diffusers transformers.

"dit" and "flux" are rectified-flow models: ``x_t = (1 - t) * x0 + t * noise`` for t in [0, 1], and the
model predicts the velocity ``v = noise - x0`` (so ``dx_t/dt = v``; sampling integrates from t=1, pure
noise, to t=0). "dit-eps" is DiT as DiT-XL/2 was trained (arXiv 2212.09748): DDPM noise prediction on
discrete steps 0..999 with a learned variance, sampled with DDIM (see ``ddpm`` and ``sampling``).

Each wrapper keeps the diffusers transformer as ``.transformer``, untouched, because the caching
backend compiles that module itself. Everything the wrapper adds lives around it:

    kwargs = model.transformer_inputs(x, t, labels)   # what a pipeline would pass
    prediction = model.output_to_prediction(model.transformer(**kwargs))   # v, or ε for "dit-eps"

and ``model(x, t, labels)`` is exactly that composition. ``model.prediction`` says which of the two it is,
and so which sampler applies.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .data import IMAGE_SIZE, NUM_CLASSES
from .ddpm import DDPMSchedule

__all__ = [
    "DEFAULT_CONFIGS",
    "DiTEpsReference",
    "DiTReference",
    "FluxReference",
    "ReferenceModel",
    "build_reference_model",
]

_DIT_TRANSFORMER: dict[str, Any] = {
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
}

# Sizes picked so that training reaches >= 90 % classifier-judged class accuracy within ~15 CPU minutes
# on one thread. The "transformer" entry goes verbatim to the diffusers constructor, "scheduler" to
# diffusers' DDIMScheduler (the pair a DiTPipeline holds).
DEFAULT_CONFIGS: dict[str, dict[str, Any]] = {
    "dit": {"transformer": _DIT_TRANSFORMER},
    "dit-eps": {
        # The same network with DiT-XL/2's learn_sigma layout: channel 0 is ε, channel 1 the variance value v.
        "transformer": {**_DIT_TRANSFORMER, "out_channels": 2},
        "scheduler": {
            # DiT's training schedule (arXiv 2212.09748, Sec. 4): 1000 linear betas from 1e-4 to 0.02.
            "num_train_timesteps": 1000,
            "beta_start": 1e-4,
            "beta_end": 0.02,
            "beta_schedule": "linear",
            "prediction_type": "epsilon",
            # The rest are DDIMScheduler's defaults, spelled out so that the shipped JSON records them.
            # clip_sample: the model works in pixel space, where data lies in [-1, 1], so clamping DDIM's
            # x0 estimate to that range is a sound prior (latent-space checkpoints turn it off). For this
            # model it costs a little at many steps (50 steps, 100 images: accuracy 0.88 and FD 242 with it,
            # 0.89 and 207 without), but it is what DDIMScheduler does unless told otherwise.
            "clip_sample": True,
            "clip_sample_range": 1.0,
            # The last step lands on ᾱ = 1, i.e. on clean data, rather than on ᾱ_0 = 1 - 1e-4.
            "set_alpha_to_one": True,
            # "leading": N steps at (N-1)k, ..., k, 0 with k = 1000 // N (980 ... 0 at 50 steps). The first
            # step starts from pure noise at t = 1000 - k, where sqrt(ᾱ_t) is below 0.02 (0.016 at 10 steps),
            # a small mismatch diffusers' default accepts.
            "timestep_spacing": "leading",
            "steps_offset": 0,
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
    """``forward(x, t, labels) -> prediction`` over a diffusers ``transformer``; x (B, 1, 16, 16).

    ``prediction`` names what comes out and so which sampler integrates it: ``"velocity"`` (rectified
    flow, t (B,) in [0, 1], Euler) or ``"epsilon"`` (DDPM noise, t (B,) a step in 0..999, DDIM).
    """

    name: str
    prediction: str
    transformer: nn.Module
    timestep_scale: float  # multiplier from the ``timestep`` kwarg to the 0..1000 training-step scale

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        raise NotImplementedError

    def output_to_prediction(self, out: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.output_to_prediction(self.transformer(**self.transformer_inputs(x, t, labels)))


def _first(out: Any) -> torch.Tensor:
    # The kwargs ask for return_dict=False, but a replacement callable may still hand back an output object.
    if isinstance(out, (tuple, list)):
        return out[0]
    return getattr(out, "sample", out)


def _dit_transformer(config: dict[str, Any]) -> nn.Module:
    """DiTTransformer2DModel(**config) that always uses the class label it is given."""
    from diffusers import DiTTransformer2DModel
    from diffusers.models.embeddings import LabelEmbedding

    transformer = DiTTransformer2DModel(**config)
    # diffusers drops labels (10 %, for classifier-free guidance) independently in *each* block's
    # embedding and again for the output layer, so one sample would be conditional in some blocks and
    # not in others. We train conditional only, so switch the dropping off; the unused null-class row
    # stays in the table (its shape is fixed by the config).
    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0
    return transformer


class DiTReference(ReferenceModel):
    """DiTTransformer2DModel predicting the flow velocity; the class goes through DiT's adaLN-zero label embedding."""

    name = "dit"
    prediction = "velocity"
    timestep_scale = 1.0  # fed t * 1000 already

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.transformer = _dit_transformer(self.config["transformer"])

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        # DiT's sinusoidal timestep embedding was designed for DDPM's 0..1000 integer steps: feed t * 1000
        # so that the frequencies cover the range they were built for (a float, not rounded).
        return {"hidden_states": x, "timestep": t * 1000.0, "class_labels": labels, "return_dict": False}

    def output_to_prediction(self, out: Any) -> torch.Tensor:
        return _first(out)


class DiTEpsReference(ReferenceModel):
    """DiTTransformer2DModel as DiT-XL/2 is trained: ε and a learned variance, on DDPM steps.

    The output has 2 x in_channels channels, split as DiTPipeline splits a learn_sigma model: the first
    half is ε, the second the value v that sets the reverse-step variance (``ddpm.DDPMSchedule``). v is
    trained as DiT trains it (its gradient reaches the shared trunk too), and then, as in DiTPipeline with
    DDIM, left unused: deterministic DDIM needs only ε.
    """

    name = "dit-eps"
    prediction = "epsilon"
    timestep_scale = 1.0  # fed the DDPM step 0..999 itself

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = copy.deepcopy(config)
        tcfg = self.config["transformer"]
        if tcfg["out_channels"] != 2 * tcfg["in_channels"]:
            raise ConfigError(f"dit-eps needs out_channels = 2 * in_channels (ε and v), got {tcfg['out_channels']}")
        self.latent_channels = int(tcfg["in_channels"])
        self.transformer = _dit_transformer(tcfg)
        # The training-side constants of the schedule the scheduler samples with (plain tensors, not state).
        self.schedule = DDPMSchedule.from_scheduler_config(self.config["scheduler"])

    def transformer_inputs(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        # t is passed through as DiTPipeline passes the scheduler's timestep: the (integer) step itself.
        return {"hidden_states": x, "timestep": t, "class_labels": labels, "return_dict": False}

    def split_output(self, out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε, v), each (B, in_channels, H, W)."""
        eps, v = torch.split(_first(out), self.latent_channels, dim=1)
        return eps, v

    def output_to_prediction(self, out: Any) -> torch.Tensor:
        return self.split_output(out)[0]

    def make_scheduler(self) -> Any:
        """A fresh diffusers DDIMScheduler with the training schedule (fresh: ``set_timesteps`` mutates it)."""
        from diffusers import DDIMScheduler

        return DDIMScheduler(**self.config["scheduler"])


class FluxReference(ReferenceModel):
    """FluxTransformer2DModel; the class is a learned L-token "prompt" plus a learned pooled vector."""

    name = "flux"
    prediction = "velocity"
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

    def output_to_prediction(self, out: Any) -> torch.Tensor:
        return self.unpack(_first(out))


_CLASSES: dict[str, type[ReferenceModel]] = {"dit": DiTReference, "dit-eps": DiTEpsReference, "flux": FluxReference}
# Appended in the order they were added, so loops over the tuple keep their earlier rows first.
REFERENCE_MODELS = ("dit", "flux", "dit-eps")


class UnknownReferenceModelError(ConfigError, KeyError):
    """A reference-model name that is not in REFERENCE_MODELS."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError.__str__ would quote the message


def check_model_name(name: str) -> None:
    if name not in REFERENCE_MODELS:
        valid = ", ".join(REFERENCE_MODELS)
        raise UnknownReferenceModelError(f"unknown reference model {name!r}; valid names: {valid}")


def build_reference_model(name: str, config: dict[str, Any] | None = None, seed: int = 0) -> ReferenceModel:
    """A freshly initialised (seeded) model; ``config`` defaults to DEFAULT_CONFIGS[name]."""
    check_model_name(name)
    # fork_rng: seed the init without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _CLASSES[name](config if config is not None else DEFAULT_CONFIGS[name])
