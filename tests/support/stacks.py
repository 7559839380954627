"""The stacks users run around a transformer, each on the tiny Flux pipeline, for the compatibility table.

A :class:`Stack` builds the pipeline with the stack turned on and runs it to its final latents; where the stack
is a change of the transformer itself (adapters, quantized weights, an attention backend), ``on_model`` applies it
to a bare zoo transformer too, for the ONNX export and context-parallel cells, which work on the model alone. The
builders here are the ones the per-stack test modules use, so the table and those tests exercise the same stacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from . import controlnet, image_to_image
from .pipelines import PIPELINES, run

FLUX = PIPELINES["flux"]
# the attention projections of both block kinds, the double blocks' MLP out, the single blocks' MLP in and out
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.2", "proj_mlp", "proj_out"]
RESOLUTIONS = ({"height": 64, "width": 64}, {"height": 96, "width": 64})


def add_adapters(transformer: torch.nn.Module, names: tuple[str, ...] = ("a", "b")) -> torch.nn.Module:
    """Rank-4 PEFT adapters with seeded weights (PEFT would draw lora_A from the global RNG and zero lora_B)."""
    from peft import LoraConfig

    for i, name in enumerate(names):
        with warnings.catch_warnings():  # a second adapter: "Already found a `peft_config` attribute"
            warnings.simplefilter("ignore", UserWarning)
            transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGETS), adapter_name=name)
        gen = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for key, p in transformer.named_parameters():
                if "lora_" in key and f".{name}." in key:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return transformer


def with_adapter(transformer: torch.nn.Module) -> torch.nn.Module:
    add_adapters(transformer)
    transformer.set_adapters("a")
    return transformer


def int8_weights(transformer: torch.nn.Module) -> torch.nn.Module:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(transformer, Int8WeightOnlyConfig())
    return transformer


def flex_attention(transformer: torch.nn.Module) -> torch.nn.Module:
    """diffusers' ``flex`` backend (torch's flex attention). ``set_attention_backend`` also makes it the process's
    default for models that set none: callers restore it (``restore_attention_backend``)."""
    transformer.set_attention_backend("flex")
    return transformer


def restore_attention_backend() -> Callable[[], None]:
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    return lambda: _AttentionBackendRegistry.set_active_backend(active)


@dataclass(frozen=True)
class Stack:
    label: str  # the row of the table
    build: Callable[[], Any]  # -> the pipeline with the stack on (seeded: the same weights every call)
    run: Callable[[Any, int], torch.Tensor]  # (pipe, steps) -> the final latents of everything one use runs
    on_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None  # the stack on a bare transformer
    # the denoisers enable_cache compiles: a pipeline with a ControlNet caches it too
    modules: tuple[str, ...] = ("transformer",)


def _flux_with(change: Callable[[torch.nn.Module], Any]) -> Callable[[], Any]:
    def build():
        pipe = FLUX.build()
        change(pipe.transformer)
        return pipe
    return build


def _flux_run(pipe, steps: int) -> torch.Tensor:
    return run(pipe, FLUX, steps=steps, seed=0)


def _resolutions_run(pipe, steps: int) -> torch.Tensor:
    """Two generations at two sizes (the second compiles a dynamic-shape graph), flattened end to end."""
    outs = []
    with torch.no_grad():
        for size in RESOLUTIONS:
            outs.append(pipe(**{**FLUX.call_kwargs(steps=steps, seed=0), **size})[0].reshape(-1))
    return torch.cat(outs)


def _offloaded():
    pipe = FLUX.build()
    pipe.enable_model_cpu_offload(device="cpu")
    return pipe


def _image_to_image(name: str) -> tuple[Callable[[], Any], Callable[[Any, int], torch.Tensor]]:
    run_it = image_to_image.runner(name)
    return (lambda: image_to_image.build(name)), (lambda pipe, steps: run_it(pipe, steps, 0))


STACKS: dict[str, Stack] = {
    "resolutions": Stack("resolutions (64², 96×64)", FLUX.build, _resolutions_run),
    "image-to-image": Stack("image-to-image (strength 0.6)", *_image_to_image("flux-img2img")),
    "inpainting": Stack("inpainting (strength 0.6)", *_image_to_image("flux-inpaint")),
    "controlnet": Stack("ControlNet", lambda: controlnet.build("flux-controlnet"),
                        lambda pipe, steps: controlnet.run(pipe, "flux-controlnet", steps, 0),
                        modules=("transformer", "controlnet")),
    "lora": Stack("LoRA (PEFT adapter)", _flux_with(with_adapter), _flux_run, with_adapter),
    "int8": Stack("int8 weights (torchao)", _flux_with(int8_weights), _flux_run, int8_weights),
    "model-offload": Stack("enable_model_cpu_offload", _offloaded, _flux_run),
    "flex-attention": Stack("flex attention backend", _flux_with(flex_attention), _flux_run, flex_attention),
}

# every row of the compatibility table, in order: the stacks above, then the ones that are refused
LABELS = {**{name: stack.label for name, stack in STACKS.items()}, "group-offload": "group offloading"}
