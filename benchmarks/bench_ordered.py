"""Ordered and spatial rows: which auxiliary variable recovers the sources.

Each fit runs in a fresh process with one torch thread (``--jobs`` at a time)
and is scored by the strong MCC of ``transform(X)`` against the true sources
(on the rows the model was fitted on). Data (``--seeds``, by default 1-5;
``--scale`` multiplies the number of rows, for smoke runs):

- ``--part time``: :func:`skivae.datasets.make_time_sources`, 20 sequences of
  1000 steps, 3 sources mixed into 3 features by 2 leaky-ReLU layers.
  Families: ``segment_ar`` (AR(1) coefficients change between 10 segments,
  every marginal N(0, 1): only the temporal dependence carries u),
  ``stationary_ar`` (one AR(1) coefficient per source, fixed; Laplace
  innovations; no segments) and ``ar_variance`` (fixed AR(1) coefficients,
  innovation scale changing between 10 segments). Routes: ``segment``
  (``u`` = the segment label), ``previous`` (``u`` = the previous row of the
  same sequence, from :func:`skivae.preprocessing.lagged_rows`; the first row
  of each sequence is dropped), ``previous+segment`` (both: the previous row
  beside the one-hot segment, as continuous ``u``) and ``none`` (``u=None``:
  the plain VAE, iVAE only: the unidentifiable baseline), ``ar1``
  (``ar_order=1, prior="laplace"``, no ``u``, ``groups`` = the sequences)
  and ``ar1+segment`` (``ar_order=1`` with ``u`` = the segment label).
- ``--part spatial``: :func:`skivae.datasets.make_spatial_sources`, 6000
  points in the unit square, 3 sources whose log-scales are smooth fields,
  mixed like above. Families: ``smooth_scales`` (the default fields, 0.5-2
  cycles of each Fourier feature across the square) and ``rough_scales``
  (2-5 cycles: more, smaller bumps). Routes: ``coords`` (the raw
  coordinates as continuous ``u``), ``spline`` and ``spline12``
  (``aux_transformer=SplineTransformer(n_knots=6)`` or ``12`` on the
  coordinates), ``kmeans`` (``u`` = the labels of ``KMeans(36)`` fitted on
  the coordinates).

Models (``--models``): ``flow`` (``NonlinearICA()``) and ``ivae``
(``IdentifiableVAE(3)``), defaults otherwise, ``random_state=0``.

It prints each fit, then a summary "median (worst)" per family, route and
model, and writes ``<out>/<tag>.txt`` and ``<tag>.csv``.

    python benchmarks/bench_ordered.py --part time --jobs 2
    python benchmarks/bench_ordered.py --part spatial --jobs 2
"""

import argparse
import csv
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MCC_STATS, print_table, run_isolated, summarize  # noqa: E402

TIME_FAMILIES = {
    "segment_ar": dict(kind="segment_ar", innovation="gaussian"),
    "stationary_ar": dict(kind="stationary_ar", innovation="laplace"),
    "ar_variance": dict(kind="ar_variance", innovation="gaussian"),
}
TIME_ROUTES = ("segment", "previous", "previous+segment", "none", "ar1", "ar1+segment")
SPATIAL_FAMILIES = {
    "smooth_scales": dict(),  # 0.5-2 cycles across the square
    "rough_scales": dict(cycles=(2.0, 5.0)),
}
SPATIAL_ROUTES = ("coords", "spline", "spline12", "kmeans")


def _data(part, family, seed, scale):
    from skivae.datasets import make_spatial_sources, make_time_sources

    if part == "time":
        n_steps = max(50, int(1000 * scale))
        X, u, S, groups = make_time_sources(
            20, n_steps, 3, n_layers=2, random_state=seed, **TIME_FAMILIES[family]
        )
        return X, u, S, groups
    X, coords, S = make_spatial_sources(
        max(300, int(6000 * scale)),
        3,
        n_layers=2,
        random_state=seed,
        **SPATIAL_FAMILIES[family],
    )
    return X, coords, S, None


