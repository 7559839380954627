"""Real diffusers pipelines over tiny, randomly initialised transformers, for end-to-end tests.

Each :class:`PipelineCase` builds a genuine diffusers pipeline — its scheduler, its guidance code, its
``cache_context`` calls, its timestep conventions — around a transformer small enough that one forward takes
milliseconds on a CPU, so tests can run the pipeline's own ``__call__`` end to end. Nothing is downloaded:

* prompts arrive as seeded random embeddings (``prompt_embeds`` and friends), so every text encoder and
  tokenizer is ``None``;
* every call asks for ``output_type="latent"``, so nothing decodes and no VAE is built; each pipeline then
  falls back to its default compression factor (8 for most, 32 for Sana and LTX-Video), which fixes the pixel
  sizes below. DiT always decodes: it gets :class:`LatentRecorder`, a stand-in VAE that keeps its input.

The transformers are :mod:`c4d_compile.zoo.tiny_diffusers` models where one fits its pipeline, so the models
analysed on their own are the ones run here; the others get tiny configs of the same kind here. Weights
are seeded: every ``build()`` returns the same pipeline, and a case's prompt embeddings never change — the
``seed`` of a call only moves its initial noise. Text widths (``_TEXT_DIM``) and lengths must match the zoo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import diffusers
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput

from c4d_compile.zoo.tiny_diffusers import get_tiny_model

__all__ = ["GUIDANCE_KINDS", "PIPELINES", "LatentRecorder", "PipelineCase", "run"]

# How a pipeline calls its transformer per step when classifier-free guidance is on (cfg=True):
#   "none"      guidance-distilled: one call, the scale goes in as an embedding (cfg is ignored)
#   "batched"   cond and uncond concatenated into one batch of two: one call
#   "separate"  one call per branch, two per step at the same timestep (most inside cache_context "cond"/"uncond")
GUIDANCE_KINDS = ("none", "batched", "separate")

_TEXT_DIM = 32  # width of the text embeddings (the zoo's joint_attention_dim / text_dim / caption_channels)
_TEXT_LEN = 8  # tokens of every prompt
_SHORT_LEN = 5  # tokens of QwenImage's negative prompt: shorter than the positive one on purpose
_EMBED_SEED = 1234


def _first_output(pipe: Any, result: Any) -> torch.Tensor:
    """The latents of a ``return_dict=False`` call with ``output_type="latent"``."""
    return result[0]


@dataclass(frozen=True)
class PipelineCase:
    """One pipeline: how to build it and how to call it."""

    name: str
    build: Callable[[], Any]  # -> a diffusers DiffusionPipeline; seeded, the same weights every call
    # call_kwargs(steps=..., seed=..., cfg=True) -> kwargs for pipe(**kw): output_type="latent",
    # return_dict=False, a generator seeded with `seed`, the prompt embeddings (fresh copies each call).
    call_kwargs: Callable[..., dict[str, Any]]
    guidance: str  # one of GUIDANCE_KINDS
    transformers: tuple[str, ...] = ("transformer",)  # pipeline attributes holding the denoisers
    slow: bool = False  # building or a 2-step run takes more than a few seconds
    # (pipe, what pipe(**kw) returned) -> final latents. Only DiT, which always decodes, needs another one.
    output: Callable[[Any, Any], torch.Tensor] = _first_output

    def __post_init__(self) -> None:
        if self.guidance not in GUIDANCE_KINDS:
            raise ValueError(f"{self.name}: guidance {self.guidance!r} is not one of {', '.join(GUIDANCE_KINDS)}")


def run(pipe: Any, case: PipelineCase, steps: int, seed: int, cfg: bool = True) -> torch.Tensor:
    """Run the pipeline's own ``__call__`` and return its final latents as one tensor."""
    with torch.no_grad():
        result = pipe(**case.call_kwargs(steps=steps, seed=seed, cfg=cfg))
    return case.output(pipe, result)


# --------------------------------------------------------------------------------------------------
# Building blocks.


