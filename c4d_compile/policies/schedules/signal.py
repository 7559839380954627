"""Signal-driven schedules: compute when a cheap signal says the features moved (TeaCache, FBCache, DBCache).

Every call first runs a PROBE variant — the cheapest prefix of the graph that yields the signal — and
the Runtime measures the relative L1 change of the probe's value against a reference:

    d = sum |v - ref| / sum |ref|          (float32, over every probed tensor together)

What is probed (``signal``), found in the graph by the passes, never by names:

* ``first-blocks`` — the residual of the first ``first_blocks`` blocks, ``H(after Fn) - H(input)``
  (FBCache = Fn 1; DBCache, cache-dit). The cached region then starts after those blocks, and the
  last ``last_blocks`` blocks are computed on cached steps too (DBCache's Bn).
* ``modulated-input`` — the input of the first block's first matrix product on the stream: the
  timestep-modulated, normalised stream of TeaCache (arXiv 2411.19108).
* ``model-input`` — the model's latent input (EasyCache, arXiv 2507.02860, with ``region="output"``):
  the signal is the input's change since the previous call times the rate ``k`` at which the output
  changed per unit of input change between the last two full steps, over the last full output,
  ``k |x - x_prev| / |v_p|``: an estimate of the output's relative change (``compiler/signals/transformation_rate.py``).
* ``spectral-input`` — the modulated input measured after a noise-level-dependent filter over the latent's
  token grid (SeaCache, arXiv 2602.18993; ``compiler/signals/spectral_input.py``, options in ``spectral.py``).

``reference`` says what ``ref`` is: the probe value of the last full step (FBCache: the comparison
is cumulative since the last compute) or of the previous call (TeaCache). With ``accumulate`` the
rescaled signals since the last full step add up (TeaCache's accumulator, reset on compute);
``rescale`` is the polynomial TeaCache fits from input change to output change, highest power first
(empty: the identity). A call computes in full when

    no history yet, or step < warmup, or step in the last ``last_steps_full`` steps,
    or ``max_cached_in_row`` cached calls already ran since the last full one,
    or (accumulated) f(d) >= threshold

so ``threshold=0`` always computes. The decision is a pure function of the step and the signals since
the last full step (``StepInfo.signals``). ``decision="host"`` takes it on the host from one scalar read
per call; ``decision="device"`` compiles the same rule into one graph (``compiler/passes/rewrite_decide.py``):
the accumulator and the count of cached calls in a row are state tensors, the warm-up and last steps
a host input, and ``torch.cond`` runs one continuation — the host reads nothing per call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ...errors import ConfigError, InvalidValueError
from ...runtime.step_program import StepInfo, VariantKind
from ..validate import check_bool, check_int, check_number, is_number
from .base import ScheduleBase
from .files import check_same_graph, field_from_file, read_tagged, write_tagged
from .spectral import DEFAULTS as SPECTRAL_DEFAULTS
from .spectral import Noise, check_spectral, describe_spectral

RESCALE_FORMAT = "c4d-signal-rescale/1"


def read_rescale(path: str | Path) -> dict[str, Any]:
    """A rescale file of ``c4d calibrate --policy teacache``: the polynomial and what it was fitted on."""
    data = read_tagged(path, RESCALE_FORMAT, "rescale")
    coefficients = data.get("rescale")
    if not isinstance(coefficients, list) or not coefficients or not all(map(is_number, coefficients)):
        raise ConfigError(f"{path}: 'rescale' must be a non-empty list of finite coefficients")
    return data


def write_rescale(path: str | Path, data: dict[str, Any]) -> Path:
    return write_tagged(path, RESCALE_FORMAT, data, read_rescale)


class Signal(str, enum.Enum):
    FIRST_BLOCKS = "first-blocks"  # residual of the first blocks (FBCache, DBCache)
    MODULATED_INPUT = "modulated-input"  # the first block's modulated input (TeaCache)
    MODEL_INPUT = "model-input"  # the latent input, against the output's rate of change (EasyCache)
    BLOCK_RESIDUAL = "block-residual"  # one block's residual, measured at full steps (AdaCache)
    VERIFICATION = "verification"  # the forecast's error on the last block, measured by verified drafts (SpeCa)
    SPECTRAL_INPUT = "spectral-input"  # the modulated input after a noise-level spectral filter (SeaCache)


# a PROBE measures them every call
PER_CALL = (Signal.FIRST_BLOCKS, Signal.MODULATED_INPUT, Signal.MODEL_INPUT, Signal.SPECTRAL_INPUT)


class Decision(str, enum.Enum):
    HOST = "host"  # the probe's signal is read on the host (one scalar per call), which picks the variant
    DEVICE = "device"  # one graph: probe, signal and torch.cond over both continuations; the host reads nothing


class Reference(str, enum.Enum):
    LAST_FULL = "last-full"  # compare with the probe value of the last full step
    PREVIOUS = "previous"  # compare with the previous call's probe value


def _parse(enum_type, field: str, value):
    try:
        return enum_type(value)
    except ValueError:
        raise InvalidValueError(field, value, f"one of {[v.value for v in enum_type]}") from None


@dataclass(frozen=True)
class SignalSchedule(ScheduleBase):
    threshold: float = 0.08
    signal: Signal = Signal.FIRST_BLOCKS
    first_blocks: int = 1
    last_blocks: int = 0
    reference: Reference = Reference.LAST_FULL
    accumulate: bool = False
    rescale: tuple[float, ...] = ()
    warmup: int = 1
    last_steps_full: int = 0
    max_cached_in_row: int = 0  # 0: no limit
    decision: Decision = Decision.HOST
    # spectral-input only (schedules/spectral.py): the token grid, the noise kind, the spectrum's falloff, the
    # timestep's scale (0: found / by the grid / auto), the first reference unfiltered
    grid: tuple[int, ...] = ()
    noise: Noise = Noise.FLOW
    power: float = 0.0
    timestep_scale: float = 0.0
    raw_first: bool = False
    source: str = field(default="", compare=False)  # the rescale file, when ``rescale`` named one
    graph: str = field(default="", compare=False)  # fingerprint of the graph that file was fitted on
    kind: ClassVar[str] = "signal"

    def __post_init__(self) -> None:
        check_number("threshold", self.threshold, 0, note="0: always compute")
        object.__setattr__(self, "signal", _parse(Signal, "signal", self.signal))
        if self.signal not in PER_CALL:
            raise InvalidValueError("signal", self.signal.value, f"one of {[s.value for s in PER_CALL]} (a signal "
                                    "measured on every call; block-residual is measured at full steps: adacache)")
        object.__setattr__(self, "reference", _parse(Reference, "reference", self.reference))
        object.__setattr__(self, "decision", _parse(Decision, "decision", self.decision))
        spectral = check_spectral({name: getattr(self, name) for name in SPECTRAL_DEFAULTS},
                                  self.signal is Signal.SPECTRAL_INPUT, self.decision is Decision.DEVICE)
        for name, value in spectral.items():
            object.__setattr__(self, name, value)
        check_int("first_blocks", self.first_blocks, 1)
        check_int("last_blocks", self.last_blocks, 0)
        check_bool("accumulate", self.accumulate)
        check_int("warmup", self.warmup, 1)
        check_int("last_steps_full", self.last_steps_full, 0)
        check_int("max_cached_in_row", self.max_cached_in_row, 0)
        rescale = field_from_file(self, self.rescale, read_rescale, "rescale")
        coefficients = tuple(rescale) if isinstance(rescale, (tuple, list)) else None
        if coefficients is None or not all(map(is_number, coefficients)):
            raise InvalidValueError("rescale", self.rescale, "a sequence of finite polynomial coefficients, "
                                    "highest power first (empty: no rescaling), or the path of a rescale file from "
                                    "`c4d calibrate --policy teacache`")
        object.__setattr__(self, "rescale", tuple(float(c) for c in coefficients))

    def check_plan(self, fingerprint: dict) -> None:
        check_same_graph(self, fingerprint, "rescale polynomial")

    # read by the host's decision alone (``decide``): a request may set its own; the device decision compiles them
    HOST_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"threshold", "accumulate", "rescale", "warmup", "last_steps_full", "max_cached_in_row"})

    def compiled_part(self) -> object:
        if self.decision is Decision.DEVICE:
            return self
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare and f.name not in self.HOST_FIELDS}

    @property
    def without_step_count(self) -> str | None:  # only the forced last steps need the step count
        return "the signal decision without forcing the last steps full" if self.last_steps_full else None

    def rescaled(self, value: float) -> float:
        if not self.rescale:
            return value
        out = 0.0
        for c in self.rescale:  # Horner
            out = out * value + c
        return out

    def score(self, signals) -> float:
        """What is compared with the threshold: the last signal, or the sum since the last full step."""
        if self.accumulate:
            return sum(self.rescaled(s) for s in signals)
        return self.rescaled(signals[-1])

    def forced(self, info: StepInfo) -> bool:
        """Full whatever the signal says: the warm-up and the last steps."""
        if info.step < self.warmup:
            return True
        return bool(self.last_steps_full and info.num_steps is not None
                    and info.step >= info.num_steps - self.last_steps_full)

    def early(self, info: StepInfo) -> VariantKind | None:
        """The decision before this call's signal is measured: on the device path, the one graph that decides
        (once a context has a reference to compare with); on the host path, none."""
        if self.decision is Decision.DEVICE:
            return VariantKind.DECIDE if info.full_steps else VariantKind.FULL
        return None

    def decide(self, info: StepInfo) -> VariantKind:
        if not info.full_steps or not info.signals or self.forced(info):
            return VariantKind.FULL
        if self.max_cached_in_row and len(info.signals) > self.max_cached_in_row:
            return VariantKind.FULL
        return VariantKind.FULL if self.score(info.signals) >= self.threshold else VariantKind.CACHED

    def planned(self, num_steps: int) -> tuple[int, ...]:
        raise ConfigError("a signal schedule has no full steps known in advance: they depend on the signal "
                          "(run it and read backend.stats().last)")

    def describe(self) -> str:
        parts = [f"signal {self.signal.value}"]
        if self.signal is Signal.FIRST_BLOCKS:
            parts.append(f"F{self.first_blocks}B{self.last_blocks}")
        if self.signal is Signal.SPECTRAL_INPUT:
            parts.append(describe_spectral({name: getattr(self, name) for name in SPECTRAL_DEFAULTS}))
        measured = ("input change x output rate" if self.signal is Signal.MODEL_INPUT
                    else f"relative L1 vs {self.reference.value}")
        parts.append(f"{'accumulated ' if self.accumulate else ''}{measured}"
                     f"{' (rescaled' + (' by ' + self.source if self.source else '') + ')' if self.rescale else ''}"
                     f" >= {self.threshold:g}")
        parts.append(f"warm-up {self.warmup}")
        if self.last_steps_full:
            parts.append(f"last {self.last_steps_full} full")
        if self.max_cached_in_row:
            parts.append(f"at most {self.max_cached_in_row} cached in a row")
        return ", ".join(parts)
