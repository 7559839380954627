"""Weights are stored once, in one file every variant points into."""

from __future__ import annotations

import onnx

from c4d_compile.onnx_export.weights import ALIGNMENT


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
