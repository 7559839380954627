import re

from c4d_compile.cli import main


def test_inspect_prints_blocks_stream_and_plan(capsys):
    assert main(["inspect", "flux", "--policy", "stack-reuse"]) == 0
    out = capsys.readouterr().out
    assert "block stack: 4 blocks in 2 list(s)" in out
    assert "transformer_blocks.0" in out and "single_transformer_blocks.1" in out
    assert "glue transformer_blocks -> single_transformer_blocks: " in out
    assert "timestep input: l_kwargs_timestep_" in out
    assert "cacheable: yes" in out and "region stack" in out and "residual vs" in out
    assert "full: skips 0 node(s)" in out  # the full step is the original graph
    skipped = int(re.search(r"cached: skips (\d+) node", out).group(1))
    assert skipped > 100  # the block stack is not run on a cached step


def test_inspect_a_factory(capsys):
    assert main(["inspect", "support.cli_factories:plain_mlp"]) == 0
    out = capsys.readouterr().out
    assert "cacheable: no" in out and "no block stack" in out


def test_unknown_model_and_policy_name_the_valid_choices(capsys):
    assert main(["inspect", "nope"]) == 2
    assert "flux" in capsys.readouterr().err
    assert main(["inspect", "flux", "--policy", "nope"]) == 2
    assert "taylorseer-lite" in capsys.readouterr().err


def test_policies_lists_presets(capsys):
    assert main(["policies"]) == 0
    assert "taylorseer-lite" in capsys.readouterr().out


def test_export_writes_and_checks_a_folder(tmp_path, capsys):
    out = tmp_path / "dit"
    assert main(["export", "dit", "--steps", "6", "--set", "budget=2", "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "program: 2 full of 6 steps" in printed and "max |exported - torch|" in printed
    assert "6 steps along the sampling trajectory" in printed and "(final latent)" in printed
    assert sorted(p.name for p in out.iterdir()) == ["cached.onnx", "full.onnx", "plan.json", "weights.bin"]
    assert main(["export", "dit", "--steps", "6", "--policy", "speca", "--out", str(tmp_path / "x")]) == 2
    assert "verify" in capsys.readouterr().err
