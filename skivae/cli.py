"""Command-line front end (``skivae ...`` or ``python -m skivae ...``).

Commands:

``skivae demo``
    Fit the identifiable flow, the iVAE, a plain VAE and FastICA on the
    paper's simulation and print their MCC (``--plot FILE``: a PNG of the
    true against the recovered sources).
``skivae fit DATA --u COLUMN [COLUMN ...] --model OUT``
    Fit an estimator on a CSV or Parquet table: the ``--u`` columns are the
    auxiliary variable, the other numeric columns the observations.
``skivae transform DATA --model M --output OUT``
    Write the latent features of a table's rows.
``skivae sample --model M -n N --output OUT``
    Write rows drawn from a fitted generative model.

``DATA`` may be ``-`` (CSV on standard input) and ``--output`` may be ``-``
(CSV on standard output; the summary line then goes to stderr). ``fit`` writes
``--model OUT`` as given when it has an extension, else ``OUT.skivae``;
``transform`` and ``sample`` read ``--model M`` when that file exists, else
``M.skivae``, so one ``--model`` value serves all three commands.

The CLI only parses arguments and calls the public API. Exit status: 0 on
success, 2 on bad usage (argparse), 1 on a failed run, with one line
``skivae: error: ...`` on stderr.
"""

import argparse
import contextlib
import os
import sys
import time
import warnings
from functools import partial

_METHODS = ("ivae", "flow", "tcl", "gcl", "vae")
_TABLE_TYPES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MODEL_SUFFIX = ".skivae"
_STDIO = "-"  # DATA: CSV from standard input; --output: CSV to standard output


class _UserError(Exception):
    """A failure the user can fix (bad file, column, model): one line, exit 1."""

    exit_status = 1


class _UsageError(_UserError):
    """Arguments that do not go together: one line, exit 2 (as argparse)."""

    exit_status = 2


