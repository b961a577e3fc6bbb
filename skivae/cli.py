"""Command-line front end: ``skivae demo`` (also ``python -m skivae demo``).

The CLI only parses arguments and calls the public API.
"""

import argparse
import os
import sys
import time
import warnings


class _UserError(Exception):
    """A failure the user can fix (bad file, column, model): one line, exit 1."""


def _check_plot_target(path):
    """Fail before any fitting when the figure cannot be written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise _UserError(
            "--plot needs matplotlib, which is not installed: pip install skivae[plot]"
        ) from None
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _UserError(f"cannot write --plot {path}: no directory {parent}")


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


def _demo(args):
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    if args.plot is not None:
        _check_plot_target(args.plot)
    X, u, S = make_nonstationary_sources(
        args.n_segments,
        args.n_per_segment,
        args.n_sources,
        n_layers=args.n_layers,
        random_state=args.seed,
    )
    print(
        f"Simulation: {args.n_segments} segments x {args.n_per_segment} points, "
        f"{args.n_sources} sources mixed by a {args.n_layers}-layer MLP "
        f"(X: {X.shape[0]} x {X.shape[1]}), u = segment index.",
        flush=True,
    )
    common = dict(random_state=args.seed, verbose=not args.quiet)
    if args.max_iter is not None:
        common["max_iter"] = args.max_iter
    models = (
        ("identifiable flow", NonlinearICA(**common), u),
        ("iVAE (with u)", IdentifiableVAE(**common), u),
        ("plain VAE (no u)", IdentifiableVAE(**common), None),
        ("FastICA (linear)", FastICA(random_state=args.seed, max_iter=1000), None),
    )
    rows = []
    for name, est, aux in models:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            Z = est.fit(X, aux).transform(X)
        seconds = time.perf_counter() - t0
        rows.append((name, mean_corr_coef(S, Z), seconds, Z))
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


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="skivae", description="Identifiable VAEs and nonlinear ICA."
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser(
        "demo",
        help=(
            "fit the identifiable flow, the iVAE, a plain VAE and FastICA on the "
            "paper's simulation and print MCC and seconds"
        ),
    )
    demo.add_argument("--n-segments", type=int, default=40)
    demo.add_argument("--n-per-segment", type=int, default=1000)
    demo.add_argument("--n-sources", type=int, default=5)
    demo.add_argument("--n-layers", type=int, default=3)
    demo.add_argument(
        "--max-iter", type=int, default=None, help="epochs (default: each estimator's)"
    )
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="write a PNG of the true against the recovered sources of each model",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except _UserError as exc:
        print(f"skivae: error: {exc}", file=sys.stderr)
        return 1


_COMMANDS = {"demo": _demo}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
