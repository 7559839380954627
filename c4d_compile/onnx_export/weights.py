"""Weights stored once for every variant: one ``weights.bin`` that all the ONNX files point into.

torch's exporter gives each variant its own copy of every initializer it reads. Every initializer of
at least ``min_bytes`` is moved into one file shared by all variants, keyed by its content (dtype,
shape, bytes), so a weight that several variants read — or one the exporter folded the same way in
each — is written once. ONNX external data (location, offset, length) is what makes this legal
ONNX: each file stays loadable by any runtime on its own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx_ir as ir

ALIGNMENT = 64  # bytes: offsets aligned for memory-mapped loads


class SharedWeights:
    def __init__(self, directory: Path, filename: str = "weights.bin", min_bytes: int = 1024):
        self.directory = Path(directory)
        self.filename = filename
        self.min_bytes = min_bytes
        self._offsets: dict[tuple, int] = {}
        self._file = open(self.directory / filename, "wb")  # noqa: SIM115 (closed by close())
        self.size = 0
        self._digest = hashlib.sha256()

    def move(self, model: ir.Model) -> int:
        """Point the model's large initializers into the shared file; the bytes moved out of this model."""
        moved = 0
        for value in model.graph.initializers.values():
            tensor = value.const_value
            if tensor is None or tensor.nbytes < self.min_bytes:
                continue
            data = tensor.tobytes()
            key = (tensor.dtype, tuple(tensor.shape), hashlib.sha256(data).digest())
            offset = self._offsets.get(key)
            if offset is None:
                offset = self._offsets[key] = self._append(data)
            value.const_value = ir.ExternalTensor(self.filename, offset, len(data), tensor.dtype, shape=tensor.shape,
                                                  name=value.name, base_dir=self.directory)
            moved += len(data)
        return moved

    def _append(self, data: bytes) -> int:
        pad = -self.size % ALIGNMENT
        for chunk in (b"\0" * pad, data):
            self._file.write(chunk)
            self._digest.update(chunk)
        offset = self.size + pad
        self.size = offset + len(data)
        return offset

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