def _model(class_name: str, **config: Any) -> torch.nn.Module:
    """A diffusers model initialised under seed 0, without disturbing the caller's global RNG stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = getattr(diffusers, class_name)(**config)
    return model.eval()


def _zoo(name: str, seed: int = 0) -> torch.nn.Module:
    """A zoo model; another ``seed`` gives the same architecture with other weights (a second expert)."""
    model = get_tiny_model(name).build()
    if seed == 0:  # the zoo's own seed
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        other = type(model).from_config(model.config)
    return other.eval()


def _scheduler(class_name: str, **config: Any) -> Any:
    return getattr(diffusers, class_name)(**config)


def _pipeline(class_name: str, *no_components: str, **components: Any) -> Any:
    """Pipeline ``class_name`` over ``components``, with each name in ``no_components`` set to None."""
    pipe = getattr(diffusers, class_name)(**dict.fromkeys(no_components), **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


_NO_TEXT_OR_VAE = ("vae", "text_encoder", "tokenizer")


class _Embeds:
    """Seeded random prompt tensors, drawn in order from one generator per case."""

    def __init__(self):
        self._gen = torch.Generator().manual_seed(_EMBED_SEED)

    def __call__(self, *shape: int) -> torch.Tensor:
        return torch.randn(1, *shape, generator=self._gen)


def _ones(tokens: int = _TEXT_LEN, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """A prompt attention mask with every token valid, as a tokenizer gives for a prompt that fills them all."""
    return torch.ones(1, tokens, dtype=dtype)


_Prompt = Callable[[_Embeds], dict[str, Any]]  # draws one prompt's arguments, under their positive names


def _calls(
    prompt: _Prompt,
    scale_keys: tuple[str, ...] = ("guidance_scale",),
    scale: float = 5.0,
    negative: _Prompt | None = None,
    **fixed: Any,
) -> Callable[..., dict[str, Any]]:
    """call_kwargs for a pipeline whose prompt arguments ``prompt`` draws.

    With cfg=True, a draw of ``negative`` (default: ``prompt`` again) goes in under ``negative_``
    names and every ``scale_keys`` argument is ``scale``; with cfg=False they are 1.0 and no negative prompt
    is passed. Guidance-distilled pipelines have no ``scale_keys``: their embedded scale is a ``fixed`` one.
    """
    embeds = _Embeds()
    positive = prompt(embeds)
    negatives = {f"negative_{k}": v for k, v in (negative or prompt)(embeds).items()} if scale_keys else {}

    def call_kwargs(steps: int, seed: int = 0, cfg: bool = True) -> dict[str, Any]:
        guidance = {**negatives, **dict.fromkeys(scale_keys, scale)} if cfg else dict.fromkeys(scale_keys, 1.0)
        tensors = {k: v.clone() for k, v in {**positive, **guidance}.items() if isinstance(v, torch.Tensor)}
        return {
            **fixed,
            **positive,
            **guidance,
            **tensors,
            "num_inference_steps": steps,
            "generator": torch.Generator().manual_seed(seed),
            "output_type": "latent",
            "return_dict": False,
        }

    return call_kwargs


# What each family of pipelines takes for one prompt.


def _text(e: _Embeds) -> dict[str, torch.Tensor]:
    return {"prompt_embeds": e(_TEXT_LEN, _TEXT_DIM)}


def _text_pooled(e: _Embeds) -> dict[str, torch.Tensor]:
    return {"prompt_embeds": e(_TEXT_LEN, _TEXT_DIM), "pooled_prompt_embeds": e(_TEXT_DIM)}


def _text_masked(e: _Embeds) -> dict[str, torch.Tensor]:
    return {"prompt_embeds": e(_TEXT_LEN, _TEXT_DIM), "prompt_attention_mask": _ones()}


def _text_float_masked(e: _Embeds) -> dict[str, torch.Tensor]:
    """Chroma hands its mask to SDPA as it is, so it takes the float mask its own T5 step produces."""
    return {"prompt_embeds": e(_TEXT_LEN, _TEXT_DIM), "prompt_attention_mask": _ones(dtype=torch.float32)}


def _text_pooled_masked(e: _Embeds) -> dict[str, torch.Tensor]:
    return {**_text_pooled(e), "prompt_attention_mask": _ones()}


# --------------------------------------------------------------------------------------------------
# Flux.1: 2x2-packed latents (64 px / 8 = 8x8 latent = 16 tokens). [dev] is guidance-distilled: one call per
# step, the scale embedded. True CFG (true_cfg_scale > 1 with negative embeddings) adds a second call.

_FLUX_SCHEDULER = {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15}


def _build_flux(guidance_embeds: bool) -> Callable[[], Any]:
    def build() -> Any:
        transformer = _model(
            "FluxTransformer2DModel",
            patch_size=1,
            in_channels=16,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=_TEXT_DIM,
            pooled_projection_dim=_TEXT_DIM,
            guidance_embeds=guidance_embeds,
            axes_dims_rope=(4, 6, 6),
        )
        return _pipeline(
            "FluxPipeline",
            *_NO_TEXT_OR_VAE,
            "text_encoder_2",
            "tokenizer_2",
            scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", **_FLUX_SCHEDULER),
            transformer=transformer,
        )

    return build


# --------------------------------------------------------------------------------------------------
# Stable Diffusion 3 (MMDiT), batched CFG over 4x8x8 latents.


def _build_sd3() -> Any:
    return _pipeline(
        "StableDiffusion3Pipeline",
        *_NO_TEXT_OR_VAE,
        "text_encoder_2",
        "tokenizer_2",
        "text_encoder_3",
        "tokenizer_3",
        transformer=_zoo("sd3"),
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", shift=3.0),
    )


# --------------------------------------------------------------------------------------------------
# PixArt-Sigma and Sana: masked T5 / Gemma captions, batched CFG. Both default to negative_prompt="", which
# clashes with negative_prompt_embeds, and to resolution binning, which snaps sizes to the checkpoints'
# aspect-ratio tables (PixArt also rejects sample sizes it has no table for): the calls turn both off.

_NO_BINNING = {"use_resolution_binning": False, "negative_prompt": None}


def _build_pixart_sigma() -> Any:
    return _pipeline(
        "PixArtSigmaPipeline",
        *_NO_TEXT_OR_VAE,
        transformer=_zoo("pixart"),
        scheduler=_scheduler("DPMSolverMultistepScheduler"),
    )


def _build_sana() -> Any:
    transformer = _model(
        "SanaTransformer2DModel",
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        num_cross_attention_heads=2,
        cross_attention_head_dim=16,
        cross_attention_dim=32,
        caption_channels=_TEXT_DIM,
        sample_size=8,
        patch_size=1,
    )
    scheduler = _scheduler(
        "DPMSolverMultistepScheduler", prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    return _pipeline("SanaPipeline", *_NO_TEXT_OR_VAE, transformer=transformer, scheduler=scheduler)


# --------------------------------------------------------------------------------------------------
# Wan (5 frames -> 2 latent frames of 8x8): separate cond / uncond calls. Wan 2.2 adds a second, low-noise
# expert for timesteps below boundary_ratio * 1000 = 500, with its own guidance scale. Its schedule is left
# unshifted so that the second expert runs from 3 steps on (timesteps 999, 667, 333); shifted by 3 it would
# only get the last quarter of the sigmas.


def _build_wan(two_experts: bool) -> Callable[[], Any]:
    def build() -> Any:
        # Distinct weights: a cache shared between the experts would go unnoticed with identical ones.
        experts = {"transformer_2": _zoo("wan", seed=1), "boundary_ratio": 0.5} if two_experts else {}
        scheduler = _scheduler(
            "UniPCMultistepScheduler",
            prediction_type="flow_prediction",
            use_flow_sigmas=True,
            flow_shift=1.0 if two_experts else 3.0,
        )
        return _pipeline("WanPipeline", *_NO_TEXT_OR_VAE, scheduler=scheduler, transformer=_zoo("wan"), **experts)

    return build


# --------------------------------------------------------------------------------------------------
# HunyuanVideo: guidance-distilled (embedded scale 6), and true CFG on top with negative embeddings.


def _build_hunyuanvideo() -> Any:
    return _pipeline(
        "HunyuanVideoPipeline",
        *_NO_TEXT_OR_VAE,
        "text_encoder_2",
        "tokenizer_2",
        transformer=_zoo("hunyuanvideo"),
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", shift=7.0),
    )


# --------------------------------------------------------------------------------------------------
# LTX-Video: batched CFG over patch-size-1 video tokens. Without a VAE the pipeline assumes 32x spatial and
# 8x temporal compression: 128 px x 9 frames = 2 x 4 x 4 = 32 latent tokens.


def _build_ltxvideo() -> Any:
    return _pipeline(
        "LTXPipeline",
        *_NO_TEXT_OR_VAE,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", use_dynamic_shifting=True),
        transformer=_zoo("ltxvideo"),
    )


# --------------------------------------------------------------------------------------------------
# CogVideoX (2B): batched CFG with CogVideoX's v-prediction DDIM; the text is exactly max_text_seq_length.


def _build_cogvideox() -> Any:
    scheduler = _scheduler(
        "CogVideoXDDIMScheduler",
        beta_schedule="scaled_linear",
        beta_end=0.012,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    return _pipeline("CogVideoXPipeline", *_NO_TEXT_OR_VAE, transformer=_zoo("cogvideox"), scheduler=scheduler)


# --------------------------------------------------------------------------------------------------
# QwenImage: true CFG as separate calls. The negative prompt is shorter than the positive one (5 vs 8 tokens),
# as real prompts are, so the two branches differ in text length, masks and RoPE.


def _build_qwenimage() -> Any:
    scheduler = _scheduler(
        "FlowMatchEulerDiscreteScheduler",
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=0.9,
        base_image_seq_len=256,
        max_image_seq_len=8192,
        shift_terminal=0.02,
        time_shift_type="exponential",
    )
    return _pipeline("QwenImagePipeline", *_NO_TEXT_OR_VAE, scheduler=scheduler, transformer=_zoo("qwenimage"))


def _qwenimage_prompt(tokens: int) -> _Prompt:
    def prompt(e: _Embeds) -> dict[str, torch.Tensor]:
        return {"prompt_embeds": e(tokens, _TEXT_DIM), "prompt_embeds_mask": _ones(tokens)}

    return prompt


# --------------------------------------------------------------------------------------------------
# DiT: class labels, batched CFG against the null class 1000. DiTPipeline has no latent output type and always
# runs ``vae.decode``, so its VAE is a stand-in that keeps what it is handed.


class LatentRecorder(diffusers.ModelMixin, ConfigMixin):
    """A VAE stand-in: ``decode`` keeps the latents it receives (``latents``) and returns them as the sample.

    With ``scaling_factor`` 1 DiTPipeline hands over its final latents bit for bit (``1 / 1.0 * x``). A
    ModelMixin with a buffer, because pipelines ask every component for its device.
    """

    @register_to_config
    def __init__(self, scaling_factor: float = 1.0):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()), persistent=False)
        self.latents: torch.Tensor | None = None

    def decode(self, latents: torch.Tensor) -> DecoderOutput:
        self.latents = latents.clone()
        return DecoderOutput(sample=latents)


def _build_dit() -> Any:
    return _pipeline(
        "DiTPipeline", transformer=_zoo("dit"), vae=LatentRecorder(), scheduler=_scheduler("DDIMScheduler")
    )


def _class_label(e: _Embeds) -> dict[str, Any]:
    return {"class_labels": [7]}


def _nothing(e: _Embeds) -> dict[str, Any]:
    """DiT's unconditional branch is the null class, which the pipeline adds itself."""
    return {}


