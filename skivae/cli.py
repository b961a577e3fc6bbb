"""Command-line front end: ``skivae demo`` (also ``python -m skivae demo``).

The CLI only parses arguments and calls the public API.
"""

import argparse
import sys
import time
import warnings


def _demo(args):
    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE
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
    rows = []
    for name, aux in (("iVAE (with u)", u), ("plain VAE (no u)", None)):
        est = IdentifiableVAE(
            max_iter=args.max_iter, random_state=args.seed, verbose=not args.quiet
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            est.fit(X, aux)
        seconds = time.perf_counter() - t0
        rows.append((name, mean_corr_coef(S, est.transform(X)), seconds))
    print()
    print(f"{'model':<18}{'MCC':>8}{'fit seconds':>14}")
    for name, mcc, seconds in rows:
        print(f"{name:<18}{mcc:>8.3f}{seconds:>14.1f}")
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
        help="fit iVAE and a plain VAE on the paper's simulation and print MCC",
    )
    demo.add_argument("--n-segments", type=int, default=40)
    demo.add_argument("--n-per-segment", type=int, default=1000)
    demo.add_argument("--n-sources", type=int, default=5)
    demo.add_argument("--n-layers", type=int, default=3)
    demo.add_argument(
        "--max-iter", type=int, default=None, help="epochs (default: the estimator's)"
    )
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        if args.max_iter is None:
            from skivae import IdentifiableVAE

            args.max_iter = IdentifiableVAE().max_iter
        return _demo(args)
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
