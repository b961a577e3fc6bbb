"""The ``skivae`` command line."""

import re

import numpy as np
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
    [
        ["--bogus"],
        ["demo", "--bogus"],
        ["frobnicate"],
        ["demo", "--n-segments", "x"],
        # non-positive sizes were tracebacks from the simulator
        ["demo", "--n-segments", "0"],
        ["demo", "--n-sources", "0"],
        ["demo", "--max-iter", "0"],
        ["demo", "--seed", "-1"],
    ],
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


def test_demo_plot_of_an_unknown_type_fails_before_fitting(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(DEMO + ["--plot", str(tmp_path / "demo.txt")]) == 1
    captured = capsys.readouterr()
    assert "give a file name ending in .png" in _error_line_of(captured.err)
    assert "Simulation" not in captured.out


def _error_line_of(err):
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("skivae: error: ")]
    return line


def test_demo_plot_without_matplotlib(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(DEMO + ["--plot", str(tmp_path / "d.png")]) == 1
    err = capsys.readouterr().err
    assert err == (
        "skivae: error: --plot needs matplotlib, which is not installed: "
        "pip install skivae[plot]\n"
    )


# ------------------------------------------------------------ table commands
@pytest.fixture
def table(tmp_path):
    """A CSV with an id column, two observations and a segment-label column."""
    pd = pytest.importorskip("pandas")
    from skivae.datasets import make_nonstationary_sources

    X, u, _ = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    df = pd.DataFrame(X, columns=["alpha", "beta"])
    df.insert(0, "rid", [f"r{i}" for i in range(len(df))])
    df["seg"] = [f"s{k}" for k in u]
    df["t"] = np.linspace(0.0, 1.0, len(df))
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path, df


def _fit_args(table_path, model, *extra):
    return ["fit", str(table_path), "--id", "rid", "--max-iter", "2", "--quiet",
            "--model", str(model), *extra]  # fmt: skip


def test_fit_transform_sample_round_trip(table, tmp_path, capsys):
    import pandas as pd

    from skivae import IdentifiableVAE, load

    path, df = table
    model = tmp_path / "m.skivae"
    assert main(_fit_args(path, model, "--u", "seg", "--seed", "3")) == 0
    est = load(model)
    assert isinstance(est, IdentifiableVAE)
    assert list(est.feature_names_in_) == ["alpha", "beta", "t"]
    assert est.u_type_ == "categorical"
    assert sorted(est.aux_classes_) == [f"s{k}" for k in range(6)]
    assert est.random_state == 3 and est.max_iter == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith("skivae: warning: ") for line in err.splitlines())

    out = tmp_path / "z.csv"
    assert main(["transform", str(path), "--model", str(model), "--output",
                 str(out), "--id", "rid"]) == 0  # fmt: skip
    Z = pd.read_csv(out)
    assert list(Z.columns) == ["rid", "ivae0", "ivae1", "ivae2"]
    assert list(Z["rid"]) == list(df["rid"])
    expected = est.transform(df[["alpha", "beta", "t"]])
    np.testing.assert_allclose(Z[["ivae0", "ivae1", "ivae2"]], expected, rtol=1e-6)
    assert f"Wrote 240 rows x 3 latents to {out}" in capsys.readouterr().out

    synth = tmp_path / "x.csv"
    assert main(["sample", "--model", str(model), "-n", "7", "--u", "s2",
                 "--output", str(synth), "--seed", "1"]) == 0  # fmt: skip
    X_new = pd.read_csv(synth)
    assert list(X_new.columns) == ["alpha", "beta", "t"]
    assert X_new.shape == (7, 3)
    X_ref, _ = est.sample(7, u=np.array(["s2"] * 7), random_state=1)
    np.testing.assert_allclose(X_new.to_numpy(), X_ref, rtol=1e-6)


