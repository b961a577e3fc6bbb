"""The ``skivae`` command line."""

import re

import pytest

from skivae.cli import main

DEMO = [
    "demo",
    "--n-segments",
    "6",
    "--n-per-segment",
    "50",
    "--n-sources",
    "2",
    "--max-iter",
    "2",
    "--quiet",
]


def test_demo_prints_a_table_of_both_models(capsys):
    assert main(DEMO) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Simulation: 6 segments x 50 points, 2 sources" in out
    assert "(X: 300 x 2)" in out
    assert re.search(r"model\s+MCC\s+fit seconds", out)
    names = ("identifiable flow", "iVAE (with u)", "plain VAE (no u)", "FastICA")
    for name in names:
        row = re.search(re.escape(name) + r".*?\s+([0-9.]+)\s+([0-9.]+)\s*$", out, re.M)
        assert row is not None, f"no table row for {name!r}"
        assert 0.0 <= float(row.group(1)) <= 1.0
        assert float(row.group(2)) >= 0.0
    # --quiet: no progress bars; warnings (ConvergenceWarning, plain VAE) muted.
    assert captured.err == ""


def test_demo_without_quiet_shows_progress(capsys):
    assert main(DEMO[:-1]) == 0
    err = capsys.readouterr().err
    assert "IdentifiableVAE" in err and "NonlinearICA" in err


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: skivae" in out
    assert "demo" in out


@pytest.mark.parametrize(
    "argv",
    [["--bogus"], ["demo", "--bogus"], ["frobnicate"], ["demo", "--n-segments", "x"]],
)
def test_bad_arguments_exit(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: skivae" in capsys.readouterr().err


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    assert "--n-segments" in capsys.readouterr().out


def test_demo_plot_writes_a_png_with_one_row_per_model(tmp_path, capsys):
    mpl_image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "demo.png"
    assert main(DEMO + ["--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"Figure of true against recovered sources: {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = mpl_image.imread(path).shape[:2]
    assert height > width  # four rows of models, two columns of sources


def test_demo_plot_into_a_missing_directory_fails_before_fitting(tmp_path, capsys):
    path = tmp_path / "nowhere" / "demo.png"
    assert main(DEMO + ["--plot", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("skivae: error: cannot write --plot")
    assert "Simulation" not in captured.out


def test_demo_plot_without_matplotlib(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(DEMO + ["--plot", str(tmp_path / "d.png")]) == 1
    err = capsys.readouterr().err
    assert err == (
        "skivae: error: --plot needs matplotlib, which is not installed: "
        "pip install skivae[plot]\n"
    )
