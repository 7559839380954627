"""Ascend lowering: each variant through torchair, torch_npu's graph mode (GE graphs, or ACL graphs).

The variants are ordinary GraphModules with static named inputs, so each goes to torchair's own
torch.compile backend (``torchair.get_npu_backend``) exactly as inductor gets them, once per variant.
``Settings.mode`` picks torchair's mode ("max-autotune": the whole graph compiled by GE, the default;
"reduce-overhead": captured as an ACL graph), ``Settings.npu_options`` sets ``CompilerConfig`` fields
by their dotted path (``{"experimental_config.frozen_parameter": True}``).

Without the hardware none of this runs here: the wiring (config built, backend called per variant)
is tested against stand-in modules; numerics and speed on Ascend are not verified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.fx as fx

from ..errors import InvalidValueError, MissingDependencyError

NPU_MODES = ("max-autotune", "reduce-overhead")


def require_torchair():
    try:
        import torch_npu  # noqa: F401  (registers the NPU device with torch)
        import torchair
    except ImportError as err:
        raise MissingDependencyError(
            f"lowering='npu' needs torch_npu and torchair ({err.name} is missing): install the torch-npu build "
            "that matches this torch (pip install torch-npu; torchair ships with it) on a machine with the "
            "Ascend CANN toolkit") from err
    return torchair


def compiler_config(torchair, settings):
    config = torchair.CompilerConfig()
    config.mode = settings.mode or NPU_MODES[0]
    for path, value in settings.npu_options.items():
        *parents, last = path.split(".")
        target = config
        for part in parents:
            target = getattr(target, part, None)
        if target is None or not hasattr(target, last):
            raise InvalidValueError("npu_options", path, "a dotted path of a torchair CompilerConfig field, e.g. "
                                    "'experimental_config.frozen_parameter'")
        setattr(target, last, value)
    return config


def lower_npu(gm: fx.GraphModule, example_inputs: Sequence, settings) -> Callable:
    torchair = require_torchair()
    backend = torchair.get_npu_backend(compiler_config=compiler_config(torchair, settings))
    return backend(gm, list(example_inputs))