@pytest.mark.parametrize(
    "method, cls, u_args",
    [("flow", "NonlinearICA", ["--u", "t", "seg"]), ("vae", "IdentifiableVAE", [])],
)
def test_fit_methods(table, tmp_path, capsys, method, cls, u_args):
    from skivae import load

    path, _ = table
    df = __import__("pandas").read_csv(path)
    df["seg"] = df["seg"].str[1:].astype(int)  # numeric, so it can be a covariate
    df.to_csv(path, index=False)
    model = tmp_path / "m"
    argv = _fit_args(path, model, "--method", method, *u_args)
    if method == "vae":
        argv += ["--n-components", "2"]
    assert main(argv) == 0
    est = load(str(model) + ".skivae")  # the suffix is added when missing
    assert type(est).__name__ == cls
    if method == "flow":
        assert est.method == "flow" and est.u_type_ == "continuous"
        assert list(est.feature_names_in_) == ["alpha", "beta"]
    else:
        assert est.aux_encoder_ is None and est.n_components_ == 2
        assert list(est.feature_names_in_) == ["alpha", "beta", "seg", "t"]
    assert "u=None" not in capsys.readouterr().err  # the plain-VAE warning is muted


def _skip_without_pyarrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:  # missing, or built for another numpy
        pytest.skip(f"pyarrow cannot be imported: {exc}")


def test_parquet_round_trip(table, tmp_path):
    _skip_without_pyarrow()
    import pandas as pd

    path, df = table
    pq = tmp_path / "data.parquet"
    df.to_parquet(pq)
    model = tmp_path / "m.skivae"
    assert main(_fit_args(pq, model, "--u", "seg")) == 0
    out = tmp_path / "z.parquet"
    args = ["transform", str(pq), "--model", str(model), "--output", str(out)]
    assert main(args + ["--quiet"]) == 0
    assert list(pd.read_parquet(out).columns) == ["ivae0", "ivae1", "ivae2"]


def _error_line(capsys):
    return _error_line_of(capsys.readouterr().err)


