"""Offline export of the cached model: ONNX files per variant, shared weights, and ``plan.json``;
``load_exported`` runs them with onnxruntime. Needs the ``onnx`` extra."""

from ..errors import MissingDependencyError

try:
    import onnx_ir  # noqa: F401
    import onnxruntime  # noqa: F401
    import onnxscript  # noqa: F401
except ImportError as err:
    raise MissingDependencyError(f"ONNX export needs onnx, onnxscript and onnxruntime ({err.name} is missing): "
                                 "pip install 'c4d-compile[onnx]'") from err

from .exporter import ExportResult, export  # noqa: E402
from .runner import ExportedModel, load_exported  # noqa: E402

__all__ = ["ExportResult", "ExportedModel", "export", "load_exported"]
