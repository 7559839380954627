"""One variant GraphModule -> one ONNX model, through torch's exporter.

A variant's signature is ``(*graph_inputs, *named_inputs) -> (*model_outputs, *named_outputs)``
(``compiler/passes/variants.py``). In the file, the graph inputs that are constants (parameters, buffers) are
bound into the module as buffers, so they become initializers; the caller's inputs keep their
keyword names, named inputs their state names, and named outputs are prefixed with ``next:``
(a variant may read and write the same state name, which one ONNX graph cannot name twice).
"""

from __future__ import annotations

import logging
import warnings

import onnx_ir as ir
import torch
import torch.fx as fx

from ..compiler.passes.variants import Variant
from ..errors import NotExportableError
from .capture import CapturedModel
from .rewrites import bridge_exporter_gaps

NEXT = "next:"
_PROVENANCE = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node", "pkg.torch.onnx.class_hierarchy")


def output_names(variant: Variant) -> list[str]:
    return [f"output.{i}" for i in range(variant.num_outputs)] + [NEXT + name for name in variant.outputs]


def input_names(captured: CapturedModel, variant: Variant) -> list[str]:
    return [x.name for x in captured.model_inputs()] + list(variant.inputs)


class _Bound(torch.nn.Module):
    """The variant with its constants bound: called with the caller's inputs, then the named inputs."""

    def __init__(self, gm: fx.GraphModule, captured: CapturedModel):
        super().__init__()
        self.gm = gm
        self.count = len(captured.example_inputs)
        self.constants = set(captured.constants)
        self.names = {}
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        for i, name in captured.constants.items():
            if not placeholders[i].users:  # a constant this variant does not read is not in its file
                continue
            attr = self.names[i] = f"c{i}_" + "".join(c if c.isalnum() else "_" for c in name)
            self.register_buffer(attr, captured.example_inputs[i].detach(), persistent=False)

    def forward(self, *args):
        given = iter(args)
        merged = [getattr(self, self.names[i]) if i in self.names else None if i in self.constants else next(given)
                  for i in range(self.count)]
        return self.gm(*merged, *given)


def export_variant(captured: CapturedModel, variant: Variant, named_examples: list) -> tuple[ir.Model, dict[str, int]]:
    """Export one variant: the ONNX model (in memory, weights not yet moved out) and the exporter gaps bridged
    (rewrite pass -> patterns rewritten)."""
    user = [captured.example_inputs[i] for i in sorted(captured.inputs)]
    constants = [captured.example_inputs[i] if i in captured.constants else None
                 for i in range(len(captured.example_inputs))]
    gm, bridged = bridge_exporter_gaps(variant.gm, constants)
    bound = _Bound(gm, captured).eval()
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # optional torchvision ops: not ours
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(bound, (*user, *named_examples), dynamo=True, optimize=True,
                                        input_names=input_names(captured, variant),
                                        output_names=output_names(variant), verbose=False)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise NotExportableError(f"torch.onnx.export failed on the {variant.kind.value} variant: "
                                 f"{type(err).__name__}: {first}") from err
    finally:
        quiet.setLevel(level)
    model = program.model
    for node in ir.traversal.RecursiveGraphIterator(model.graph):  # the tracer's provenance: 80% of the file
        for key in _PROVENANCE:
            node.metadata_props.pop(key, None)
    return model, bridged