def test_user_errors_give_one_line_and_status_1(table, tmp_path, capsys):
    path, df = table
    model = tmp_path / "m.skivae"
    df.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)  # a header, no rows
    cases = [
        (_fit_args(tmp_path / "none.csv", model, "--u", "seg"), "no such file: "),
        (_fit_args(path, model, "--u", "segment"), "--u: no column 'segment'"),
        (_fit_args(path, model, "--u", "t"), "not numeric: 'seg'"),
        (
            _fit_args(path, model, "--u", "seg", "t"),
            "several --u columns are continuous covariates and must be numeric; "
            "not numeric: 'seg'",
        ),
        (_fit_args(path, model, "--u", "rid"), "'rid' is given to both --u and --id"),
        (_fit_args(tmp_path / "empty.csv", model, "--u", "seg"), "has no rows"),
        (_fit_args(path, model, "--u", "alpha", "alpha"), "more than once"),
        (_fit_args(tmp_path / "d.txt", model, "--u", "seg"), "unsupported file type"),
        (_fit_args(path, tmp_path / "no" / "m", "--u", "seg"), "no directory"),
        (
            [
                "transform",
                str(path),
                "--model",
                str(path),
                "--output",
                str(tmp_path / "z.csv"),
            ],
            "is not a skivae file",
        ),  # fmt: skip
        (
            [
                "transform",
                str(path),
                "--model",
                str(tmp_path / "none.skivae"),
                "--output",
                str(tmp_path / "z.csv"),
            ],
            "no such model file",
        ),  # fmt: skip
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        assert message in _error_line(capsys), argv
    # A wrong --u label when sampling, after a real fit.
    assert main(_fit_args(path, model, "--u", "seg")) == 0
    capsys.readouterr()
    argv = ["sample", "--model", str(model), "-n", "2", "--u", "s9", "--output",
            str(tmp_path / "x.csv")]  # fmt: skip
    assert main(argv) == 1
    assert "'s9' is not a label seen in training" in _error_line(capsys)
    # Transform data that lack a column the model was fitted on.
    df.drop(columns="beta").to_csv(tmp_path / "less.csv", index=False)
    argv = ["transform", str(tmp_path / "less.csv"), "--model", str(model),
            "--output", str(tmp_path / "z.csv")]  # fmt: skip
    assert main(argv) == 1
    assert "no column 'beta'" in _error_line(capsys)
    # A header without rows: "no rows", not "not numeric".
    argv = ["transform", str(tmp_path / "empty.csv"), "--model", str(model),
            "--output", str(tmp_path / "z.csv")]  # fmt: skip
    assert main(argv) == 1
    assert "has no rows" in _error_line(capsys)
    # More rows than memory holds: one line, no MemoryError traceback.
    argv = ["sample", "--model", str(model), "-n", str(10**13), "--u", "s1",
            "--output", str(tmp_path / "x.csv")]  # fmt: skip
    assert main(argv) == 1
    assert "out of memory" in _error_line(capsys)


def test_fit_never_writes_the_model_over_the_data(table, tmp_path, capsys):
    # --model data.csv replaced the CSV with a zip; a directory or an empty
    # name wrote a hidden ".skivae" file.
    path, _ = table
    before = path.read_bytes()
    (tmp_path / "out").mkdir()
    cases = [
        (str(path), "names a table"),
        (str(tmp_path / "m.parquet"), "names a table"),
        ("", "is not a file name"),
        (str(tmp_path / "out") + "/", "is not a file name"),
        (str(tmp_path / "out"), "is not a file name"),
    ]
    for model, message in cases:
        assert main(_fit_args(path, model, "--u", "seg")) == 2, model
        assert message in _error_line(capsys), model
    assert path.read_bytes() == before
    assert not (tmp_path / "out" / ".skivae").exists()
    assert not (tmp_path / "m.parquet").exists()


def test_fit_u_type_reads_an_integer_column_as_a_number(table, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    path, df = table
    df["day"] = np.arange(len(df)) % 40
    df.drop(columns=["seg", "t"]).to_csv(tmp_path / "days.csv", index=False)
    for u_type, expected in [("auto", "categorical"), ("continuous", "continuous")]:
        model = tmp_path / f"{u_type}.skivae"
        argv = _fit_args(tmp_path / "days.csv", model, "--u", "day", "--u-type", u_type)
        assert main(argv) == 0
        from skivae import load

        assert load(model).u_type_ == expected
    # The estimator's Python advice is given as the option.
    df["segf"] = pd.factorize(df["seg"])[0].astype(float)
    df.drop(columns=["seg", "t"]).to_csv(tmp_path / "f.csv", index=False)
    capsys.readouterr()
    assert main(_fit_args(tmp_path / "f.csv", tmp_path / "f", "--u", "segf")) == 0
    err = capsys.readouterr().err
    assert "--u-type categorical" in err and "u_type='categorical'" not in err


def test_usage_errors_give_status_2(table, tmp_path, capsys):
    path, _ = table
    assert main(_fit_args(path, tmp_path / "m", "--method", "gcl")) == 2
    assert _error_line(capsys) == (
        "skivae: error: --method gcl needs the auxiliary variable: --u COLUMN"
    )
    usage = [
        ["fit", str(path), "--u", "seg"],  # no --model
        ["fit", str(path), "--model", "m", "--method", "pca"],
        ["sample", "--model", "m", "-n", "x", "--output", "o.csv"],
    ]
    for argv in usage:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


def test_parquet_without_pyarrow(table, tmp_path, monkeypatch, capsys):
    import sys

    path, _ = table
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    argv = _fit_args(tmp_path / "d.parquet", tmp_path / "m", "--u", "seg")
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    assert main(argv) == 1
    assert _error_line(capsys) == (
        "skivae: error: Parquet files need pyarrow, which is not installed: "
        "pip install pyarrow"
    )


@pytest.mark.parametrize("command", ["fit", "transform", "sample"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--model" in capsys.readouterr().out


# ------------------------------------- --model without .skivae, - for stdin/out
def _transform_args(data, model, output, *extra):
    return ["transform", str(data), "--model", str(model), "--output", str(output),
            *extra]  # fmt: skip


def test_model_name_without_extension_works_for_every_command(table, tmp_path):
    # Fails if transform/sample look only for the name as given (fit writes
    # m.skivae for --model m), or if fit and the loader disagree on the name.
    import pandas as pd

    path, _ = table
    model = tmp_path / "m"
    assert main(_fit_args(path, model, "--u", "seg")) == 0
    assert (tmp_path / "m.skivae").is_file() and not model.exists()
    bare, full = tmp_path / "bare.csv", tmp_path / "full.csv"
    assert main(_transform_args(path, model, bare, "--quiet")) == 0
    assert main(_transform_args(path, f"{model}.skivae", full, "--quiet")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(bare), pd.read_csv(full))
    synth = tmp_path / "x.csv"
    argv = ["sample", "--model", str(model), "-n", "4", "--output", str(synth)]
    assert main(argv + ["--quiet"]) == 0
    assert pd.read_csv(synth).shape == (4, 3)


def test_model_name_as_given_comes_first(table, tmp_path, capsys):
    # Fails if the loader tries the .skivae name first or only, if fit appends
    # .skivae to a name that already has an extension, or if a missing model's
    # error hides which names were tried.
    import shutil

    path, _ = table
    assert main(_fit_args(path, tmp_path / "m.v1", "--u", "seg")) == 0
    assert (tmp_path / "m.v1").is_file()
    assert not (tmp_path / "m.v1.skivae").exists()
    shutil.copy(tmp_path / "m.v1", tmp_path / "plain")  # e.g. est.save("plain")
    (tmp_path / "plain.skivae").write_bytes(b"not a model")  # must not be read
    out = tmp_path / "z.csv"
    assert main(_transform_args(path, tmp_path / "m.v1", out, "--quiet")) == 0
    assert main(_transform_args(path, tmp_path / "plain", out, "--quiet")) == 0
    capsys.readouterr()
    assert main(_transform_args(path, tmp_path / "gone", out)) == 1
    assert _error_line(capsys) == (
        f"skivae: error: no such model file: {tmp_path / 'gone'} "
        f"(nor {tmp_path / 'gone'}.skivae)"
    )


def test_output_dash_writes_only_csv_to_stdout(table, tmp_path, monkeypatch, capsys):
    # Fails if "-" is taken for a file name (a file called "-", or "unsupported
    # file type"), or if the "Wrote ..." line lands on stdout inside the CSV.
    import io

    import pandas as pd

    path, _ = table
    model = tmp_path / "m.skivae"
    assert main(_fit_args(path, model, "--u", "seg")) == 0
    monkeypatch.chdir(tmp_path)
    ref = tmp_path / "z.csv"
    assert main(_transform_args(path, model, ref, "--id", "rid", "--quiet")) == 0
    capsys.readouterr()
    assert main(_transform_args(path, model, "-", "--id", "rid")) == 0
    captured = capsys.readouterr()
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(captured.out)),
                                  pd.read_csv(ref))  # fmt: skip
    assert "Wrote 240 rows x 3 latents to standard output" in captured.err
    argv = ["sample", "--model", str(model), "-n", "5", "--seed", "2", "--output"]
    assert main(argv + ["-"]) == 0
    captured = capsys.readouterr()
    synth = pd.read_csv(io.StringIO(captured.out))
    assert list(synth.columns) == ["alpha", "beta", "t"] and synth.shape == (5, 3)
    assert "Wrote 5 sampled rows to standard output" in captured.err
    assert main(argv + [str(tmp_path / "x.csv"), "--quiet"]) == 0
    np.testing.assert_allclose(synth, pd.read_csv(tmp_path / "x.csv"), rtol=1e-6)
    assert not (tmp_path / "-").exists()


def test_dash_reads_data_from_stdin(table, tmp_path, monkeypatch, capsys):
    # Fails if "-" is looked up as a file ("no such file: -", "unsupported file
    # type"), or if stdin is read some other way than as the CSV DATA.
    import io

    import pandas as pd

    from skivae import load

    path, df = table
    text = path.read_text()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert main(_fit_args("-", "m", "--u", "seg")) == 0
    est = load(tmp_path / "m.skivae")
    assert list(est.feature_names_in_) == ["alpha", "beta", "t"]
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    out = tmp_path / "z.csv"
    assert main(_transform_args("-", "m", out, "--id", "rid", "--quiet")) == 0
    Z = pd.read_csv(out)
    assert list(Z["rid"]) == list(df["rid"])
    expected = est.transform(df[["alpha", "beta", "t"]])
    np.testing.assert_allclose(Z[["ivae0", "ivae1", "ivae2"]], expected, rtol=1e-6)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(_transform_args("-", "m", out)) == 1
    assert "cannot read standard input as CSV" in _error_line(capsys)


def test_console_script_pipes_with_a_bare_model_name(table, tmp_path):
    # The installed command end to end: CSV in through stdin, out through stdout,
    # one --model value without the extension for all three commands. Fails if
    # progress bars, warnings or the summary line reach stdout, if the stdin or
    # stdout streams are mishandled outside pytest, or on the bare-name bug.
    import io
    import os
    import subprocess
    import sys

    import pandas as pd

    path, df = table
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def skivae(*argv, stdin=""):
        done = subprocess.run(
            [sys.executable, "-m", "skivae", *argv], input=stdin, cwd=tmp_path,
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout

    text = path.read_text()
    # No --quiet: the progress bar and the summary line must not disturb anything.
    skivae("fit", "-", "--u", "seg", "--id", "rid", "--max-iter", "2", "--model",
           "m", stdin=text)  # fmt: skip
    assert (tmp_path / "m.skivae").is_file()
    out = skivae("transform", "-", "--model", "m", "--id", "rid", "--output", "-",
                 stdin=text)  # fmt: skip
    Z = pd.read_csv(io.StringIO(out))
    assert list(Z.columns) == ["rid", "ivae0", "ivae1", "ivae2"]
    assert list(Z["rid"]) == list(df["rid"])
    out = skivae("sample", "--model", "m", "-n", "3", "--u", "s1", "--output", "-")
    assert list(pd.read_csv(io.StringIO(out)).columns) == ["alpha", "beta", "t"]
    assert len(out.splitlines()) == 4  # header and three rows, nothing else


# ------------------------------------------------------------------ empty cells
def test_empty_cells_through_the_installed_command(tmp_path, capsys):
    # A CSV with empty cells: the iVAE fits on the observed cells and
    # transforms partial rows through the installed ``skivae`` command
    # (``python -m skivae`` where the script is not on PATH), so a traceback
    # or a message lost between the estimator and the terminal fails it; the
    # flow refuses with one line naming the remedy (``main`` in this process:
    # the same code path after the entry point, without a third start-up).
    import os
    import shutil
    import subprocess
    import sys

    pd = pytest.importorskip("pandas")
    from skivae.datasets import make_nonstationary_sources

    X, u, _ = make_nonstationary_sources(
        6, 40, 2, n_features=3, n_layers=1, random_state=0
    )
    X[np.random.RandomState(0).rand(*X.shape) < 0.15] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    df["seg"] = u
    df.to_csv(tmp_path / "gaps.csv", index=False)
    assert ",," in (tmp_path / "gaps.csv").read_text()  # really empty cells
    script = shutil.which("skivae")
    command = [script] if script else [sys.executable, "-m", "skivae"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def skivae(*argv):
        return subprocess.run(
            [*command, *argv], cwd=tmp_path, capture_output=True, text=True,
            env=env, check=False,
        )  # fmt: skip

    done = skivae("fit", "gaps.csv", "--u", "seg", "--max-iter", "2", "--quiet",
                  "--model", "m")  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = skivae("transform", "gaps.csv", "--model", "m", "--output", "-")
    assert done.returncode == 0, done.stderr
    Z = pd.read_csv(__import__("io").StringIO(done.stdout))
    assert Z.shape == (len(df), 3) and np.isfinite(Z.to_numpy()).all()
    capsys.readouterr()
    status = main(["fit", str(tmp_path / "gaps.csv"), "--u", "seg", "--method",
                   "flow", "--quiet", "--model", str(tmp_path / "f")])  # fmt: skip
    assert status == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("skivae: error: the data have")
    assert "--method ivae" in line and "empty cell" in line


# --------------------------------------------- ordered rows, splines of u
def test_fit_with_ar_order_and_groups(table, tmp_path, capsys):
    # The table's rows as two sequences (the parity of their number): the
    # model must remember 1 row, read the groups column as the sequences
    # (not as an observation) and score like the same fit in Python.
    import pandas as pd

    from skivae import NonlinearICA, load

    path, df = table
    df = df.drop(columns="seg").assign(seq=np.arange(len(df)) % 2)
    df.to_csv(path, index=False)
    model = tmp_path / "ar"
    argv = _fit_args(path, model, "--method", "flow", "--ar-order", "1",
                     "--groups", "seq", "--prior", "laplace")  # fmt: skip
    assert main(argv) == 0
    est = load(str(model) + ".skivae")
    assert est.ar_order == 1 and est.prior == "laplace" and est.aux_encoder_ is None
    assert list(est.feature_names_in_) == ["alpha", "beta", "t"]
    # The reference reads the CSV as the command does: the text round trip
    # may move a float's last bit (older pandas parse it differently).
    df = pd.read_csv(path)
    X = df.drop(columns=["rid", "seq"])
    ref = NonlinearICA(ar_order=1, prior="laplace", max_iter=2, random_state=0)
    ref.fit(X, groups=df["seq"].to_numpy())
    expected = ref.score(X, groups=df["seq"])
    assert est.score(X, groups=df["seq"]) == pytest.approx(expected, rel=1e-9)
    # and the groups matter: the rows as one sequence score differently
    assert ref.score(X, groups=np.zeros(len(X))) != pytest.approx(expected, rel=1e-6)
    out = tmp_path / "z.csv"
    assert main(["transform", str(path), "--model", str(model), "--output",
                 str(out), "--id", "rid", "--quiet"]) == 0  # fmt: skip
    assert pd.read_csv(out).shape == (len(df), 1 + est.n_components_)


def test_fit_with_spline_expanded_u(table, tmp_path):
    from skivae import load

    path, df = table
    df.drop(columns="seg").to_csv(path, index=False)
    model = tmp_path / "sp"
    argv = _fit_args(path, model, "--method", "flow", "--u", "t", "--u-splines", "5")
    assert main(argv) == 0
    est = load(str(model) + ".skivae")
    assert est.aux_transformer.get_params()["n_knots"] == 5
    assert est.u_type_ == "continuous" and est.n_aux_ == 7  # 5 knots, degree 3
    # sample --u takes the raw covariate (one number), not its 7 spline columns.
    out = tmp_path / "x.csv"
    argv = ["sample", "--model", str(model), "-n", "3", "--u", "0.3", "--quiet",
            "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    pd = pytest.importorskip("pandas")
    assert pd.read_csv(out).shape == (3, 2)
    argv[argv.index("0.3") : argv.index("0.3") + 1] = ["0.3", "0.5"]
    assert main(argv) == 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--u", "seg", "--groups", "seg"], "--groups marks the sequences"),
        (["--method", "tcl", "--u", "seg", "--ar-order", "1"], "--ar-order needs"),
        (["--u", "seg", "--ar-order", "-1"], "--ar-order must be 0 or more"),
        (["--u-splines", "4"], "--u-splines K needs"),
        (["--method", "flow"], "(or --ar-order R for rows in time order)"),
    ],
)
def test_ordered_and_spline_usage_errors(table, tmp_path, capsys, extra, message):
    path, _ = table
    assert main(_fit_args(path, tmp_path / "m", *extra)) == 2
    assert message in _error_line(capsys)
