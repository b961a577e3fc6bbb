"""The paper's benchmark: iVAE vs plain VAE on the nonstationary-sources simulation.

Default setting (PAPER.md, "The benchmark"): 40 segments x 1000 points, 5 sources,
5 observed dimensions, 3 xtanh mixing layers (one matrix reused, as in the official
code), Gaussian sources. For each data seed it fits ``IdentifiableVAE`` (with u) and
the plain VAE (``u=None``) with default parameters, each in a fresh process, and
prints MCC, fit seconds and peak resident memory.

    python benchmarks/bench_paper.py --seeds 1 2 3 4 5
    python benchmarks/bench_paper.py --seeds 1 2 --set max_iter=40 --set n_init=2
"""

import argparse
import statistics
import warnings

from _common import parse_sets, print_table, run_isolated


def fit_one(model, data_seed, model_seed, params, data):
    import time

    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)
    X, u, S = make_nonstationary_sources(random_state=data_seed, **data)
    est = IdentifiableVAE(random_state=model_seed, **params)
    t0 = time.perf_counter()
    est.fit(X, u if model == "ivae" else None)
    seconds = time.perf_counter() - t0
    return {
        "model": model,
        "data_seed": data_seed,
        "model_seed": model_seed,
        "mcc": mean_corr_coef(S, est.transform(X)),
        "seconds": seconds,
        "epochs": est.n_iter_,
        "elbo": est.score(X, u if model == "ivae" else None),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--model-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--models", nargs="+", default=["ivae", "vae"])
    p.add_argument("--set", action="append", help="estimator parameter, key=value")
    p.add_argument("--data", action="append", help="dataset parameter, key=value")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args(argv)
    params = parse_sets(args.set)
    data = {"n_segments": 40, "n_per_segment": 1000, "n_sources": 5, "n_layers": 3}
    data.update(parse_sets(args.data))
    jobs = [
        dict(model=m, data_seed=s, model_seed=ms, params=params, data=data)
        for s in args.seeds
        for ms in args.model_seeds
        for m in args.models
    ]
    print(f"data: {data}\nparams: {params or 'defaults'}")
    rows = []
    cols = [
        "model",
        "data_seed",
        "model_seed",
        "mcc",
        "seconds",
        "epochs",
        "peak_mb",
        "elbo",
    ]
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols) if len(rows) == 1 else print_table([res], cols)
    print("\nsummary (median over fits)")
    summary = []
    for m in args.models:
        rs = [r for r in rows if r["model"] == m]
        summary.append(
            {
                "model": m,
                "fits": len(rs),
                "median_mcc": statistics.median(r["mcc"] for r in rs),
                "min_mcc": min(r["mcc"] for r in rs),
                "max_mcc": max(r["mcc"] for r in rs),
                "median_s": statistics.median(r["seconds"] for r in rs),
                "max_peak_mb": max(r["peak_mb"] for r in rs),
            }
        )
    print_table(summary, list(summary[0]))


if __name__ == "__main__":
    main()