def _recorded_latents(pipe: Any, result: Any) -> torch.Tensor:
    return pipe.vae.latents


# --------------------------------------------------------------------------------------------------
# AuraFlow: MMDiT then single DiT blocks, batched CFG.


def _build_auraflow() -> Any:
    transformer = _model(
        "AuraFlowTransformer2DModel",
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_mmdit_layers=1,
        num_single_dit_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=_TEXT_DIM,
        caption_projection_dim=32,
        out_channels=4,
        pos_embed_max_size=16,
    )
    return _pipeline(
        "AuraFlowPipeline",
        *_NO_TEXT_OR_VAE,
        transformer=transformer,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler"),
    )


# --------------------------------------------------------------------------------------------------
# CogView4: separate cond / uncond calls, with original-size and crop conditioning.


def _build_cogview4() -> Any:
    transformer = _model(
        "CogView4Transformer2DModel",
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        text_embed_dim=_TEXT_DIM,
        time_embed_dim=8,
        condition_dim=4,
        sample_size=8,
        rope_axes_dim=(4, 4),
    )
    scheduler = _scheduler(
        "FlowMatchEulerDiscreteScheduler",
        base_shift=0.25,
        max_shift=0.75,
        base_image_seq_len=256,
        use_dynamic_shifting=True,
        time_shift_type="linear",
    )
    return _pipeline("CogView4Pipeline", *_NO_TEXT_OR_VAE, transformer=transformer, scheduler=scheduler)


