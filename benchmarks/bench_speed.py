"""Fit seconds, transform throughput and the cost against the number of rows.

Three parts (``--part``; ``all`` runs the three). Every fit runs in a fresh
process on ``--threads`` torch threads (1 by default), one at a time: run it
on a quiet machine.

- ``fit``: the default ``NonlinearICA()`` (the flow) and
  ``IdentifiableVAE()`` on the paper's setting
  (``make_nonstationary_sources(40, 1000, 5, n_layers=3)``, the official
  code's scale convention, data seed 1), ``--repeats`` fits with model
  seeds 0, 1, ...: median seconds, MCC, peak memory, optimiser steps. The
  anchor is the official iVAE code's recipe on the same setting, measured
  on this kind of machine (see PAPER.md): 110-115 s per fit on one or two
  threads, 93 s on its own data file.
- ``transform``: rows per second of ``transform`` of both fitted models on
  ``--transform-rows`` rows (5 features), median of 3 passes.
- ``rows``: fit seconds and peak memory of both defaults against the number
  of rows (``--rows``, 40 segments each; data seeds ``--seeds``, model seed
  0), MCC on the training rows. ``--max-steps-factor 1000`` lifts the
  ``max_iter="auto"`` cap on the steps (the behaviour before 0.5) for a
  comparison.

Prints the tables and writes ``<out>/<tag>.txt`` and ``<tag>.csv``.

    python benchmarks/bench_speed.py
    python benchmarks/bench_speed.py --part rows --rows 10000 100000 1000000 \\
        --models flow --tag speed_rows
"""

import argparse
import csv
import os
import shlex
import statistics
import sys

from _common import print_table, run_isolated

OFFICIAL = "official iVAE recipe (PAPER.md): 110-115 s per fit; 93 s on its data file"


def _make(model, seed):
    from skivae import IdentifiableVAE, NonlinearICA

    if model == "flow":
        return NonlinearICA(random_state=seed)
    return IdentifiableVAE(random_state=seed)


def fit_one(
    model, n_rows, data_seed, model_seed, transform_rows=0, max_steps_factor=None
):
    import time
    import warnings

    import numpy as np

    import skivae._defaults as D

    if max_steps_factor is not None:  # the "auto" step cap, for comparisons
        D.AUTO_MAX_STEPS_FACTOR = max_steps_factor

    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore")
    X, u, S = make_nonstationary_sources(
        40, n_rows // 40, 5, n_layers=3, random_state=data_seed
    )
    t0 = time.perf_counter()
    est = _make(model, model_seed).fit(X, u)
    seconds = time.perf_counter() - t0
    settings = est.training_settings_
    steps = settings["max_iter"] * -(-len(X) // settings["batch_size"])
    out = dict(
        model=model,
        n_rows=len(X),
        data_seed=data_seed,
        model_seed=model_seed,
        mcc=mean_corr_coef(S, est.transform(X)),
        seconds=seconds,
        steps=steps,
        ms_per_step=1000 * seconds / steps,
        batch_size=settings["batch_size"],
        epochs=settings["max_iter"],
    )
    if transform_rows:
        reps = -(-transform_rows // len(X))
        Xt = np.tile(X, (reps, 1))[:transform_rows]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            est.transform(Xt)
            times.append(time.perf_counter() - t0)
        out["transform_rows_per_s"] = transform_rows / statistics.median(times)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["fit", "transform", "rows", "all"], default="all")
    p.add_argument(
        "--models", nargs="+", choices=["flow", "ivae"], default=["flow", "ivae"]
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--transform-rows", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--max-steps-factor",
        type=int,
        default=None,
        help="override skivae._defaults.AUTO_MAX_STEPS_FACTOR (e.g. 1000: no cap)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="part rows")
    p.add_argument("--tag", default="speed")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    parts = ["fit", "transform", "rows"] if args.part == "all" else [args.part]
    lines = [f"command: python {shlex.join(sys.argv)}", OFFICIAL]
    print("\n".join(lines), flush=True)
    jobs = []
    if "fit" in parts or "transform" in parts:
        for model in args.models:
            for seed in range(args.repeats if "fit" in parts else 1):
                first = seed == 0 and "transform" in parts
                jobs.append(
                    dict(
                        model=model,
                        n_rows=40_000,
                        data_seed=1,
                        model_seed=seed,
                        transform_rows=args.transform_rows if first else 0,
                    )
                )
    if "rows" in parts:
        jobs += [
            dict(
                model=m,
                n_rows=n,
                data_seed=s,
                model_seed=0,
                max_steps_factor=args.max_steps_factor,
            )
            for m in args.models
            for n in args.rows
            for s in args.seeds
        ]
    rows = []
    columns = [
        "model", "n_rows", "data_seed", "model_seed", "mcc", "seconds",
        "peak_mb", "steps", "ms_per_step", "batch_size", "epochs",
    ]  # fmt: skip
    for res in run_isolated(fit_one, jobs, n_jobs=1, threads=args.threads):
        rows.append(res)
        print_table(
            [res], columns + ["transform_rows_per_s"] * ("transform_rows_per_s" in res)
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.tag}.csv"), "w", newline="") as fh:
        keys = sorted({k for r in rows for k in r})
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    summary = []
    for (model, n), group in _groups(rows).items():
        row = dict(model=model, n_rows=n, fits=len(group))
        for col in ("mcc", "seconds", "peak_mb", "ms_per_step"):
            row[f"median_{col}"] = statistics.median(r[col] for r in group)
        row["worst_mcc"] = min(r["mcc"] for r in group)
        tp = [r["transform_rows_per_s"] for r in group if "transform_rows_per_s" in r]
        if tp:
            row["transform_rows_per_s"] = f"{tp[0]:,.0f}"
        summary.append(row)
    import io

    buf = io.StringIO()
    print("\n== per model and number of rows (median over fits)", file=buf)
    print_table(summary, list(summary[0]), file=buf)
    print(buf.getvalue(), flush=True)
    path = os.path.join(args.out, f"{args.tag}.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n" + buf.getvalue())
    print(f"wrote {path} and {args.tag}.csv")


def _groups(rows):
    out = {}
    for r in rows:
        out.setdefault((r["model"], r["n_rows"]), []).append(r)
    return out


if __name__ == "__main__":
    main()
