"""The README's first command: ``connecto demo`` end to end, and its rerun."""

import re

from click.testing import CliRunner

from connecto.cli import cli


def test_the_demo_reconstructs_its_volume_and_a_rerun_skips_every_stage(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--no-progress", "--workers", "2"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    voi, arand = (float(v) for v in re.search(r"VOI sum ([\d.]+)\s+ARAND ([\d.]+)", first.output).groups())
    f1 = float(re.search(r"synaptic partner F1 ([\d.]+)", first.output).group(1))
    # the shipped models, measured 2026-12-03 under pytest (fp32, 2 CPU cores; as in the README):
    # VOI sum 0.458 (+0.02), ARAND 0.049 (+0.01), partner F1 0.790 (49 of 50 true partners among 74
    # found; -0.02: up to three more false partners or one lost true partner pass)
    assert voi < 0.48 and arand < 0.06 and f1 > 0.77, first.output
    for name in ("section.png", "neuroglancer.json", "run/connectome", "run/synapses.parquet"):
        assert (out / name).exists(), name
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "predict: with" not in second.output and "segment:" not in second.output  # nothing recomputed
    assert re.search(r"VOI sum ([\d.]+)", second.output).group(1) == f"{voi:.3f}"
