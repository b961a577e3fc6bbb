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
