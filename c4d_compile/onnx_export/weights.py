"""Weights stored once for every variant: one ``weights.bin`` that all the ONNX files point into.

torch's exporter gives each variant its own copy of every initializer it reads. Every initializer of
at least ``min_bytes`` is moved into one file shared by all variants, keyed by its content (dtype,
shape, bytes), so a weight that several variants read — or one the exporter folded the same way in
each — is written once. ONNX external data (location, offset, length) is what makes this legal
ONNX: each file stays loadable by any runtime on its own.

A variant that computes a projection only in part (``compiler/passes/narrow_projections.py``) reads a row range
of its weight, and the exporter folds that slice into an initializer of its own. A row range of a stored tensor
is a byte range of the file, so such an initializer points into it instead of being written again: every stored
tensor's row starts (element starts, for a vector) are indexed by the first ``WINDOW`` bytes there, and a
candidate found by its own first bytes is checked byte for byte against the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx_ir as ir

ALIGNMENT = 64  # bytes: offsets aligned for memory-mapped loads
WINDOW = 64  # bytes that key a row start in the index of stored rows


class SharedWeights:
    def __init__(self, directory: Path, filename: str = "weights.bin", min_bytes: int = 1024):
        self.directory = Path(directory)
        self.filename = filename
        self.min_bytes = min_bytes
        self._offsets: dict[tuple, int] = {}
        self._row_starts: dict[tuple, int] = {}  # (dtype, row shape, first WINDOW bytes' digest) -> file offset
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
                offset = self._stored_rows(tensor, data)  # rows of a tensor already stored (a folded row range)
            if offset is None:
                offset = self._append(data)
                self._index_rows(tensor, data, offset)
            self._offsets[key] = offset
            value.const_value = ir.ExternalTensor(self.filename, offset, len(data), tensor.dtype, shape=tensor.shape,
                                                  name=value.name, base_dir=self.directory)
            moved += len(data)
        return moved

    @staticmethod
    def _row_key(tensor, data: bytes, start: int) -> tuple:
        return tensor.dtype, tuple(tensor.shape)[1:], hashlib.sha256(data[start:start + WINDOW]).digest()

    def _index_rows(self, tensor, data: bytes, offset: int) -> None:
        """Index where each row of a stored tensor starts (each element, for a vector), first start kept."""
        step = len(data) // tensor.shape[0] if tensor.shape else len(data)
        for start in range(0, len(data) - WINDOW + 1, step):
            self._row_starts.setdefault(self._row_key(tensor, data, start), offset + start)

    def _stored_rows(self, tensor, data: bytes) -> int | None:
        """The file offset where ``data`` is already stored as rows of another tensor, or None."""
        offset = self._row_starts.get(self._row_key(tensor, data, 0)) if len(data) >= WINDOW else None
        if offset is None or offset + len(data) > self.size:
            return None
        self._file.flush()
        with open(self.directory / self.filename, "rb") as stored:
            stored.seek(offset)
            return offset if stored.read(len(data)) == data else None

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