# --------------------------------------------------------------------------------------------------
# Chroma: Flux without CLIP pooling or guidance embedding (modulations come from an approximator network);
# real CFG as separate calls.


def _build_chroma() -> Any:
    transformer = _model(
        "ChromaTransformer2DModel",
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=_TEXT_DIM,
        axes_dims_rope=(4, 6, 6),
        approximator_num_channels=8,
        approximator_hidden_dim=32,
        approximator_layers=1,
    )
    return _pipeline(
        "ChromaPipeline",
        *_NO_TEXT_OR_VAE,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", **_FLUX_SCHEDULER),
        transformer=transformer,
    )


# --------------------------------------------------------------------------------------------------
# Lumina 2: caption and noise refiners, then a single-stream stack; separate cond / uncond calls. Its
# timesteps rise from 0 (noise) to 1.


def _build_lumina2() -> Any:
    transformer = _model(
        "Lumina2Transformer2DModel",
        sample_size=8,
        patch_size=2,
        in_channels=4,
        hidden_size=32,
        num_layers=2,
        num_refiner_layers=1,
        num_attention_heads=2,
        num_kv_heads=2,
        multiple_of=16,
        axes_dim_rope=(4, 6, 6),
        axes_lens=(64, 16, 16),
        cap_feat_dim=_TEXT_DIM,
    )
    return _pipeline(
        "Lumina2Pipeline",
        *_NO_TEXT_OR_VAE,
        transformer=transformer,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", shift=6.0),
    )


