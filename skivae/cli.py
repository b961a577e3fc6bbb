"""Command-line front end: ``skivae demo`` (also ``python -m skivae demo``).

The CLI only parses arguments and calls the public API.
"""

import argparse
import sys
import time
import warnings


def _demo(args):
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

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
        rows.append((name, mean_corr_coef(S, Z), seconds))
    print()
    print(f"{'model':<20}{'MCC':>8}{'fit seconds':>14}")
    for name, mcc, seconds in rows:
        print(f"{name:<20}{mcc:>8.3f}{seconds:>14.1f}")
    print(
        "\nMCC: mean absolute correlation between true and recovered sources after "
        "the best matching (1.0 = perfect)."
    )
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
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        return _demo(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
