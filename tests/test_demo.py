from PIL import Image

from c4d_compile.cli import main
from c4d_compile.demo import run_demo


def test_demo_runs_end_to_end_and_saves_the_picture(tmp_path):
    out = tmp_path / "demo.png"
    result = run_demo("dit", "taylorseer", steps=8, per_class=1, repeats=1, out=str(out), warmup=2, interval=3)
    assert result["full_steps"] == 4  # steps 0, 1, 4, 7
    assert result["ideal_speedup"] > 1.5 and result["measured_speedup"] > 0
    assert 10 < result["psnr_cached_db"] < 100 and 10 < result["psnr_fewer_steps_db"] < 100
    picture = Image.open(out)
    assert picture.height == 3 * 64 + 3 * 4 and picture.width > 10 * 64  # three rows of ten digits


def test_demo_command_prints_the_figures(tmp_path, capsys):
    out = tmp_path / "d.png"
    args = ["demo", "--model", "dit", "--steps", "4", "--per-class", "1", "--repeats", "1", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "measured speedup" in text and "PSNR vs uncached" in text and out.exists()