# --------------------------------------------------------------------------------------------------
# Mochi: asymmetric dual-stream video blocks, batched CFG; fixed 8x spatial and 6x temporal compression
# (7 frames -> 2 latent frames).


def _build_mochi() -> Any:
    transformer = _model(
        "MochiTransformer3DModel",
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        pooled_projection_dim=16,
        in_channels=12,
        text_embed_dim=_TEXT_DIM,
        time_embed_dim=4,
        max_sequence_length=_TEXT_LEN,
    )
    return _pipeline(
        "MochiPipeline",
        *_NO_TEXT_OR_VAE,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler"),
        transformer=transformer,
    )


# --------------------------------------------------------------------------------------------------
# HiDream-I1: T5 captions, hidden states of several Llama layers and two pooled CLIP vectors (four text
# encoders, all None); MoE feed-forwards; batched CFG. The pipeline rescales every requested size to the
# area of default_sample_size latents (128: 1024 px), so the pipeline's default is lowered to 8 (64 px).

_HIDREAM_LLAMA_DIM, _HIDREAM_LLAMA_LAYERS = 16, 2


def _build_hidream() -> Any:
    transformer = _model(
        "HiDreamImageTransformer2DModel",
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_channels=[_TEXT_DIM, _HIDREAM_LLAMA_DIM],
        text_emb_dim=2 * _TEXT_DIM,
        num_routed_experts=4,
        num_activated_experts=2,
        axes_dims_rope=(4, 2, 2),
        max_resolution=(32, 32),
        llama_layers=tuple(range(_HIDREAM_LLAMA_LAYERS)),
    )
    text_components = [f"{kind}_{i}" for i in (2, 3, 4) for kind in ("text_encoder", "tokenizer")]
    pipe = _pipeline(
        "HiDreamImagePipeline",
        *_NO_TEXT_OR_VAE,
        *text_components,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", shift=3.0),
        transformer=transformer,
    )
    pipe.default_sample_size = 8
    return pipe


def _hidream_prompt(e: _Embeds) -> dict[str, torch.Tensor]:
    return {
        "prompt_embeds_t5": e(_TEXT_LEN, _TEXT_DIM),
        # (Llama layers, batch, tokens, width): the pipeline picks the transformer's llama_layers from it
        "prompt_embeds_llama3": e(_TEXT_LEN, _HIDREAM_LLAMA_DIM).expand(_HIDREAM_LLAMA_LAYERS, 1, -1, -1).clone(),
        "pooled_prompt_embeds": e(2 * _TEXT_DIM),
    }


