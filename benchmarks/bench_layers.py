"""The paper's comparison: MCC against the depth of the mixing MLP.

For 1 to 5 mixing layers on the 40 segments x 1000 points, 5-source simulation
(xtanh, Gaussian sources; one reused matrix, or fresh matrices per layer with
``--fresh``; per-segment scales as standard deviations or variances with
``--scale-types``), fits, for each data seed:

- ``flow``: NonlinearICA(method="flow"), the identifiable flow (default);
- ``ivae``: NonlinearICA(method="ivae"), i.e. IdentifiableVAE (the same fit:
  NonlinearICA only standardises its output, which leaves MCC unchanged);
- ``vae``: the plain VAE, IdentifiableVAE fitted without u;
- ``tcl``, ``gcl``: NonlinearICA(method="tcl" / "gcl");
- ``fastica``: sklearn's linear FastICA.

For the flow, ``ll_gap`` is its mean exact log-likelihood minus the true
model's (nats per sample). Every fit runs in a fresh process. Writes a CSV and a
PNG (``--out``, named after ``--tag``) and prints
the table of the median MCC per method and depth. ``mcc`` is the strong MCC
against the sources ``s``; ``mcc_abs`` compares magnitudes ``|s|`` with
``|estimate|``, the quantity the contrastive methods identify for sources that
are symmetric about zero.

    python benchmarks/bench_layers.py --seeds 1 2 3 --jobs 2
    python benchmarks/bench_layers.py --methods flow --scale-types std var \
        --seeds 41 42 43 44 45 --jobs 2 --tag layers_flow
"""

import argparse
import csv
import os
import statistics
import warnings

from _common import depth_summary, print_table, run_isolated

METHODS = ("flow", "ivae", "vae", "tcl", "gcl", "fastica")


def fit_one(method, n_layers, data_seed, model_seed, data, params):
    import time

    import numpy as np
    from _truth import true_log_likelihood
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
    ll_gap = float("nan")
    if method == "flow":
        truth = true_log_likelihood(
            X, u, random_state=data_seed, n_layers=n_layers, **data
        )
        ll_gap = est.score(X, u) - float(truth.mean())
    return {
        "method": method,
        "scale": data.get("scale_type", "std"),
        "fresh": not data.get("reuse_weights", True),
        "n_layers": n_layers,
        "data_seed": data_seed,
        "model_seed": model_seed,
        "mcc": mean_corr_coef(S, Z),
        "mcc_abs": mean_corr_coef(np.abs(S), np.abs(Z)),
        "seconds": seconds,
        "ll_gap": ll_gap,
    }


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    scales = sorted({r["scale"] for r in rows})
    for ax, key in zip(axes, ("mcc", "mcc_abs")):
        for method in METHODS:
            for scale in scales:
                sub = [r for r in rows if r["method"] == method and r["scale"] == scale]
                depths = sorted({r["n_layers"] for r in sub})
                if not depths:
                    continue
                med = [
                    statistics.median(r[key] for r in sub if r["n_layers"] == d)
                    for d in depths
                ]
                label = method if len(scales) == 1 else f"{method} ({scale})"
                ax.plot(depths, med, marker="o", label=label)
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
    p.add_argument("--scale-types", nargs="+", default=["std"])
    p.add_argument(
        "--fresh", action="store_true", help="a fresh matrix in every mixing layer"
    )
    p.add_argument("--tag", default="layers", help="name of the CSV/PNG files")
    args = p.parse_args(argv)
    base = {"n_segments": 40, "n_per_segment": 1000, "n_sources": 5}
    base["reuse_weights"] = not args.fresh
    jobs = [
        dict(
            method=m,
            n_layers=L,
            data_seed=s,
            model_seed=args.model_seed,
            data={**base, "scale_type": scale},
            params={},
        )
        for scale in args.scale_types
        for L in args.layers
        for s in args.seeds
        for m in args.methods
    ]
    cols = [
        "method",
        "scale",
        "fresh",
        "n_layers",
        "data_seed",
        "mcc",
        "mcc_abs",
        "seconds",
        "peak_mb",
        "ll_gap",
    ]
    rows = []
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, f"{args.tag}.csv")
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols)
        with open(csv_path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols + ["model_seed"])
            writer.writeheader()
            writer.writerows(rows)
    print("\nmedian MCC over data seeds", args.seeds, "(Lk: vs s, Lk|s|: vs |s|)")
    for scale in args.scale_types:
        sub = [r for r in rows if r["scale"] == scale]
        summary = depth_summary(sub, args.methods, args.layers, with_seconds=True)
        print(f"scale convention: {scale}, fresh matrices: {args.fresh}")
        print_table(summary, list(summary[0]))
        worst = [
            {
                "method": m,
                **{
                    f"L{L}": min(
                        r["mcc"] for r in sub if r["method"] == m and r["n_layers"] == L
                    )
                    for L in args.layers
                },
            }
            for m in args.methods
        ]
        print("worst draw (MCC vs s)")
        print_table(worst, list(worst[0]))
    png = os.path.join(args.out, f"{args.tag}.png")
    plot(rows, png)
    print(f"\nwrote {csv_path} and {png}")


if __name__ == "__main__":
    main()
