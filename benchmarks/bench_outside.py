"""The defaults on data from a generator that is not skivae's own.

``bench_families.py`` draws its families with :mod:`skivae.datasets`, the
simulator the defaults were tuned beside. This script draws five families
with its own code (numpy only) and fits the *default* estimators on them, as
an outside user would:

1. ``t_tanh``: 5 Student-t (4 dof) sources, 30 segments x 300 rows, per-segment
   scales log-uniform on [0.2, 5], two ``tanh(W x)`` layers (square). The
   first tanh saturates (|h| > 0.99) for a quarter of the values on most
   draws, so part of the sources is lost before any model sees it.
2. ``uniform10``: 10 uniform sources, 50 x 400, two leaky-ReLU (0.2) layers.
3. ``under4to10``: 4 Gaussian sources into 10 features (a 10x4 map, leaky ReLU,
   a 10x10 map), 30 x 400, observation noise of std 0.1 (IdentifiableVAE and
   NonlinearICA(method="ivae") only: the flow needs square data).
4. ``cont2d``: 20 000 rows, a 2-D continuous ``u`` uniform on the unit square,
   4 Gaussian sources whose log-std is a random sum of sinusoids of ``u``,
   two leaky-ReLU layers (square).
5. ``laplace8``: 8 Laplace sources with per-segment means (uniform on
   [-1, 1]) and scales, 40 x 500 rows, three ``arcsinh(W x)`` layers
   (square; added in version 0.9 to check the square start's epochs between
   5 and 10 features, where the rule interpolates).

Every matrix is an orthogonal matrix times a diagonal in [0.5, 2] (well
conditioned). Models: ``NonlinearICA()``, ``IdentifiableVAE()``,
``NonlinearICA(method="ivae")``, ``IdentifiableVAE(init="random")`` (the
alternative to the default flow start) and scikit-learn's ``FastICA`` (the linear
baseline), each with ``n_components`` = the number of sources and
``random_state=0``; MCC on the training rows. ``--scale`` multiplies ``X``
(the other scale convention: the estimators standardise ``X``, so the MCC
should not move). ``--set KEY=VALUE`` passes a parameter to every model (a
knob against the default, e.g. ``--set prior=laplace``); ``--default
NAME=VALUE`` sets a constant of :mod:`skivae._defaults` in every fit (e.g.
``--default DISTILL_LR=0.001``, the shipped alternative); ``--holdout 0.2``
fits on 80 % of the rows (stratified by a categorical ``u``) and reports MCC
and the model's ``score`` on the other 20 %.

Each fit runs in its own process with one torch thread. Example::

    python benchmarks/bench_outside.py --families t_tanh uniform10 under4to10 \
        cont2d --seeds 101 102 103 104 105
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import parse_cli_settings
from scipy.stats import ortho_group

MODELS = ("nica", "ivae", "ivae_random", "nica_ivae", "fastica")
SQUARE_ONLY = {"nica"}


def _well_conditioned(rng, d_out, d_in=None):
    """An orthogonal map times a diagonal in [0.5, 2] (d_out x d_in)."""
    d_in = d_in or d_out
    if d_in == d_out:
        return ortho_group.rvs(d_out, random_state=rng) * rng.uniform(0.5, 2, d_out)
    A = rng.standard_normal((d_out, d_in))
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return (U * rng.uniform(0.5, 2, size=d_in)) @ Vt


def _leaky(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


def _segment_scales(rng, K, d):
    return np.exp(rng.uniform(np.log(0.2), np.log(5), size=(K, d)))


def t_tanh(seed):
    rng = np.random.default_rng(seed)
    K, N, d = 30, 300, 5
    u = np.repeat(np.arange(K), N)
    scales = _segment_scales(rng, K, d)
    S = rng.standard_t(4, size=(K * N, d)) * scales[u]
    X = S
    for _ in range(2):
        X = np.tanh(X @ _well_conditioned(rng, d).T)
    return X, u, S


def uniform10(seed):
    rng = np.random.default_rng(seed)
    K, N, d = 50, 400, 10
    u = np.repeat(np.arange(K), N)
    half = np.sqrt(3.0)  # unit variance before the scales
    scales = _segment_scales(rng, K, d)
    S = rng.uniform(-half, half, size=(K * N, d)) * scales[u]
    X = S
    for _ in range(2):
        X = _leaky(X @ _well_conditioned(rng, d).T)
    return X, u, S


def under4to10(seed):
    rng = np.random.default_rng(seed)
    K, N, d, D = 30, 400, 4, 10
    u = np.repeat(np.arange(K), N)
    scales = _segment_scales(rng, K, d)
    S = rng.standard_normal((K * N, d)) * scales[u]
    X = _leaky(S @ _well_conditioned(rng, D, d).T) @ _well_conditioned(rng, D).T
    return X + 0.1 * rng.standard_normal(X.shape), u, S


def cont2d(seed):
    rng = np.random.default_rng(seed)
    n, d = 20000, 4
    u = rng.uniform(0, 1, size=(n, 2))
    log_std = np.zeros((n, d))
    for _ in range(3):
        a = rng.normal(0, 4, size=(2, d))
        b = rng.uniform(0, 2 * np.pi, size=d)
        log_std += 0.6 * np.sin(u @ a + b)
    S = rng.standard_normal((n, d)) * np.exp(log_std)
    X = S
    for _ in range(2):
        X = _leaky(X @ _well_conditioned(rng, d).T)
    return X, u, S


def laplace8(seed):
    rng = np.random.default_rng(seed)
    K, N, d = 40, 500, 8
    u = np.repeat(np.arange(K), N)
    scales = _segment_scales(rng, K, d)
    means = rng.uniform(-1, 1, size=(K, d))
    S = rng.laplace(0, 1 / np.sqrt(2), size=(K * N, d)) * scales[u] + means[u]
    X = S
    for _ in range(3):
        X = np.arcsinh(X @ _well_conditioned(rng, d).T)
    return X, u, S


FAMILIES = {f.__name__: f for f in (t_tanh, uniform10, under4to10, cont2d, laplace8)}


def fit_one(family, seed, model, scale, params=None, holdout=0.0):
    """One fit in this process: a JSON record (MCC, seconds, warnings).

    ``params``: extra estimator parameters (skivae models only). ``holdout``:
    the fraction of rows kept out of the fit (stratified by ``u`` where it is
    categorical); MCC and the model's ``score`` are then taken on those rows.
    """
    import warnings

    import torch

    torch.set_num_threads(1)
    from sklearn.decomposition import FastICA
    from sklearn.model_selection import train_test_split

    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.metrics import mean_corr_coef

    X, u, S = FAMILIES[family](seed)
    X = X * scale
    k = S.shape[1]
    params = params or {}
    est = {
        "nica": lambda: NonlinearICA(n_components=k, random_state=0, **params),
        "ivae": lambda: IdentifiableVAE(n_components=k, random_state=0, **params),
        "ivae_random": lambda: IdentifiableVAE(
            k, init="random", random_state=0, **params
        ),
        "nica_ivae": lambda: NonlinearICA(k, method="ivae", random_state=0, **params),
        "fastica": lambda: FastICA(
            k, whiten="unit-variance", random_state=0, max_iter=1000, **params
        ),
    }[model]()
    record = dict(family=family, seed=seed, model=model, scale=scale)
    if params:
        record["params"] = params
    fit_rows = test_rows = np.arange(len(X))
    if holdout:
        fit_rows, test_rows = train_test_split(
            fit_rows,
            test_size=holdout,
            stratify=u if u.ndim == 1 else None,
            random_state=0,
        )
        record["holdout"] = holdout
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        if model == "fastica":
            est.fit(X[fit_rows])
        else:
            est.fit(X[fit_rows], u[fit_rows])
        record["seconds"] = round(time.perf_counter() - start, 2)
        Z = est.transform(X[test_rows])
        record["mcc"] = round(float(mean_corr_coef(S[test_rows], Z)), 4)
        if holdout and model != "fastica":
            record["score"] = round(float(est.score(X[test_rows], u[test_rows])), 4)
    record["warnings"] = sorted({f"{w.category.__name__}" for w in caught})
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--models", nargs="+", default=["nica", "ivae", "fastica"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[101, 102, 103])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", default=None, help="append records to this JSONL")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an estimator parameter for every model (repeatable), e.g. prior=laplace",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="fraction of rows kept out of the fit; MCC and score on those rows",
    )
    parser.add_argument(
        "--default",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a constant of skivae._defaults in every fit, e.g. DISTILL_LR=0.001",
    )
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    params, defaults = parse_cli_settings(parser, args.set, args.default)
    if args.one:  # the child process
        family, seed, model, scale = args.one
        record = fit_one(family, int(seed), model, float(scale), params, args.holdout)
        if defaults:
            record["defaults"] = defaults
        print(json.dumps(record))
        return
    passed = [f"--set={item}" for item in args.set]
    passed += [f"--default={item}" for item in args.default]
    passed += [f"--holdout={args.holdout}"]
    records = []
    for family in args.families:
        for seed in args.seeds:
            for model in args.models:
                if model in SQUARE_ONLY and family == "under4to10":
                    continue
                cmd = [sys.executable, __file__, "--one", family, str(seed), model]
                out = subprocess.run(
                    [*cmd, str(args.scale), *passed],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                if out.returncode:
                    record = dict(
                        family=family, seed=seed, model=model, error=out.stderr[-300:]
                    )
                else:
                    record = json.loads(out.stdout.strip().splitlines()[-1])
                records.append(record)
                print(json.dumps(record), flush=True)
                if args.out:
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(record) + "\n")
    _summarise(records)


def _summarise(records):
    print("\nmedian MCC (worst draw), median seconds")
    groups = {}
    for r in records:
        groups.setdefault((r["family"], r["model"]), []).append(r)
    for (family, model), rs in groups.items():
        mcc = [r["mcc"] for r in rs if "mcc" in r]
        secs = [r["seconds"] for r in rs if "seconds" in r]
        failed = sum("error" in r for r in rs)
        scores = [r["score"] for r in rs if "score" in r]
        held = f"  held-out score {np.median(scores):.3f}" if scores else ""
        if mcc:
            print(
                f"  {family:11s} {model:9s} {np.median(mcc):.3f} ({min(mcc):.3f})  "
                f"{np.median(secs):5.1f} s  fits {len(rs)}  failed {failed}{held}"
            )
        else:
            print(f"  {family:11s} {model:9s} all {failed} fits failed")


if __name__ == "__main__":
    main()
