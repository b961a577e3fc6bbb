"""TCL and GCL with MLP or invertible features: signed sources or magnitudes.

With zero-mean sources whose scale ``u`` modulates, the contrastive objectives
see only ``|s|``. An MLP feature network may fold the signs (its output then
estimates ``|s|``); the flow's invertible network (``features="flow"``) cannot
fold. For each data draw (40 segments x 500 points, 5 square sources, Laplace
or Gaussian, 2 mixing layers) it fits ``NonlinearICA(method=..., features=...,
init=...)`` with otherwise default parameters, each in a fresh process, and
prints the strong MCC against ``s`` and against ``|s|`` (``|estimate|`` vs
``|s|``). The invertible features run with both starts: ``init="auto"`` (the
default: a short flow fit) and ``init="random"`` (the contrastive objective
alone, the fair baseline of the objectives themselves); the MLP features start
randomly.

    python benchmarks/bench_contrastive.py --seeds 41 42 43 44 45 --jobs 2
"""

import argparse
import warnings

from _common import parse_sets, print_table, run_isolated, summarize


def fit_one(method, features, init, data_seed, data, params):
    import time

    import numpy as np

    from skivae import NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore")
    X, u, S = make_nonstationary_sources(random_state=data_seed, **data)
    t0 = time.perf_counter()
    est = NonlinearICA(
        method=method, features=features, init=init, random_state=0, **params
    )
    Z = est.fit(X, u).transform(X)
    return {
        "method": method,
        "features": features,
        "init": est.init_,
        "source": data["source"],
        "data_seed": data_seed,
        "mcc": mean_corr_coef(S, Z),
        "mcc_abs": mean_corr_coef(np.abs(S), np.abs(Z)),
        "seconds": time.perf_counter() - t0,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--methods", nargs="+", default=["tcl", "gcl"])
    p.add_argument("--features", nargs="+", default=["mlp", "flow"])
    p.add_argument(
        "--sources",
        nargs="+",
        default=["laplace:leaky_relu"],
        help="source:activation pairs, e.g. laplace:leaky_relu gaussian:xtanh",
    )
    p.add_argument("--inits", nargs="+", default=["auto", "random"])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--set", action="append", help="estimator parameter, key=value")
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    params = parse_sets(args.set)
    jobs = []
    for pair in args.sources:
        source, activation = pair.split(":")
        data = dict(
            n_segments=40,
            n_per_segment=500,
            n_sources=5,
            n_layers=args.layers,
            source=source,
            activation=activation,
        )
        jobs += [
            dict(method=m, features=f, init=i, data_seed=s, data=data, params=params)
            for m in args.methods
            for f in args.features
            for i in (args.inits if f == "flow" else ["auto"])
            for s in args.seeds
        ]
    print(f"{args.layers} mixing layers, params: {params or 'defaults'}")
    keys = ["method", "features", "init", "source"]
    cols = [*keys, "data_seed", "mcc", "mcc_abs", "seconds"]
    rows = list(run_isolated(fit_one, jobs, n_jobs=args.jobs))
    print_table(rows, cols)
    stats = [
        ("median_mcc", "mcc", "median"),
        ("min_mcc", "mcc", "min"),
        ("median_mcc_abs", "mcc_abs", "median"),
        ("median_s", "seconds", "median"),
    ]
    print("\nsummary (MCC against s, and |estimate| against |s|)")
    print_table(summarize(rows, keys, stats), [*keys, "fits", *(n for n, *_ in stats)])


if __name__ == "__main__":
    main()
