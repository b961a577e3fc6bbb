"""Choosing between iVAE restarts: ELBO vs importance-weighted bound vs seed agreement.

``IdentifiableVAE(n_init=R)`` trains R restarts and keeps one. Which rule picks
the restart that recovers the sources best? For each data draw (the paper's
simulation, ``make_nonstationary_sources``, with both conventions of the
per-segment scale: ``std``, the official code's, and ``var``) this script fits
``--restarts`` restarts with default parameters (one per model seed, each with
``n_init=1``), and scores every restart with each rule, on the training data as
``n_init`` does:

- ``elbo``: the mean ELBO (``n_importance=1``, the score before 0.2);
- ``iwaeK``: the mean importance-weighted bound with K samples
  (``n_importance=K``; the restarts' training does not depend on K);
- ``medoid``: the restart's mean strong MCC with the other restarts
  (:func:`skivae.model_selection.seed_consistency`), which needs every
  restart's ``transform`` and so cannot run inside one fit cheaply.

Per draw it prints the Spearman rank correlation between each rule's scores and
the restarts' true MCC, and the MCC of the restart each rule picks next to the
best and the median restart; then the mean over draws.

    python benchmarks/bench_selection.py --jobs 2
    python benchmarks/bench_selection.py --seeds 1 2 --restarts 3 --ks 8 64
"""

import argparse
import statistics
import warnings

from _common import parse_sets, print_table, run_isolated


def fit_draw(data_seed, model_seeds, ks, params, data):
    import copy

    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.exceptions import ConvergenceWarning

    from skivae import IdentifiableVAE
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef
    from skivae.model_selection import seed_consistency

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)
    X, u, S = make_nonstationary_sources(random_state=data_seed, **data)
    fits = [
        IdentifiableVAE(random_state=ms, n_importance=1, **params).fit(X, u)
        for ms in model_seeds
    ]
    Z = [est.transform(X) for est in fits]
    mcc = np.array([mean_corr_coef(S, z) for z in Z])
    scores = {"elbo": [est.score(X, u) for est in fits]}
    for k in ks:
        vals = []
        for ms, est in zip(model_seeds, fits):
            other = copy.deepcopy(est)
            other.module_.set_n_importance(k, ms)
            vals.append(other.score(X, u))
        scores[f"iwae{k}"] = vals
    scores["medoid"] = list(seed_consistency(Z).scores)
    row = {
        "scale": data.get("scale_type", "std"),
        "data_seed": data_seed,
        "best": float(mcc.max()),
        "median": float(np.median(mcc)),
        "worst": float(mcc.min()),
    }
    for rule, vals in scores.items():
        vals = np.asarray(vals, dtype=float)
        row[f"pick_{rule}"] = float(mcc[int(np.argmax(vals))])
        row[f"rho_{rule}"] = float(spearmanr(vals, mcc).statistic)
    row["mccs"] = " ".join(f"{m:.3f}" for m in mcc)
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--restarts", type=int, default=4, help="model seeds per draw")
    p.add_argument("--ks", type=int, nargs="+", default=[16, 128])
    p.add_argument("--scale-types", nargs="+", default=["std", "var"])
    p.add_argument("--set", action="append", help="estimator parameter, key=value")
    p.add_argument("--data", action="append", help="dataset parameter, key=value")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args(argv)
    params = parse_sets(args.set)
    data = {"n_segments": 20, "n_per_segment": 500, "n_sources": 5, "n_layers": 3}
    data.update(parse_sets(args.data))
    jobs = [
        dict(
            data_seed=s,
            model_seeds=list(range(args.restarts)),
            ks=args.ks,
            params=params,
            data={**data, "scale_type": scale},
        )
        for scale in args.scale_types
        for s in args.seeds
    ]
    rules = ["elbo"] + [f"iwae{k}" for k in args.ks] + ["medoid"]
    print(f"data: {data}\nparams: {params or 'defaults'}, restarts: {args.restarts}")
    cols = ["scale", "data_seed", "best", "median", "worst"]
    cols += [f"pick_{r}" for r in rules] + [f"rho_{r}" for r in rules] + ["mccs"]
    rows = []
    for res in run_isolated(fit_draw, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
    rows.sort(key=lambda r: (r["scale"], r["data_seed"]))
    print("\nper draw: MCC of the best/median/worst restart, of the one each rule")
    print("picks, and the Spearman correlation of each rule's score with MCC")
    print_table(rows, cols)
    print("\nover draws (regret: best restart's MCC minus the picked one's)")
    summary = []
    for r in rules:
        rhos = [row[f"rho_{r}"] for row in rows]
        rhos = [v for v in rhos if v == v]  # drop NaN (ties)
        summary.append(
            {
                "rule": r,
                "mean_rho": statistics.mean(rhos) if rhos else float("nan"),
                "mean_pick_mcc": statistics.mean(row[f"pick_{r}"] for row in rows),
                "mean_regret": statistics.mean(
                    row["best"] - row[f"pick_{r}"] for row in rows
                ),
                "picks_best": sum(row[f"pick_{r}"] == row["best"] for row in rows),
                "beats_median": sum(row[f"pick_{r}"] > row["median"] for row in rows),
            }
        )
    summary.append(
        {
            "rule": "(median restart)",
            "mean_pick_mcc": statistics.mean(row["median"] for row in rows),
            "mean_regret": statistics.mean(row["best"] - row["median"] for row in rows),
        }
    )
    print_table(summary, list(summary[0]))
    print(f"draws: {len(rows)}")


if __name__ == "__main__":
    main()