def _check_plot_target(path):
    """Fail before any fitting when the figure cannot be written."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError:
        raise _UserError(
            "--plot needs matplotlib, which is not installed: pip install skivae[plot]"
        ) from None
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _UserError(f"cannot write --plot {path}: no directory {parent}")
    kinds = Figure().canvas.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in kinds:
        raise _UserError(
            f"cannot write --plot {path}: give a file name ending in .png (or "
            f"{', '.join('.' + k for k in sorted(kinds) if k != 'png')})"
        )


def _int_at_least(low):
    """An argparse type: an integer >= ``low`` (a one-line usage error else)."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low} or more, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _plot_demo(path, S, estimates):
    """A PNG with one row per model: each true source against its match."""
    from matplotlib.figure import Figure

    from skivae.plotting import plot_sources

    n_rows, n_cols = len(estimates), S.shape[1]
    fig = Figure(figsize=(max(2.6 * n_cols, 7.0), 2.3 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row, (name, mcc, Z) in enumerate(estimates):
        plot_sources(S, Z, axes=axes[row], s=1, alpha=0.3, random_state=0)
        for col, ax in enumerate(axes[row]):
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_fontsize(8)
            ax.yaxis.label.set_fontsize(8)
            ax.title.set_fontsize(7)
            if col == 0:
                ax.set_ylabel(f"{name}\nMCC {mcc:.3f}\n\n{ax.get_ylabel()}")
                ax.yaxis.label.set_fontsize(9)
            if row < n_rows - 1:
                ax.set_xlabel("")
    fig.suptitle(
        "True sources (x) against the matched recovered components (y)", fontsize=10
    )
    try:
        fig.savefig(path, dpi=100)
    except (OSError, ValueError) as exc:
        raise _UserError(f"cannot write --plot {path}: {exc}") from None


def _demo_models(args, u):
    """The demo's ``(name, estimator, auxiliary variable)`` triples."""
    from sklearn.decomposition import FastICA

    from skivae import IdentifiableVAE, NonlinearICA

    common = dict(random_state=args.seed, verbose=not args.quiet)
    if args.max_iter is not None:
        common["max_iter"] = args.max_iter
    return (
        ("identifiable flow", NonlinearICA(**common), u),
        ("iVAE (with u)", IdentifiableVAE(**common), u),
        ("plain VAE (no u)", IdentifiableVAE(**common), None),
        ("FastICA (linear)", FastICA(random_state=args.seed, max_iter=1000), None),
    )


def _fit_demo_models(models, X, S):
    """Fit each model; rows of ``(name, MCC, seconds, recovered sources)``."""
    from sklearn.exceptions import ConvergenceWarning

    from skivae.metrics import mean_corr_coef

    rows = []
    for name, est, aux in models:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            Z = est.fit(X, aux).transform(X)
        seconds = time.perf_counter() - t0
        rows.append((name, mean_corr_coef(S, Z), seconds, Z))
    return rows


def _demo(args):
    from skivae.datasets import make_nonstationary_sources

    if args.plot is not None:
        _check_plot_target(args.plot)
    X, u, S = _run(
        partial(
            make_nonstationary_sources,
            n_layers=args.n_layers,
            random_state=args.seed,
        ),
        args.n_segments,
        args.n_per_segment,
        args.n_sources,
    )
    print(
        f"Simulation: {args.n_segments} segments x {args.n_per_segment} points, "
        f"{args.n_sources} sources mixed by a {args.n_layers}-layer MLP "
        f"(X: {X.shape[0]} x {X.shape[1]}), u = segment index.",
        flush=True,
    )
    rows = _fit_demo_models(_demo_models(args, u), X, S)
    print()
    print(f"{'model':<20}{'MCC':>8}{'fit seconds':>14}")
    for name, mcc, seconds, _ in rows:
        print(f"{name:<20}{mcc:>8.3f}{seconds:>14.1f}")
    print(
        "\nMCC: mean absolute correlation between true and recovered sources after "
        "the best matching (1.0 = perfect)."
    )
    if args.plot is not None:
        _plot_demo(args.plot, S, [(name, mcc, Z) for name, mcc, _, Z in rows])
        print(f"Figure of true against recovered sources: {args.plot}")
    return 0


# ------------------------------------------------------------- table commands
def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise _UserError(
            "reading and writing tables needs pandas: pip install skivae[cli]"
        ) from None
    return pd


def _table_type(path, what):
    kind = _TABLE_TYPES.get(os.path.splitext(str(path))[1].lower())
    if kind is None:
        raise _UserError(f"{what} {path}: unsupported file type; use .csv or .parquet")
    return kind


def _parquet_engine():
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        raise _UserError(
            "Parquet files need pyarrow, which is not installed: pip install pyarrow"
        ) from None
    except ImportError as exc:  # installed but unusable, e.g. built for numpy 2
        raise _UserError(
            f"Parquet files need pyarrow, which cannot be imported ({exc}); "
            "reinstall a pyarrow that matches your numpy, or use .csv"
        ) from None


def _read_table(path):
    """The table at ``path``; ``-`` reads CSV from standard input."""
    if path == _STDIO:
        pd = _pandas()
        try:
            return pd.read_csv(sys.stdin)
        except Exception as exc:  # empty or malformed input: one line
            raise _UserError(f"cannot read standard input as CSV: {exc}") from None
    kind = _table_type(path, "DATA")
    pd = _pandas()
    if not os.path.isfile(path):
        raise _UserError(f"no such file: {path}")
    if kind == "parquet":
        _parquet_engine()
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except Exception as exc:  # a malformed file: say which, without a traceback
        raise _UserError(f"cannot read {path}: {exc}") from None


def _check_output(path):
    """Fail before any work when ``--output`` has an unsupported type."""
    if path != _STDIO:
        _table_type(path, "--output")


def _write_stdout(df):
    """CSV on standard output; a reader that stops early (``| head``) is fine."""
    try:
        df.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
    except BrokenPipeError:
        # Point stdout at devnull so that the flush at exit does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _write_table(df, path):
    if path == _STDIO:
        _write_stdout(df)
        return
    kind = _table_type(path, "--output")
    if kind == "parquet":
        _parquet_engine()
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _UserError(f"cannot write {path}: no directory {parent}")
    try:
        if kind == "csv":
            df.to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
    except OSError as exc:
        raise _UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def _check_columns(df, columns, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise _UserError(
            f"{what}: no column {', '.join(map(repr, missing))} in the data; its "
            f"columns are {', '.join(map(repr, map(str, df.columns)))}"
        )


def _observations(df, columns):
    """The numeric block ``df[columns]``; non-numeric columns are an error."""
    pd = _pandas()
    X = df[list(columns)]
    bad = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if bad:
        raise _UserError(
            "the observation columns must be numeric; not numeric: "
            + ", ".join(map(repr, bad))
            + " (pass labels with --u, an identifier with --id)"
        )
    if X.shape[1] == 0:
        raise _UserError("no observation columns left after --u and --id")
    return X


@contextlib.contextmanager
def _warnings_to_stderr():
    """Show each warning as one line ``skivae: warning: ...`` on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen = set()
            for w in caught:
                message = _cli_message(w.message)
                if message not in seen:
                    seen.add(message)
                    print(f"skivae: warning: {message}", file=sys.stderr)


#: the Python advice in estimator messages, as the command line says it
_CLI_ADVICE = (
    ("u_type='continuous'", "--u-type continuous"),
    ("u_type='categorical'", "--u-type categorical"),
)


def _cli_message(text):
    """One line, with the estimator's Python advice in command-line terms."""
    text = " ".join(str(text).split())
    for python, cli in _CLI_ADVICE:
        text = text.replace(python, cli)
    return text


def _run(fn, *args):
    """Call the estimator; its ValueErrors (bad data, bad model) are user errors."""
    try:
        return fn(*args)
    except ValueError as exc:
        raise _UserError(_cli_message(exc)) from None


def _model_to_write(path):
    """fit's ``--model``: as given with an extension, else with ``.skivae``;
    never the data, a table, a directory or an empty name (a model file
    silently replaced the CSV it was fitted on)."""
    base = os.path.basename(path)
    if not base or base in (".", "..") or os.path.isdir(path):
        raise _UsageError(
            f"--model {path!r} is not a file name; give one, e.g. --model model"
        )
    if os.path.splitext(path)[1].lower() in _TABLE_TYPES:
        raise _UsageError(
            f"--model {path} names a table; the model is a .skivae file (e.g. "
            f"--model {os.path.splitext(path)[0]})"
        )
    # (DATA is a table, so --model cannot name it now)
    return path if os.path.splitext(path)[1] else path + _MODEL_SUFFIX


def _load_model(path):
    """transform's and sample's ``--model``: as given, else with ``.skivae``."""
    from skivae import load

    candidates = [path]
    if not path.endswith(_MODEL_SUFFIX):
        candidates.append(path + _MODEL_SUFFIX)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return _run(load, candidate)
    tried = f" (nor {candidates[1]})" if len(candidates) > 1 else ""
    raise _UserError(f"no such model file: {path}{tried}")


def _summary(args, message):
    """The closing line: stdout, or stderr when stdout carries the table."""
    if not args.quiet:
        stream = sys.stderr if getattr(args, "output", None) == _STDIO else sys.stdout
        print(message, file=stream)


def _fit_inputs(args):
    """The observations ``X``, the auxiliary variable ``u`` and its columns."""
    df = _read_table(args.data)
    if len(df) == 0:
        raise _UserError(f"the table {_input_name(args.data)} has no rows")
    aux = list(args.u or [])
    repeated = sorted({c for c in aux if aux.count(c) > 1})
    if repeated:
        raise _UserError(f"--u names column {repeated[0]!r} more than once")
    ignored = [args.id] if args.id is not None else []
    groups = [args.groups] if args.groups is not None else []
    _check_columns(df, aux, "--u")
    _check_columns(df, ignored, "--id")
    _check_columns(df, groups, "--groups")
    _check_distinct_roles(aux, ignored, groups)
    X = _observations(df, [c for c in df.columns if c not in aux + ignored + groups])
    _check_empty_cells(X, args.method)
    u = None
    if args.method != "vae" and aux:
        u = df[aux[0]].to_numpy() if len(aux) == 1 else _covariates(df, aux)
    return X, u, aux, (df[groups[0]].to_numpy() if groups else None)


def _input_name(path):
    return "on standard input" if path == _STDIO else path


def _check_distinct_roles(aux, ignored, groups):
    """One column, one role: ``--u``, ``--id`` and ``--groups`` must differ."""
    roles = [("--u", c) for c in aux] + [("--id", c) for c in ignored]
    roles += [("--groups", c) for c in groups]
    seen = {}
    for option, column in roles:
        if column in seen and seen[column] != option:
            raise _UserError(
                f"column {column!r} is given to both {seen[column]} and {option}; "
                "give each option its own column"
            )
        seen.setdefault(column, option)


def _covariates(df, aux):
    """Several ``--u`` columns: continuous covariates, all numeric."""
    pd = _pandas()
    bad = [str(c) for c in aux if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise _UserError(
            "several --u columns are continuous covariates and must be numeric; "
            f"not numeric: {', '.join(map(repr, bad))}. Give a column of labels "
            "as the only --u column, or encode it as numbers"
        )
    return df[aux].to_numpy(float)


def _check_empty_cells(X, method):
    """Empty cells: the iVAE trains on the observed ones, the others need
    complete rows (one line naming the remedy)."""
    empty = X.isna().to_numpy()
    if method in ("ivae", "vae") or not empty.any():
        return
    raise _UserError(
        f"the data have {int(empty.sum())} empty cell(s) in "
        f"{int(empty.any(axis=1).sum())} row(s), but --method {method} needs "
        "complete rows: use --method ivae (it trains on the observed cells) "
        "or fill the empty cells first"
    )


def _estimator(args):
    from skivae import IdentifiableVAE, NonlinearICA

    params = dict(
        n_components=args.n_components,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    )
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    if args.ar_order:
        params["ar_order"] = args.ar_order
    if args.prior is not None:
        params["prior"] = args.prior
    if args.u_type != "auto":
        params["u_type"] = args.u_type
    if args.u_splines is not None:
        from sklearn.preprocessing import SplineTransformer

        params["aux_transformer"] = SplineTransformer(n_knots=args.u_splines)
    if args.method in ("ivae", "vae"):
        return IdentifiableVAE(**params)
    return NonlinearICA(method=args.method, **params)


def _check_fit_options(args):
    """The option combinations ``fit`` refuses before reading the data."""
    memory = args.ar_order and args.method in ("flow", "ivae")
    if args.u_splines is not None and (args.u_splines < 2 or not args.u):
        raise _UsageError(
            "--u-splines K needs K >= 2 and numeric --u columns (coordinates or "
            "times) to expand"
        )
    if args.method != "vae" and not args.u and not memory:
        raise _UsageError(
            f"--method {args.method} needs the auxiliary variable: --u COLUMN"
            + (
                " (or --ar-order R for rows in time order)"
                if args.method in ("flow", "ivae")
                else ""
            )
        )
    if args.ar_order < 0:
        raise _UsageError(f"--ar-order must be 0 or more, got {args.ar_order}")
    if args.ar_order and args.method not in ("flow", "ivae", "vae"):
        raise _UsageError(
            f"--ar-order needs --method flow or ivae (a model with a prior), "
            f"not {args.method}"
        )
    if args.groups is not None and not args.ar_order:
        raise _UsageError(
            "--groups marks the sequences of rows in time order: use it with "
            "--ar-order R"
        )


def _fit_summary(args, est, X, u, aux):
    if args.method in ("flow", "tcl", "gcl"):
        kind = f"(method={args.method!r})"
    elif args.method == "vae":
        kind = " without u (plain VAE)"
    else:
        kind = ""
    n, d = X.shape
    return (
        f"Fitted {type(est).__name__}{kind} on {n} rows x {d} observation columns"
        + (f", u = {', '.join(aux)}" if u is not None else "")
        + (f", ar_order={args.ar_order}" if args.ar_order else "")
        + (f" within --groups {args.groups}" if args.groups is not None else "")
        + f"; {est.n_components_} components; model written to {args.model}"
    )


def _fit(args):
    _check_fit_options(args)
    args.model = _model_to_write(args.model)
    parent = os.path.dirname(os.path.abspath(args.model))
    if not os.path.isdir(parent):
        raise _UserError(f"cannot write --model {args.model}: no directory {parent}")
    X, u, aux, groups = _fit_inputs(args)
    est = _estimator(args)
    with _warnings_to_stderr():
        if args.method == "vae":
            warnings.filterwarnings("ignore", "IdentifiableVAE.fit got u=None")
        if groups is None:
            _run(est.fit, X, u)
        else:
            _run(partial(est.fit, groups=groups), X, u)
    try:
        est.save(args.model)
    except OSError as exc:
        raise _UserError(
            f"cannot write --model {args.model}: {exc.strerror or exc}"
        ) from None
    _summary(args, _fit_summary(args, est, X, u, aux))
    return 0


def _feature_columns(est, df, id_column):
    names = getattr(est, "feature_names_in_", None)
    if names is not None:
        _check_columns(df, list(names), "the model's observation columns")
        return list(names)
    columns = [c for c in df.columns if c != id_column]
    if len(columns) != est.n_features_in_:
        raise _UserError(
            f"the model was fitted on {est.n_features_in_} unnamed columns; the "
            f"data has {len(columns)} (besides --id)"
        )
    return columns


def _output_name(path):
    return "standard output" if path == _STDIO else path


def _transform(args):
    pd = _pandas()
    _check_output(args.output)
    est = _load_model(args.model)
    df = _read_table(args.data)
    if len(df) == 0:
        raise _UserError(f"the table {_input_name(args.data)} has no rows")
    if args.id is not None:
        _check_columns(df, [args.id], "--id")
    X = _observations(df, _feature_columns(est, df, args.id))
    with _warnings_to_stderr():
        Z = _run(est.transform, X)
    out = pd.DataFrame(Z, columns=list(est.get_feature_names_out()), index=df.index)
    if args.id is not None:
        out.insert(0, args.id, df[args.id])
    _write_table(out, args.output)
    _summary(
        args,
        f"Wrote {out.shape[0]} rows x {Z.shape[1]} latents to "
        f"{_output_name(args.output)}",
    )
    return 0


def _parse_u(est, values):
    """The ``--u`` strings as one row of the model's auxiliary variable."""
    import numpy as np

    enc_type = getattr(est, "u_type_", None)
    if enc_type is None:
        raise _UserError("this model was fitted without u (plain VAE): drop --u")
    if enc_type == "categorical":
        if len(values) != 1:
            raise _UserError(f"--u takes one label for this model, got {len(values)}")
        classes = est.aux_classes_
        matches = [c for c in classes if str(c) == values[0]]
        if not matches:
            shown = ", ".join(str(c) for c in classes[:20])
            raise _UserError(
                f"--u {values[0]!r} is not a label seen in training ({shown}"
                + (", ..." if len(classes) > 20 else "")
                + ")"
            )
        return np.asarray(matches[:1], dtype=classes.dtype)
    # With --u-splines the model expands its covariates: --u gives the raw ones.
    transformer = getattr(est.aux_encoder_, "transformer_", None)
    n_raw = getattr(transformer, "n_features_in_", est.n_aux_)
    if len(values) != n_raw:
        raise _UserError(
            f"--u takes {n_raw} number(s) for this model, got {len(values)}"
        )
    try:
        return np.asarray([[float(v) for v in values]])
    except ValueError:
        raise _UserError(
            f"--u values must be numbers, got {' '.join(values)}"
        ) from None


def _sample(args):
    import numpy as np

    pd = _pandas()
    _check_output(args.output)
    if args.n_samples < 1:
        raise _UsageError(f"-n must be a positive integer, got {args.n_samples}")
    est = _load_model(args.model)
    if not hasattr(est, "sample"):
        raise _UserError(
            f"this {type(est).__name__}(method={getattr(est, 'method', None)!r}) "
            "model has no generative model to sample from (use method ivae, vae "
            "or flow)"
        )
    u = None
    if args.u is not None:
        row = _parse_u(est, args.u)
        u = np.repeat(row, args.n_samples, axis=0)
    with _warnings_to_stderr():
        X, _ = _run(est.sample, args.n_samples, u, args.seed)
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        names = [f"x{i}" for i in range(X.shape[1])]
    out = pd.DataFrame(X, columns=[str(c) for c in names])
    _write_table(out, args.output)
    _summary(args, f"Wrote {out.shape[0]} sampled rows to {_output_name(args.output)}")
    return 0


_DATA_HELP = "input table (.csv or .parquet; - reads CSV from standard input)"
_OUTPUT_HELP = "output table (.csv or .parquet; - writes CSV to standard output)"
_MODEL_IN_HELP = (
    "a model written by skivae fit: M if that file exists, else M.skivae (so the "
    "--model given to fit works here, with or without the extension)"
)


def _add_demo_parser(sub):
    demo = sub.add_parser(
        "demo",
        help=(
            "fit the identifiable flow, the iVAE, a plain VAE and FastICA on the "
            "paper's simulation and print MCC and seconds"
        ),
    )
    demo.add_argument("--n-segments", type=_int_at_least(1), default=40)
    demo.add_argument("--n-per-segment", type=_int_at_least(1), default=1000)
    demo.add_argument("--n-sources", type=_int_at_least(1), default=5)
    demo.add_argument("--n-layers", type=_int_at_least(1), default=3)
    demo.add_argument(
        "--max-iter",
        type=_int_at_least(1),
        default=None,
        help="epochs (default: each estimator's)",
    )
    demo.add_argument("--seed", type=_int_at_least(0), default=1)
    demo.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="write a PNG of the true against the recovered sources of each model",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_fit_parser(sub):
    fit = sub.add_parser(
        "fit",
        help="fit an estimator on a CSV or Parquet table and save it",
        description=(
            "Fit an estimator on a table (.csv, or .parquet with pyarrow). The --u "
            "columns are the auxiliary variable: one column of labels (segments, "
            "classes) or several numeric columns (continuous covariates). Every "
            "other column but --id is an observation and must be numeric."
        ),
    )
    fit.add_argument("data", metavar="DATA", help=_DATA_HELP)
    fit.add_argument(
        "--u",
        nargs="+",
        metavar="COLUMN",
        help="auxiliary-variable column(s); not needed with --method vae",
    )
    fit.add_argument(
        "--method",
        choices=_METHODS,
        default="ivae",
        help=(
            "ivae: IdentifiableVAE (default); vae: IdentifiableVAE fitted without "
            "u (the non-identifiable baseline; --u columns are dropped); flow, "
            "tcl, gcl: NonlinearICA(method=...)"
        ),
    )
    fit.add_argument(
        "--n-components",
        type=int,
        default=None,
        metavar="K",
        help="latent components (default: the number of observation columns)",
    )
    fit.add_argument("--max-iter", type=int, default=None, metavar="N", help="epochs")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random_state")
    fit.add_argument("--id", metavar="COLUMN", help="a column to leave out (row ids)")
    fit.add_argument(
        "--ar-order",
        type=int,
        default=0,
        metavar="R",
        help=(
            "rows are in time order: the latent prior remembers the R previous "
            "rows of each sequence (ar_order; flow, ivae); --u is then optional "
            "(use --prior laplace without it)"
        ),
    )
    fit.add_argument(
        "--groups",
        metavar="COLUMN",
        help="with --ar-order: the sequence of each row (default: one sequence)",
    )
    fit.add_argument(
        "--prior",
        choices=("gaussian", "gaussian_var", "laplace"),
        default=None,
        help="the latent prior's family (default: the estimator's)",
    )
    fit.add_argument(
        "--u-type",
        choices=("auto", "categorical", "continuous"),
        default="auto",
        help=(
            "how --u is read (u_type): auto reads one column of integers or "
            "text as labels and floats as a covariate; continuous reads an "
            "integer column (a day, a position) as a number"
        ),
    )
    fit.add_argument(
        "--u-splines",
        type=int,
        default=None,
        metavar="K",
        help=(
            "expand the numeric --u columns (coordinates, times) into cubic "
            "B-splines with K knots each (aux_transformer=SplineTransformer)"
        ),
    )
    fit.add_argument(
        "--model",
        required=True,
        metavar="OUT",
        help=(
            "model file to write: OUT as given when it has an extension, else "
            "OUT.skivae (--model m writes m.skivae; transform and sample accept "
            "either name)"
        ),
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_transform_parser(sub):
    transform = sub.add_parser(
        "transform",
        help="write the latent features of a table's rows",
        description=(
            "Write the latents of each row (the model's transform) to a table "
            "whose columns are named by get_feature_names_out (ivae0, ... or "
            "nica0, ...). The observation columns are found by name."
        ),
    )
    transform.add_argument("data", metavar="DATA", help=_DATA_HELP)
    transform.add_argument("--model", required=True, metavar="M", help=_MODEL_IN_HELP)
    transform.add_argument("--output", required=True, metavar="OUT", help=_OUTPUT_HELP)
    transform.add_argument(
        "--id", metavar="COLUMN", help="copy this column into the output, first"
    )
    transform.add_argument("--quiet", action="store_true", help="no summary line")


def _add_sample_parser(sub):
    sample = sub.add_parser(
        "sample",
        help="write rows drawn from a fitted generative model",
        description=(
            "Draw rows from the model (z ~ p(z|u), then x ~ p(x|z)), with the "
            "observation columns' original names."
        ),
    )
    sample.add_argument("--model", required=True, metavar="M", help=_MODEL_IN_HELP)
    sample.add_argument(
        "-n",
        "--n-samples",
        type=int,
        required=True,
        metavar="N",
        help="number of rows",
    )
    sample.add_argument(
        "--u",
        nargs="+",
        metavar="VALUE",
        help=(
            "condition on this value of u: a training label, or one number per "
            "u column (default: u drawn like the training data; a model "
            "fitted with --ar-order and --u needs it)"
        ),
    )
    sample.add_argument("--seed", type=int, default=0, metavar="S", help="seed")
    sample.add_argument("--output", required=True, metavar="OUT", help=_OUTPUT_HELP)
    sample.add_argument("--quiet", action="store_true", help="no summary line")


def _parser():
    parser = argparse.ArgumentParser(
        prog="skivae", description="Identifiable VAEs and nonlinear ICA."
    )
    sub = parser.add_subparsers(dest="command")
    for add in (
        _add_demo_parser,
        _add_fit_parser,
        _add_transform_parser,
        _add_sample_parser,
    ):
        add(sub)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except _UserError as exc:
        print(f"skivae: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except MemoryError:
        print(
            "skivae: error: out of memory; ask for fewer rows (-n) or use a "
            "smaller table",
            file=sys.stderr,
        )
        return 1


_COMMANDS = {"demo": _demo, "fit": _fit, "transform": _transform, "sample": _sample}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
