"""Undercomplete noisy data: the iVAE from the flow start, from a random start, the VAE.

Three families of ``make_nonstationary_sources`` draws with more observed
features than sources and observation noise 0.05 (a standard deviation on
``f(s)``), the per-segment scale a standard deviation (the official code's
convention):

- ``u48``: 4 Laplace sources -> 8 features, 3 leaky-ReLU layers, 40 x 500;
- ``u36``: 3 Laplace sources -> 6 features, 2 leaky-ReLU layers, 20 x 300;
- ``u510``: 5 Gaussian sources -> 10 features, 2 xtanh layers, 40 x 500.

For each family and data seed it fits, each in a fresh process with one
torch thread:

- ``ivae``: ``IdentifiableVAE(n_sources)`` with defaults (``init="auto"``:
  the flow start);
- ``ivae_random``: the same with ``init="random"``;
- ``vae``: the plain VAE (``u=None``).

It prints MCC against the sources, fit seconds and peak resident memory, then
the median, worst and best MCC per family and model.

    python benchmarks/bench_undercomplete.py --seeds 41 42 43 44 45 --jobs 2
"""

import argparse
import warnings

from _common import MCC_STATS, parse_sets, print_table, run_isolated, summarize

FAMILIES = {
    "u48": dict(
        n_segments=40,
        n_per_segment=500,
        n_sources=4,
        n_features=8,
        n_layers=3,
        source="laplace",
        activation="leaky_relu",
        noise=0.05,
    ),
    "u36": dict(
        n_segments=20,
        n_per_segment=300,
        n_sources=3,
        n_features=6,
        n_layers=2,
        source="laplace",
        activation="leaky_relu",
        noise=0.05,
    ),
    "u510": dict(
        n_segments=40,
        n_per_segment=500,
        n_sources=5,
        n_features=10,
        n_layers=2,
        noise=0.05,
    ),
}
MODELS = ("ivae", "ivae_random", "vae")


def fit_one(family, model, data_seed, params):
    import time

    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)
    data = FAMILIES[family]
    X, u, S = make_nonstationary_sources(random_state=data_seed, **data)
    kw = dict(params)
    if model == "ivae_random":
        kw["init"] = "random"
    est = IdentifiableVAE(data["n_sources"], random_state=0, **kw)
    t0 = time.perf_counter()
    est.fit(X, None if model == "vae" else u)
    seconds = time.perf_counter() - t0
    return {
        "family": family,
        "model": model,
        "data_seed": data_seed,
        "init": est.init_,
        "mcc": mean_corr_coef(S, est.transform(X)),
        "seconds": seconds,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--set", action="append", help="estimator parameter, key=value")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args(argv)
    params = parse_sets(args.set)
    jobs = [
        dict(family=f, model=m, data_seed=s, params=params)
        for f in args.families
        for s in args.seeds
        for m in args.models
    ]
    print(f"params: {params or 'defaults'}")
    cols = ["family", "model", "data_seed", "init", "mcc", "seconds", "peak_mb"]
    rows = []
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols)
    print("\nsummary per family and model (over data draws)")
    summary = summarize(rows, ["family", "model"], MCC_STATS)
    print_table(summary, list(summary[0]))


if __name__ == "__main__":
    main()