# --------------------------------------------------------------------------------------------------
# Flux.2 [dev]: guidance-distilled, 4-axis RoPE, modulations shared across blocks; one call per step.


def _build_flux2() -> Any:
    transformer = _model(
        "Flux2Transformer2DModel",
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=_TEXT_DIM,
        timestep_guidance_channels=16,
        axes_dims_rope=(4, 4, 4, 4),
    )
    return _pipeline(
        "Flux2Pipeline",
        *_NO_TEXT_OR_VAE,
        scheduler=_scheduler("FlowMatchEulerDiscreteScheduler", **_FLUX_SCHEDULER),
        transformer=transformer,
    )


# --------------------------------------------------------------------------------------------------
# The registry. Sizes: 64 px = an 8x8 latent for the 8x pipelines.

_IMAGE = {"height": 64, "width": 64}
_VIDEO = {**_IMAGE, "num_frames": 5}
_TRUE_CFG = ("true_cfg_scale",)
_DISTILLED: tuple[str, ...] = ()

PIPELINES: dict[str, PipelineCase] = {
    case.name: case
    for case in (
        PipelineCase(
            "flux",
            _build_flux(guidance_embeds=True),
            _calls(_text_pooled, _DISTILLED, guidance_scale=3.5, **_IMAGE),
            "none",
        ),
        PipelineCase(
            "flux-true-cfg",
            _build_flux(guidance_embeds=False),
            _calls(_text_pooled, _TRUE_CFG, 4.0, **_IMAGE),
            "separate",
        ),
        PipelineCase("sd3", _build_sd3, _calls(_text_pooled, **_IMAGE), "batched"),
        PipelineCase(
            "pixart-sigma", _build_pixart_sigma, _calls(_text_masked, scale=4.5, **_IMAGE, **_NO_BINNING), "batched"
        ),
        PipelineCase("sana", _build_sana, _calls(_text_masked, height=256, width=256, **_NO_BINNING), "batched"),
        PipelineCase("wan2.1", _build_wan(two_experts=False), _calls(_text, **_VIDEO), "separate"),
        PipelineCase(
            "wan2.2",
            _build_wan(two_experts=True),
            _calls(_text, ("guidance_scale", "guidance_scale_2"), **_VIDEO),
            "separate",
            transformers=("transformer", "transformer_2"),
        ),
        PipelineCase(
            "hunyuanvideo",
            _build_hunyuanvideo,
            _calls(_text_pooled_masked, _TRUE_CFG, 4.0, guidance_scale=6.0, **_VIDEO),
            "separate",
        ),
        PipelineCase(
            "ltxvideo",
            _build_ltxvideo,
            _calls(_text_masked, scale=3.0, height=128, width=128, num_frames=9),
            "batched",
        ),
        PipelineCase("cogvideox", _build_cogvideox, _calls(_text, scale=6.0, **_VIDEO), "batched"),
        PipelineCase(
            "qwenimage",
            _build_qwenimage,
            _calls(_qwenimage_prompt(_TEXT_LEN), _TRUE_CFG, 4.0, _qwenimage_prompt(_SHORT_LEN), **_IMAGE),
            "separate",
        ),
        PipelineCase(
            "dit",
            _build_dit,
            _calls(_class_label, scale=4.0, negative=_nothing),
            "batched",
            output=_recorded_latents,
        ),
        PipelineCase("auraflow", _build_auraflow, _calls(_text_masked, scale=3.5, **_IMAGE), "batched"),
        PipelineCase("cogview4", _build_cogview4, _calls(_text, **_IMAGE), "separate"),
        PipelineCase("chroma", _build_chroma, _calls(_text_float_masked, **_IMAGE), "separate"),
        PipelineCase("lumina2", _build_lumina2, _calls(_text_masked, scale=4.0, **_IMAGE), "separate"),
        PipelineCase("mochi", _build_mochi, _calls(_text_masked, scale=4.5, **_IMAGE, num_frames=7), "batched"),
        PipelineCase("hidream", _build_hidream, _calls(_hidream_prompt, **_IMAGE), "batched"),
        PipelineCase("flux2", _build_flux2, _calls(_text, _DISTILLED, guidance_scale=4.0, **_IMAGE), "none"),
    )
}
