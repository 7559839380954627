"""The compatibility table: a cell lists what each of its tests did, and a cell no test covers says so."""

from __future__ import annotations

from c4d_compile.bench.compatibility_report import (
    Cell,
    CompatibilityResults,
    compatibility_table,
    read_compatibility_json,
    write_compatibility_json,
)


def _results() -> CompatibilityResults:
    meta = {"command": "python examples/compatibility_check.py", "commit": "abcdef0123", "date": "2026-12-05T00:00"}
    cells = [Cell("lora", "regions", "branch", "passed", "t::a"), Cell("lora", "regions", "output", "failed", "t::b"),
             Cell("lora", "export", "onnx", "skipped", "t::c"),
             Cell("group", "signal", "fbcache", "passed", "t::d", refused="ConfigError"),
             Cell("group", "tokens", "toca", "passed", "t::e", refused="ConfigError"),
             Cell("group", "regions", "branch", "passed", "t::f", refused="ConfigError"),
             Cell("group", "regions", "stack", "passed", "t::g", refused="ConfigError")]
    return CompatibilityResults(meta, {"lora": "LoRA", "group": "group offloading", "int8": "int8"}, cells)


def test_each_cell_lists_its_cases_and_an_uncovered_cell_says_not_tested(tmp_path):
    path = tmp_path / "compatibility.json"
    write_compatibility_json(_results(), path)
    table = compatibility_table(read_compatibility_json(path)).splitlines()
    assert table[0] == ("| stack | region kinds | signal presets | token presets | ONNX export | context parallelism |")
    assert table[2] == "| LoRA | ✓ branch, ✗ output | not tested | not tested | skipped onnx | not tested |"
    assert table[3] == ("| group offloading | refused (ConfigError): branch, stack | refused (ConfigError): fbcache "
                        "| refused (ConfigError): toca | not tested | not tested |")
    assert table[4] == "| int8 | " + " | ".join(["not tested"] * 5) + " |"  # a row no test reached
    assert table[-1].startswith("5 of 7 cell tests passed; `python examples/compatibility_check.py` at abcdef0")
