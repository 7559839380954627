"""plan.json round-trips, and a corrupted or mismatched folder is refused with a typed error, never run."""

from __future__ import annotations

import json

import pytest

from c4d_compile import ExportFormatError
from c4d_compile.onnx_export import load_exported
from c4d_compile.onnx_export.plan_file import PLAN_FILE, content_checksum, read_plan


def _edit(folder, change, checksum=True):
    """Change plan.json; with ``checksum``, as a tool that rewrites it whole would (the checksum made anew), so
    the structural checks behind the checksum are what is tested."""
    path = folder / PLAN_FILE
    raw = json.loads(path.read_text())
    change(raw)
    if checksum:
        raw["checksum"] = content_checksum(raw)
    path.write_text(json.dumps(raw))


def test_round_trip(dit_export):
    result = dit_export[3]
    assert read_plan(result.directory) == result.plan
    written = json.loads((result.directory / PLAN_FILE).read_text())
    assert read_plan(result.directory).to_json() == {k: v for k, v in written.items() if k != "checksum"}


def test_the_program_is_the_schedule(dit_export):
    plan = dit_export[3].plan
    full = [i for i, s in enumerate(plan.program) if s.variant.value == "full"]
    assert full[0] == 0 and len(full) >= 2
    for i, step in enumerate(plan.program):
        if step.variant.value == "cached":  # forecast from the newest full steps before it, newest first
            assert step.history == tuple(reversed([s for s in full if s < i]))[: plan.num_slots]
            assert sum(step.weights) == pytest.approx(1.0)  # any forecast of a constant is that constant


def _set(path, value):
    def change(raw):
        *keys, last = path
        for key in keys:
            raw = raw[key]
        raw[last] = value
    return change


@pytest.mark.parametrize("change,match", [
    (_set(["version"], 99), "version 99"),
    (_set(["format"], "other"), "not a 'c4d-export'"),
    (_set(["program", 1, "variant"], "probe"), "does not list"),
    (_set(["program", 1, "variant"], "nonsense"), "unknown variant kind 'nonsense'"),
    (_set(["program", 1, "weights"], [1.0]), "forecast weights for"),
    (lambda raw: raw["program"].pop(), "program has 9 steps"),
    (_set(["state", 0, "dtype"], "complex"), "unknown dtype"),
    (_set(["num_steps"], "ten"), "expected an integer"),
    (_set(["weights", "bytes"], 12), "expected 12 bytes"),
    (_set(["timesteps"], ["sigma"]), "not one of its inputs"),
])
def test_a_mismatched_plan_is_refused(dit_copy, change, match):
    _edit(dit_copy, change)
    with pytest.raises(ExportFormatError, match=match):
        load_exported(dit_copy)


def test_an_edited_plan_is_refused_by_its_checksum(dit_copy):
    _edit(dit_copy, _set(["program", 3, "weights"], [1.5, -0.5]), checksum=False)  # well-formed, wrong
    with pytest.raises(ExportFormatError, match="does not match its checksum"):
        load_exported(dit_copy)


def test_damaged_weights_are_found_by_their_hash(dit_copy):
    weights = dit_copy / "weights.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    load_exported(dit_copy)  # the size is right: only hashing finds it
    with pytest.raises(ExportFormatError, match="weights were damaged"):
        load_exported(dit_copy, verify_weights=True)


def test_files_that_changed_are_refused(dit_copy):
    (dit_copy / PLAN_FILE).write_text("{not json")
    with pytest.raises(ExportFormatError, match="not valid JSON"):
        load_exported(dit_copy)


def test_a_swapped_variant_file_is_refused(dit_copy):
    (dit_copy / "cached.onnx").write_bytes((dit_copy / "full.onnx").read_bytes())
    with pytest.raises(ExportFormatError, match="sha256 differs"):
        load_exported(dit_copy)


def test_missing_folder(tmp_path):
    with pytest.raises(ExportFormatError, match="not an exported directory"):
        load_exported(tmp_path)