def _route(route, X, u, groups):
    """``(X, u, rows, extra params)`` of a route."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import SplineTransformer

    from skivae.preprocessing import lagged_rows

    rows = np.arange(len(X))
    if route == "ar1":  # stationary sources: non-Gaussian innovations
        return X, None, rows, {"ar_order": 1, "prior": "laplace"}
    if route == "ar1+segment":
        return X, u, rows, {"ar_order": 1}
    if route == "segment":
        return X, u, rows, {}
    if route == "none":
        return X, None, rows, {}
    if route.startswith("previous"):
        prev, keep = lagged_rows(X, groups)
        U = prev
        if route == "previous+segment":
            U = np.column_stack([prev, np.eye(int(u.max()) + 1)[u]])
        return X[keep], U[keep], rows[keep], {}
    if route == "coords":
        return X, u, rows, {}
    if route == "spline":
        return X, u, rows, {"aux_transformer": SplineTransformer(n_knots=6)}
    if route == "spline12":
        return X, u, rows, {"aux_transformer": SplineTransformer(n_knots=12)}
    if route == "kmeans":
        labels = KMeans(36, n_init=3, random_state=0).fit_predict(u)
        return X, labels, rows, {}
    raise ValueError(route)


def fit_one(part, family, route, model, seed, scale):
    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.metrics import mean_corr_coef

    X, u, S, groups = _data(part, family, seed, scale)
    Xf, uf, rows, extra = _route(route, X, u, groups)
    est = NonlinearICA(**extra) if model == "flow" else IdentifiableVAE(3, **extra)
    est.set_params(random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import time

        t0 = time.perf_counter()
        est.fit(Xf, uf, groups=groups if "ar_order" in extra else None)
        seconds = time.perf_counter() - t0
    names = sorted({type(w.message).__name__ for w in caught})
    mcc = mean_corr_coef(S[rows], est.transform(Xf))
    return dict(
        part=part,
        family=family,
        route=route,
        model=model,
        seed=seed,
        n=len(Xf),
        mcc=float(mcc),
        seconds=seconds,
        warnings=";".join(names),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("time", "spatial"), required=True)
    p.add_argument("--families", nargs="*", default=None)
    p.add_argument("--routes", nargs="*", default=None)
    p.add_argument("--models", nargs="*", default=["flow", "ivae"])
    p.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--tag", default=None)
    args = p.parse_args(argv)
    if args.part == "time":
        families = args.families or list(TIME_FAMILIES)
        routes = args.routes or list(TIME_ROUTES)
    else:
        families = args.families or list(SPATIAL_FAMILIES)
        routes = args.routes or list(SPATIAL_ROUTES)
    jobs = [
        dict(part=args.part, family=f, route=r, model=m, seed=s, scale=args.scale)
        for f in families
        for r in routes
        if not (r.endswith("segment") and f == "stationary_ar")  # no segments
        for m in args.models
        if not (r == "none" and m == "flow")  # the flow needs u (or ar_order)
        for s in args.seeds
    ]
    tag = args.tag or f"ordered_{args.part}"
    os.makedirs(args.out, exist_ok=True)
    command = "python benchmarks/bench_ordered.py " + " ".join(argv or sys.argv[1:])
    print(command, flush=True)
    cols = ["family", "route", "model", "seed", "n", "mcc", "seconds", "peak_mb"]
    rows = []
    for r in run_isolated(fit_one, jobs, n_jobs=args.jobs):
        rows.append(r)
        print_table([r], cols)
        with open(os.path.join(args.out, f"{tag}.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(r) + ["peak_mb"])
            w.writeheader()
            w.writerows(rows)
    summary = summarize(rows, ["family", "route", "model"], MCC_STATS)
    for s in summary:
        s["MCC"] = f"{s['median_mcc']:.3f} ({s['min_mcc']:.3f})"
    scols = ["family", "route", "model", "fits", "MCC", "median_s", "max_peak_mb"]
    with open(os.path.join(args.out, f"{tag}.txt"), "w") as fh:
        for out in (sys.stdout, fh):
            print(f"\n{command}\nmedian (worst) MCC over seeds {args.seeds}", file=out)
            print_table(summary, scols, file=out)


if __name__ == "__main__":
    main()
