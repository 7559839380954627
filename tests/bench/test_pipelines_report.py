"""The pipelines table: graphs (split fragments, then the repaired graph), contexts, and a failed check shown."""

from c4d_compile.bench.pipelines_report import (
    PipelineResults,
    PipelineRow,
    pipelines_table,
    read_pipelines_json,
    write_pipelines_json,
)


def _results() -> PipelineResults:
    return PipelineResults({"command": "x"}, [
        PipelineRow("mochi", "batched", 8, 13, 1, {"MochiAttention": 2}, True, {"cond_uncond": (2, 4)}, True),
        PipelineRow("flux", "none", 8, 1, 1, {}, False, {"cond": (2, 6)}, True, ["c4d: something"]),
    ])


def test_rows_sorted_split_graphs_and_failures_shown(tmp_path):
    write_pipelines_json(_results(), tmp_path / "p.json")
    lines = pipelines_table(read_pipelines_json(tmp_path / "p.json")).splitlines()
    assert "(8 steps)" in lines[0]
    assert lines[2] == "| flux | none | 1 | **no** | cond 2/6 (warned) | yes |"
    assert lines[3] == "| mochi | batched | 12 → 1 | yes | cond_uncond 2/4 (steps 0–1 run split) | yes |"
