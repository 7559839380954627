import json

from c4d_compile.cli import main


def test_bench_command_writes_table_json_and_plot(tmp_path, capsys):
    args = ["bench", "--models", "dit", "--policies", "fora", "--peers", "--steps", "6", "--per-class", "1",
            "--repeats", "1", "--lowering", "eager", "--set", "interval=2", "warmup=1", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "| fora[interval=2,warmup=1]" in capsys.readouterr().out
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    fora = next(r for r in rows if r["method"].startswith("fora"))
    assert fora["settings"]["interval"] == 2 and fora["computations"] == 3  # steps 0, 2, 4
    # held against ceil(its FLOP-equivalent steps): the branch cache's cached steps still run the modulations
    assert fora["ideal_speedup"] < 2 and any(r["method"] == "uncached, 4 steps" for r in rows)
    assert (tmp_path / "pareto.png").stat().st_size > 0 and (tmp_path / "bench.md").exists()


def test_bench_rejects_a_bad_preset_option_before_running(tmp_path, capsys):
    assert main(["bench", "--quick", "--set", "intervall=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "intervall" in err and "interval" in err
    assert not (tmp_path / "bench.json").exists()
