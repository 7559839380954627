"""The options of the ``spectral-input`` signal (SeaCache, Chung et al., CVPR 2026, arXiv 2602.18993;
github.com/jiwoogit/SeaCache): what the spectral filter needs to know that the graph does not say.

SeaCache measures TeaCache's probe after a filter over the latent's token grid whose pass band follows the
noise level of the step. Two things are model facts the graph cannot tell reliably, so they are options:

* ``noise`` — how the timestep sets the signal and noise scales ``x_t = a x_0 + b ε`` of the filter:
  ``"flow"`` (rectified flow: ``a = 1 - σ``, ``b = σ``; Flux, SD3, Wan) or ``"vp"`` (``a = sqrt(ᾱ)``,
  ``b = sqrt(1 - ᾱ)`` over DDPM's 1000 linear betas 1e-4 .. 0.02; DiT, PixArt-α).
* ``timestep_scale`` — the timestep input divided by it is σ in [0, 1] (``"vp"``: the DDPM step over 1000).
  0 (default): 1 when a generation's first timestep is at most 1 (Flux's pipelines pass σ), else 1000.

The grid is found in the graph where it can be (``compiler/signals/spectral_input.py``); ``grid`` names it
where it cannot (a non-square image behind packed tokens). ``power`` is the falloff ``|f|^-power`` of the
assumed signal spectrum (0: the paper's 2 for images, 3 for videos); ``raw_first`` keeps the first call's
unfiltered input as the reference, as the paper's FLUX and Wan scripts do (``schedule="paper"``).
"""

from __future__ import annotations

import enum
from typing import Any

from ...errors import ConfigError, InvalidValueError
from ..validate import check_bool, check_number, parse_enum


class Noise(str, enum.Enum):
    FLOW = "flow"  # x_t = (1 - σ) x_0 + σ ε
    VP = "vp"  # x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, DDPM's linear betas


DEFAULTS: dict[str, Any] = {"grid": (), "noise": Noise.FLOW, "power": 0.0, "timestep_scale": 0.0, "raw_first": False}


def parse_grid(value: Any) -> tuple[int, ...]:
    """``()`` (found in the graph), ``(h, w)`` or ``(t, h, w)``: positive integers."""
    sizes = tuple(value) if isinstance(value, (tuple, list)) else None
    if sizes is None or len(sizes) not in (0, 2, 3) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise InvalidValueError("grid", value, "(h, w) or (t, h, w) of the latent's token grid, positive integers, "
                                "or () to find it in the graph")
    return sizes


def check_spectral(fields: dict[str, Any], measured: bool, on_device: bool) -> dict[str, Any]:
    """The spectral options validated and normalised. ``measured``: the schedule's signal is ``spectral-input``
    (else every option must keep its default); ``on_device``: it asked for ``decision="device"``."""
    values = {"grid": parse_grid(fields["grid"]), "noise": parse_enum(Noise, "noise", fields["noise"])}
    check_number("power", fields["power"], 0, note="0: 2 on an (h, w) grid, 3 on a (t, h, w) one")
    check_number("timestep_scale", fields["timestep_scale"], 0,
                 note="0: 1 when the first timestep is at most 1, else 1000")
    check_bool("raw_first", fields["raw_first"])
    values.update(power=float(fields["power"]), timestep_scale=float(fields["timestep_scale"]),
                  raw_first=fields["raw_first"])
    if not measured:
        changed = sorted(k for k, v in values.items() if v != DEFAULTS[k])
        if changed:
            raise ConfigError(f"{', '.join(changed)}: options of signal='spectral-input' (seacache), which this "
                              "schedule does not measure")
    elif on_device:
        # the filter is an FFT over the whole grid per call: kept on the host path, where it is measured once
        raise InvalidValueError("decision", "device", "'host' for signal 'spectral-input': its FFT filter is "
                                "measured on the host path only")
    return values


def describe_spectral(values: dict[str, Any]) -> str:
    grid = "x".join(map(str, values["grid"])) if values["grid"] else "the graph's"
    power = f"{values['power']:g}" if values["power"] else "2 (image) / 3 (video)"
    scale = f"{values['timestep_scale']:g}" if values["timestep_scale"] else "auto"
    return (f"SEA filter over {grid} grid, {values['noise'].value} noise, |f|^-{power}, timestep scale {scale}"
            f"{', first reference unfiltered' if values['raw_first'] else ''}")
