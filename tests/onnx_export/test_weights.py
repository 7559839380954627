"""Weights are stored once, in one file every variant points into."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from c4d_compile.onnx_export.weights import ALIGNMENT, SharedWeights


def test_weights_are_stored_once(dit_export):
    _, model, _, result = dit_export
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}.values()
    large = sum(t.numel() * t.element_size() for t in tensors if t.numel() * t.element_size() >= 1024)
    weights = result.directory / "weights.bin"
    assert weights.stat().st_size == result.weights_bytes
    # every large weight once (padding to the alignment aside); both variants read most of them
    assert large * 0.9 <= result.weights_bytes <= large + ALIGNMENT * len(list(tensors))
    assert result.moved_bytes > 1.4 * result.weights_bytes
    for name in result.onnx_bytes:
        proto = onnx.load(str(result.directory / name), load_external_data=False)
        inline = [i.name for i in proto.graph.initializer if len(i.raw_data) >= 1024]
        external = {e.value for i in proto.graph.initializer for e in i.external_data if e.key == "location"}
        assert not inline and external == {"weights.bin"}
        assert (result.directory / name).stat().st_size < result.weights_bytes / 2


def _model(**arrays) -> ir.Model:
    values = [ir.Value(name=name, const_value=ir.tensor(array, name=name)) for name, array in arrays.items()]
    return ir.Model(ir.Graph(inputs=[], outputs=[], nodes=[], initializers=values), ir_version=10)


def _location(model: ir.Model, name: str) -> tuple[int, int]:
    tensor = model.graph.initializers[name].const_value
    return tensor.offset, tensor.length


def test_a_row_range_of_a_stored_weight_points_into_it(tmp_path):
    """What a narrowed projection's variant reads (rows of a weight, a range of a bias, folded by the exporter into
    initializers of their own) is found inside the stored weight, not written again; other bytes are written."""
    weight = np.arange(6 * 32, dtype=np.float32).reshape(6, 32)
    bias = np.arange(100, dtype=np.float32)
    shared = SharedWeights(tmp_path, min_bytes=16)
    shared.move(_model(weight=weight, bias=bias))
    size = shared.size
    rows = _model(weight=weight[2:4].copy(), bias=bias[40:80].copy(), other=weight[2:4] + 1)
    shared.move(rows)
    shared.close()
    start, _ = _location(rows, "weight")
    assert _location(rows, "weight") == (start, 2 * 32 * 4) and start % (32 * 4) == 0
    data = (tmp_path / "weights.bin").read_bytes()
    assert data[start:start + 256] == weight[2:4].tobytes()
    offset, length = _location(rows, "bias")
    assert data[offset:offset + length] == bias[40:80].tobytes()
    assert shared.size == size + (-size % ALIGNMENT) + weight[2:4].nbytes  # only `other` was written
