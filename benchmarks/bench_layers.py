"""The paper's comparison: MCC against the depth of the mixing MLP.

For 1 to 5 mixing layers on the 40 segments x 1000 points, 5-source simulation
(xtanh, one reused matrix, Gaussian sources), fits, for each data seed:

- ``ivae``: NonlinearICA(method="ivae"), i.e. IdentifiableVAE (the same fit:
  NonlinearICA only standardises its output, which leaves MCC unchanged);
- ``vae``: the plain VAE, IdentifiableVAE fitted without u;
- ``tcl``, ``gcl``: NonlinearICA(method="tcl" / "gcl");
- ``fastica``: sklearn's linear FastICA.

Every fit runs in a fresh process. Writes a CSV and a PNG (``--out``) and prints
the table of the median MCC per method and depth. ``mcc`` is the strong MCC
against the sources ``s``; ``mcc_abs`` compares magnitudes ``|s|`` with
``|estimate|``, the quantity the contrastive methods identify for sources that
are symmetric about zero.

    python benchmarks/bench_layers.py --seeds 1 2 3 --jobs 2
"""

import argparse
import csv
import os
import statistics
import warnings

from _common import depth_summary, print_table, run_isolated

METHODS = ("ivae", "vae", "tcl", "gcl", "fastica")


def fit_one(method, n_layers, data_seed, model_seed, data, params):
    import time

    import numpy as np
    from sklearn.decomposition import FastICA

    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore")
    X, u, S = make_nonstationary_sources(
        n_layers=n_layers, random_state=data_seed, **data
    )
    t0 = time.perf_counter()
    if method == "fastica":
        est = FastICA(whiten="unit-variance", random_state=model_seed, max_iter=1000)
        Z = est.fit_transform(X)
    elif method == "vae":
        est = IdentifiableVAE(random_state=model_seed, **params).fit(X)
        Z = est.transform(X)
    else:
        est = NonlinearICA(method=method, random_state=model_seed, **params).fit(X, u)
        Z = est.transform(X)
    seconds = time.perf_counter() - t0
    return {
        "method": method,
        "n_layers": n_layers,
        "data_seed": data_seed,
        "model_seed": model_seed,
        "mcc": mean_corr_coef(S, Z),
        "mcc_abs": mean_corr_coef(np.abs(S), np.abs(Z)),
        "seconds": seconds,
    }


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key in zip(axes, ("mcc", "mcc_abs")):
        for method in METHODS:
            depths = sorted({r["n_layers"] for r in rows if r["method"] == method})
            if not depths:
                continue
            med = [
                statistics.median(
                    r[key] for r in rows if r["method"] == method and r["n_layers"] == d
                )
                for d in depths
            ]
            ax.plot(depths, med, marker="o", label=method)
        ax.set_xlabel("mixing layers")
        ax.set_title("MCC vs s" if key == "mcc" else "MCC vs |s|")
        ax.set_xticks(range(1, 6))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("median MCC over data seeds")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    data = {"n_segments": 40, "n_per_segment": 1000, "n_sources": 5}
    jobs = [
        dict(
            method=m,
            n_layers=L,
            data_seed=s,
            model_seed=args.model_seed,
            data=data,
            params={},
        )
        for L in args.layers
        for s in args.seeds
        for m in args.methods
    ]
    cols = ["method", "n_layers", "data_seed", "mcc", "mcc_abs", "seconds", "peak_mb"]
    rows = []
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "layers.csv")
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols + ["model_seed"])
            writer.writeheader()
            writer.writerows(rows)
    summary = depth_summary(rows, args.methods, args.layers, with_seconds=True)
    print("\nmedian MCC over data seeds", args.seeds, "(Lk: vs s, Lk|s|: vs |s|)")
    print_table(summary, list(summary[0]))
    png = os.path.join(args.out, "layers.png")
    plot(rows, png)
    print(f"\nwrote {csv_path} and {png}")


if __name__ == "__main__":
    main()
