"""What ``compile=True`` (torch.compile of the training loss) buys on CPU.

For each family and each mode (``eager``: ``compile=False``; ``compile``:
``compile=True``), one fresh process fits the estimator on ``--seeds`` data
draws one after the other, as a search does: the first compiled fit pays
for the compilation, the later ones reuse the graph. Each compiling
process gets an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR``), so the
first fit's cost is the cold one a new user sees. With ``--warm-cache`` a
third mode, ``compile_warm``, measures the next session on the same
machine: its process starts with an on-disk cache that an earlier process
(one compiled fit on the first seed, not reported) filled, as torch's
default cache directory is after any compiled fit. Processes run ``--jobs``
at a time on one torch thread each.

Prints, per family, model and mode: the first fit's seconds, the median
seconds of the later fits, the median and worst MCC over the draws, and
the peak memory of the process; writes ``<out>/<tag>.txt`` and ``.csv``.
The families are ``bench_families.py``'s.

    python benchmarks/bench_compile.py
    python benchmarks/bench_compile.py --models flow ivae --families paper_std \\
        --seeds 1 2 3 --tag compile_ivae
    python benchmarks/bench_compile.py --warm-cache --modes compile \\
        --tag compile_warm
"""

import argparse
import csv
import os
import shlex
import statistics
import sys
import tempfile

from _common import print_table, run_isolated


def fit_draws(family, model, mode, seeds, cache_dir=None):
    """Fit ``model`` on each draw of ``family`` in this process; a compiling
    mode uses the inductor cache ``cache_dir`` (a new empty one if None)."""
    import time
    import warnings

    from bench_families import family_data, make_estimator

    from skivae.metrics import mean_corr_coef

    compiled = mode.startswith("compile")
    if compiled:  # by default a cold cache, private to this process
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir or tempfile.mkdtemp(
            prefix="inductor"
        )
    warnings.simplefilter("ignore")
    rows = []
    for i, seed in enumerate(seeds):
        X, u, S = family_data(family, seed)
        est = make_estimator(model, family, S.shape[1], 0, {"compile": compiled})
        t0 = time.perf_counter()
        est.fit(X, u)
        seconds = time.perf_counter() - t0
        rows.append(
            dict(
                family=family,
                model=model,
                mode=mode,
                data_seed=seed,
                fit=i,
                mcc=float(mean_corr_coef(S, est.transform(X))),
                seconds=seconds,
            )
        )
    return {"rows": rows}


def summary(rows):
    out = []
    keys = []
    for r in rows:
        k = (r["family"], r["model"], r["mode"])
        if k not in keys:
            keys.append(k)
    for family, model, mode in keys:
        key = (family, model, mode)
        g = [r for r in rows if (r["family"], r["model"], r["mode"]) == key]
        later = [r["seconds"] for r in g if r["fit"] > 0]
        out.append(
            dict(
                family=family,
                model=model,
                mode=mode,
                fits=len(g),
                first_s=g[0]["seconds"],
                later_median_s=statistics.median(later) if later else float("nan"),
                median_mcc=statistics.median(r["mcc"] for r in g),
                worst_mcc=min(r["mcc"] for r in g),
                peak_mb=g[0]["peak_mb"],
            )
        )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=["paper_std", "paper_var",
                   "laplace_leaky", "cont_square"])  # fmt: skip
    p.add_argument("--models", nargs="+", default=["flow"], choices=["flow", "ivae"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument(
        "--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"]
    )
    p.add_argument(
        "--warm-cache",
        action="store_true",
        help="also compile_warm: compiled fits from a cache an earlier process filled",
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--tag", default="compile")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)

    jobs = [
        dict(family=f, model=m, mode=mode, seeds=args.seeds)
        for f in args.families
        for m in args.models
        for mode in args.modes
    ]
    if args.warm_cache:  # fill one cache per family and model, then reuse it
        warm = [
            dict(
                family=f,
                model=m,
                mode="compile_warm",
                seeds=args.seeds,
                cache_dir=tempfile.mkdtemp(prefix="inductor_warm"),
            )
            for f in args.families
            for m in args.models
        ]
        priming = [j | dict(mode="compile", seeds=args.seeds[:1]) for j in warm]
        for _ in run_isolated(fit_draws, priming, n_jobs=args.jobs):
            pass
        jobs += warm
    rows = []
    for result in run_isolated(fit_draws, jobs, n_jobs=args.jobs):
        for r in result["rows"]:
            r["peak_mb"] = result["peak_mb"]
            rows.append(r)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.tag}.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(args.out, f"{args.tag}.txt"), "w") as fh:
        for file in (sys.stdout, fh):
            print("command: python bench_compile.py " + shlex.join(sys.argv[1:]
                  if argv is None else argv), file=file)  # fmt: skip
            print(f"{args.jobs} process(es) at a time, 1 torch thread each; data "
                  f"seeds {args.seeds}, model seed 0\n", file=file)  # fmt: skip
            print_table(summary(rows), ["family", "model", "mode", "fits",
                        "first_s", "later_median_s", "median_mcc", "worst_mcc",
                        "peak_mb"], file=file)  # fmt: skip


if __name__ == "__main__":
    main()
