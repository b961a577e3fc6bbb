"""Missing cells and heavy-tailed noise: the masked iVAE and the Laplace likelihood.

Three parts (``--part``, ``all`` runs the three), each fit in a fresh process
with one torch thread (``--jobs`` processes at a time). Data: the families
``paper_std`` (5 sources -> 5 features, noiseless) and ``u48`` (4 Laplace
sources -> 8 features, Gaussian noise 0.05 on ``f(s)``) of
``bench_families.py``, drawn exactly as there (``--seeds``, by default 41-45;
``--scale`` multiplies their sample counts, for smoke runs). Every iVAE is
``IdentifiableVAE(n_components, random_state=m)``, ``n_components`` the
number of true sources, fitted with ``u``, for each model seed ``m`` of
``--model-seeds`` (by default 0 alone). The masked iVAE's training is
sensitive: on ``u48`` at 30 % MCAR one draw's MCC moves by up to 0.12
between model seeds (``results/missing_spread.txt``), and moved by up to
0.14 with a last-bit change of its input before the flow start read drawn
cells (``results/missing_refill.txt``), so
compare methods over several model seeds, not one fit per draw.

- ``mcc``: MCC (strong MCC of ``transform(X)`` against the true sources)
  against missingness. Patterns: ``mcar<p>`` for each rate of ``--rates``
  (each cell missing independently with that probability) and ``mnar30``
  (feature ``j``'s cells missing with probability ``sigmoid(a_j + 2 z)``,
  ``z`` the standardised value, ``a_j`` set so that 30 % of the feature is
  missing: large values go missing more often). A row left with no observed
  cell gets one random cell back. The mask is drawn from
  ``default_rng((seed, 2))``, the same for every method. Methods: ``masked``
  (the iVAE fitted on ``X`` with NaN), ``simple`` (``SimpleImputer()`` then the
  iVAE in a Pipeline), ``iterative`` (``IterativeImputer(random_state=0,
  max_iter=10)`` then the iVAE). At rate 0 the three are one fit: only
  ``masked`` runs (``-`` in the other columns). When ``masked`` and
  ``iterative`` both run, a paired table gives, per pattern, the median and
  the worst over (draw, model seed) of the masked iVAE's MCC minus the
  ``IterativeImputer`` pipeline's on the same mask and model seed, and how
  often it is ahead. The table also gives the RMSE
  of each method's imputation of the missing cells (see below). The fourth
  column, ``supervised``, is no iVAE but a ceiling: an ``MLPRegressor`` (two
  hidden layers of 128, early stopping) told the true sources, predicting
  them from the same masked ``X`` (standardised observed cells, missing cells
  0, and the mask as 0/1 columns; not ``u``, as ``transform`` does not see
  it), cross-fitted on two halves of the rows. The function of ``x`` best
  correlated with a source is its conditional mean ``E[s | x]``; this
  regression estimates it, so its MCC approximates the most any
  ``transform(X)`` can reach on that mask, unsupervised or not.
- ``impute``: imputation RMSE on the missing cells, in units of each
  feature's standard deviation on the complete data, of the masked iVAE
  (``np.where(isnan, inverse_transform(transform(Xm)), Xm)``) against
  ``IterativeImputer(random_state=0)`` and ``KNNImputer()``: on the families
  with 30 % MCAR (the masks of part ``mcc``) and on scikit-learn's bundled
  tables (``--tables``: wine, breast_cancer, digits) with 20 % MCAR, the mask
  drawn per seed, ``u`` the class label. On the tables the iVAE has
  ``n_components`` 8 (wine: 13 features, breast cancer: 30) and 10 (digits,
  its 3 constant pixel columns dropped first: 61 features). The two imputers
  get ``X`` standardised by the observed cells' mean and standard deviation
  (and their output unstandardised): KNN distances would otherwise be
  dominated by the features of largest scale; the iVAE standardises itself.
- ``tails``: noise added to the observed ``X`` (no missing cells): ``clean``
  (none; ``u48`` keeps its own Gaussian noise), ``t3`` (Student-t draws with
  3 degrees of freedom times 10 % of each feature's standard deviation: a
  scale of 10 %, a standard deviation of sqrt(3) x 10 %) and ``outliers1``
  (1 % of the cells moved by 10 feature standard deviations, random sign),
  from ``default_rng((seed, 3))``. Methods: ``gaussian`` and ``laplace``, the
  iVAE's ``likelihood``. MCC against the true sources.

A fit shared by two parts (``masked`` on ``mcar0`` is ``gaussian`` on
``clean``; ``masked`` on ``mcar30`` is in parts ``mcc`` and ``impute``) runs
once and is reported in both. Per fit: ``mcc``, ``rmse``, ``missing_frac``
(the fraction of cells missing), seconds of the fit (for the imputers, of the
imputation), peak resident memory, ``warned`` (1 when any step raised a
``ConvergenceWarning``, an ``IterativeImputer`` stopped by ``max_iter=10``
included; the CSV's ``warning`` keeps the distinct warnings' first words) and
any error. On the tables the iVAE raises an ``IdentifiabilityWarning`` (``u``
has too few values for the theory; the latents are not the point there).

It prints every fit, then per part a summary per (data, pattern or noise,
method) and a wide table: "median (worst)" MCC, or the median RMSE. It writes
``<out>/<tag>.txt`` (the command line and the tables) and ``<tag>.csv`` (one
row per fit and part, rewritten after every fit).

    python benchmarks/bench_missing.py --jobs 2
    python benchmarks/bench_missing.py --part tails --tag missing_tails
    python benchmarks/bench_missing.py --part all --seeds 1 --scale 0.05 \\
        --rates 0 0.3 --tag smoke --out /tmp/smoke_missing
"""

import argparse
import csv
import os
import shlex
import statistics
import sys
import time

from _common import print_table, run_isolated, summarize
from bench_families import FAMILIES, family_data

#: table -> (sklearn.datasets loader, n_components of the iVAE)
TABLES = {
    "wine": ("load_wine", 8),
    "breast_cancer": ("load_breast_cancer", 8),
    "digits": ("load_digits", 10),
}
#: part -> {method shown: fit code}; one code is one kind of fit, shared by parts
PARTS = {
    "mcc": {
        "masked": "ivae",
        "simple": "simple_ivae",
        "iterative": "iterative_ivae",
        "supervised": "supervised",
    },
    "impute": {"masked": "ivae", "iterative": "iterative", "knn": "knn"},
    "tails": {"gaussian": "ivae", "laplace": "ivae_laplace"},
}
NOISES = ("clean", "t3", "outliers1")
#: what identifies one fit
KEY = ("data", "seed", "missing", "noise", "code", "model_seed")


def load(data, seed, scale):
    """``(X, u, S, n_components)`` of a family draw or a table (S None)."""
    import numpy as np
    import sklearn.datasets

    if data in TABLES:
        loader, k = TABLES[data]
        X, y = getattr(sklearn.datasets, loader)(return_X_y=True)
        X = X[:, X.std(axis=0) > 0].astype(np.float64)  # digits: constant pixels
        return X, y, None, min(k, X.shape[1])
    X, u, S = family_data(data, seed, scale)
    return X, u, S, S.shape[1]


def add_noise(X, noise, seed):
    """``X`` with the noise ``noise`` of part ``tails``."""
    import numpy as np

    if noise == "clean":
        return X
    rng = np.random.default_rng((seed, 3))
    sd = X.std(axis=0)
    if noise == "t3":
        return X + 0.1 * sd * rng.standard_t(3, size=X.shape)
    cells = rng.random(X.shape) < 0.01
    sign = rng.choice([-1.0, 1.0], size=X.shape)
    return X + cells * sign * 10 * sd


def make_mask(X, missing, seed):
    """Boolean mask of the missing cells: ``mcar<percent>`` or ``mnar<percent>``."""
    import numpy as np
    from scipy.optimize import brentq
    from scipy.special import expit

    rng = np.random.default_rng((seed, 2))
    rate = float(missing[4:]) / 100
    if missing.startswith("mcar"):
        mask = rng.random(X.shape) < rate
    else:  # per feature, P(missing) = sigmoid(a + 2 z), a: `rate` missing on average
        Z = (X - X.mean(axis=0)) / X.std(axis=0)
        a = [
            brentq(lambda a, z=z: expit(a + 2 * z).mean() - rate, -50, 50) for z in Z.T
        ]
        prob = expit(np.array(a) + 2 * Z)
        mask = rng.random(X.shape) < prob
    empty = np.flatnonzero(mask.all(axis=1))  # give such a row one cell back
    mask[empty, rng.integers(X.shape[1], size=empty.size)] = False
    return mask


def make_model(code, n_components, model_seed=0):
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.pipeline import make_pipeline

    from skivae import IdentifiableVAE

    if code == "iterative":
        return IterativeImputer(random_state=0)
    if code == "knn":
        return KNNImputer()
    like = "laplace" if code == "ivae_laplace" else "gaussian"
    ivae = IdentifiableVAE(n_components, likelihood=like, random_state=model_seed)
    if code == "simple_ivae":
        return make_pipeline(SimpleImputer(), ivae)
    if code == "iterative_ivae":
        return make_pipeline(IterativeImputer(random_state=0, max_iter=10), ivae)
    return ivae


def supervised_sources(Xm, S):
    """Cross-fitted prediction of the true sources ``S`` from the masked ``Xm``.

    Two halves of the rows; each is predicted by an MLP trained on the other
    with the sources known. Inputs: the observed cells standardised, missing
    cells 0, and the mask.
    """
    import numpy as np
    from sklearn.model_selection import KFold
    from sklearn.neural_network import MLPRegressor

    mask = np.isnan(Xm)
    Z = (Xm - np.nanmean(Xm, axis=0)) / np.nanstd(Xm, axis=0)
    inputs = np.hstack([np.nan_to_num(Z), mask.astype(float)])
    P = np.zeros_like(S)
    for train, test in KFold(2, shuffle=True, random_state=0).split(inputs):
        mlp = MLPRegressor(
            hidden_layer_sizes=(128, 128), early_stopping=True, random_state=0
        )
        P[test] = mlp.fit(inputs[train], S[train]).predict(inputs[test])
    return P


def fit_one(data, seed, missing, noise, code, scale, model_seed=0):
    import time
    import traceback
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from skivae.metrics import mean_corr_coef

    nan = float("nan")
    row = dict(data=data, seed=seed, missing=missing, noise=noise, code=code)
    row["model_seed"] = model_seed
    row.update(n_samples=0, missing_frac=nan, mcc=nan, rmse=nan, seconds=nan)
    row.update(warned=0, warning="", error="")
    try:
        X, u, S, n_components = load(data, seed, scale)
        X = add_noise(X, noise, seed)
        mask = make_mask(X, missing, seed)
        Xm = np.where(mask, np.nan, X)
        row.update(n_samples=X.shape[0], missing_frac=mask.mean())
        if code == "supervised":
            t0 = time.perf_counter()
            row["mcc"] = mean_corr_coef(S, supervised_sources(Xm, S))
            row["seconds"] = time.perf_counter() - t0
            return row
        model = make_model(code, n_components, model_seed)
        Ximp = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            if code in ("iterative", "knn"):  # on the observed cells' scale
                mu, sd = np.nanmean(Xm, axis=0), np.nanstd(Xm, axis=0)
                sd[sd == 0] = 1.0
                Ximp = model.fit_transform((Xm - mu) / sd) * sd + mu
                row["seconds"] = time.perf_counter() - t0
            else:
                model.fit(Xm, u)
                row["seconds"] = time.perf_counter() - t0
                Z = model.transform(Xm)
                if S is not None:
                    row["mcc"] = mean_corr_coef(S, Z)
                if mask.any():
                    if code in ("ivae", "ivae_laplace"):
                        Ximp = model.inverse_transform(Z)
                    else:  # the pipeline's imputer
                        Ximp = model[:-1].transform(Xm)
        if Ximp is not None and mask.any():
            err = (np.where(mask, Ximp, X) - X) / X.std(axis=0)
            row["rmse"] = float(np.sqrt(np.mean(err[mask] ** 2)))
        row["warned"] = int(
            any(issubclass(w.category, ConvergenceWarning) for w in caught)
        )
        seen = dict.fromkeys(
            f"{w.category.__name__}: {str(w.message)[:60]}" for w in caught
        )
        row["warning"] = " | ".join(seen).replace("\n", " ")[:300]
    except Exception as exc:  # a failed fit is a result, not the end of the run
        row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
        traceback.print_exc()
    return row


def part_keys(part, args, methods):
    """``[(method, key)]`` of the fits of ``part``, one per model seed of an
    iVAE fit (the ceiling and the imputers alone have no iVAE: one seed)."""
    out = []
    if part == "mcc":
        patterns = [f"mcar{100 * r:g}" for r in args.rates] + ["mnar30"]
        for d in args.families:
            for s in args.seeds:
                for pat in patterns:
                    for m in methods:
                        if m in ("masked", "supervised") or pat != "mcar0":
                            out.append((m, (d, s, pat, "clean", PARTS[part][m])))
    elif part == "impute":
        for d in [*args.families, *args.tables]:
            pat = "mcar20" if d in TABLES else "mcar30"
            for s in args.seeds:
                for m in methods:
                    out.append((m, (d, s, pat, "clean", PARTS[part][m])))
    else:
        for d in args.families:
            for s in args.seeds:
                for noise in NOISES:
                    for m in methods:
                        out.append((m, (d, s, "mcar0", noise, PARTS[part][m])))
    return [
        (m, (*key, ms))
        for m, key in out
        for ms in (args.model_seeds if "ivae" in key[-1] else args.model_seeds[:1])
    ]


def wide(summary, index, methods, cell):
    """One row per value of the ``index`` columns, ``cell(row)`` per method."""
    table = {}
    for r in summary:
        row = table.setdefault(
            tuple(r[k] for k in index), dict(zip(index, (r[k] for k in index)))
        )
        row[r["method"]] = cell(r)
    return [{m: "-" for m in methods} | row for row in table.values()]


_STATS = dict(
    median_mcc=("mcc", "median"),
    min_mcc=("mcc", "min"),
    median_rmse=("rmse", "median"),
    max_rmse=("rmse", "max"),
    median_s=("seconds", "median"),
    max_peak_mb=("peak_mb", "max"),
    warned=("warned", "sum"),
    failed=("failed", "sum"),
)


def _stats(names):
    return [(name, *_STATS[name]) for name in names.split()]


def _mcc_cell(r):
    return f"{r['median_mcc']:.3f} ({r['min_mcc']:.3f})"


#: part -> (group columns, summary stats, wide-table cell, wide-table title)
REPORT = {
    "mcc": (
        ["data", "missing", "method"],
        _stats("median_mcc min_mcc median_rmse median_s max_peak_mb warned failed"),
        _mcc_cell,
        "median MCC (worst fit) per data, missingness pattern and method",
    ),
    "impute": (
        ["data", "missing", "method"],
        _stats("median_rmse max_rmse median_s max_peak_mb warned failed"),
        lambda r: f"{r['median_rmse']:.3f}",
        "median imputation RMSE (feature standard deviations) per data and method",
    ),
    "tails": (
        ["data", "noise", "method"],
        _stats("median_mcc min_mcc median_s max_peak_mb warned failed"),
        _mcc_cell,
        "median MCC (worst draw) per data, noise and likelihood",
    ),
}
COLS = (
    "part data seed model_seed missing noise method n_samples missing_frac mcc "
    "rmse seconds peak_mb warned error"
).split()


def paired_lead(rows):
    """Per (data, pattern): the masked iVAE's MCC minus the IterativeImputer
    pipeline's, paired on (draw, model seed); ``[]`` unless both ran."""
    mcc = {}
    for r in rows:
        if r["method"] in ("masked", "iterative") and r["mcc"] == r["mcc"]:
            pair = (r["data"], r["missing"], r["seed"], r["model_seed"])
            mcc.setdefault(pair, {})[r["method"]] = r["mcc"]
    diffs = {}
    for (data, pat, *_), both in mcc.items():
        if len(both) == 2:
            diffs.setdefault((data, pat), []).append(both["masked"] - both["iterative"])
    return [
        dict(
            data=data,
            missing=pat,
            pairs=len(d),
            median_lead=statistics.median(d),
            worst_lead=min(d),
            masked_ahead=f"{sum(x > 0 for x in d)}/{len(d)}",
        )
        for (data, pat), d in diffs.items()
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=[*PARTS, "all"], default="all")
    p.add_argument("--families", nargs="+", default=["paper_std", "u48"], metavar="F")
    p.add_argument("--tables", nargs="+", default=list(TABLES), metavar="T")
    p.add_argument("--methods", nargs="+", metavar="M", help="default: all of a part's")
    p.add_argument("--seeds", type=int, nargs="+", default=[41, 42, 43, 44, 45])
    p.add_argument(
        "--model-seeds",
        type=int,
        nargs="+",
        default=[0],
        metavar="M",
        help="random_state of the iVAE fits (each draw is fitted once per seed)",
    )
    p.add_argument("--rates", type=float, nargs="+", default=[0, 0.1, 0.3, 0.5])
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--scale", type=float, default=1.0, help="sample-count factor")
    p.add_argument("--tag", default="missing", help="name of the output files")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    parts = list(PARTS) if args.part == "all" else [args.part]
    bad = [
        f for f in args.families if f not in FAMILIES or FAMILIES[f][1].get("binary")
    ]
    bad += [t for t in args.tables if t not in TABLES]
    if bad:
        p.error(f"unknown (or binary) data {bad}")
    known = {m for part in parts for m in PARTS[part]}
    unknown = sorted(set(args.methods or ()) - known)
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {sorted(known)}")
    if not args.scale > 0 or not all(0 <= r < 1 for r in args.rates):
        p.error("--scale must be > 0 and every rate in [0, 1)")
    words = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    command = "python " + " ".join(shlex.quote(w) for w in words)

    uses, order = {}, {}  # fit key -> [(part, method)]; (part, method, key) -> rank
    for part in parts:
        methods = [m for m in PARTS[part] if not args.methods or m in args.methods]
        for m, key in part_keys(part, args, methods):
            uses.setdefault(key, []).append((part, m))
            order[part, m, key] = len(order)
    jobs = [dict(zip(KEY, key), scale=args.scale) for key in uses]
    header = [
        f"command: {command}",
        f"parts {parts}; data seeds {args.seeds}; model seeds {args.model_seeds}; "
        f"scale {args.scale}; "
        f"{len(jobs)} fits; {args.jobs} job(s) x {args.threads} thread(s)",
    ]
    print("\n".join(header))

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, args.tag)
    rows, fit_s, t_start = [], 0.0, time.perf_counter()
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        res["failed"] = int(bool(res["error"]))
        fit_s += res["seconds"] if res["seconds"] == res["seconds"] else 0.0
        for part, m in uses[tuple(res[k] for k in KEY)]:
            rows.append(dict(res, part=part, method=m))
        print_table([rows[-1]], COLS)
        with open(f"{stem}.csv", "w", newline="") as fh:
            writer = csv.DictWriter(
                fh, fieldnames=[*COLS, "code", "warning"], extrasaction="ignore"
            )
            writer.writeheader()
            writer.writerows(rows)
    wall = time.perf_counter() - t_start

    with open(f"{stem}.txt", "w") as fh:
        print("\n".join(header), file=fh)
        for file in (sys.stdout, fh):
            for part in parts:
                part_rows = sorted(
                    (r for r in rows if r["part"] == part),
                    key=lambda r: order[
                        r["part"], r["method"], tuple(r[k] for k in KEY)
                    ],
                )
                if not part_rows:
                    continue
                keys, stats, cell, title = REPORT[part]
                summary = summarize(part_rows, keys, stats)
                methods = list(dict.fromkeys(r["method"] for r in part_rows))
                print(
                    f"\n== part {part}: summary over data draws and model seeds",
                    file=file,
                )
                print_table(summary, list(summary[0]), file=file)
                print(f"\n{title}", file=file)
                table = wide(summary, keys[:-1], methods, cell)
                print_table(table, [*keys[:-1], *methods], file=file)
                lead = paired_lead(part_rows) if part == "mcc" else []
                if lead:
                    print(
                        "\nmasked iVAE minus IterativeImputer -> iVAE, paired on "
                        "(draw, model seed)",
                        file=file,
                    )
                    print_table(lead, list(lead[0]), file=file)
            print(
                f"\n{len(jobs)} fits, {fit_s:.0f} s of fitting in all, "
                f"{wall:.0f} s wall clock",
                file=file,
            )
    print(f"wrote {stem}.txt, {stem}.csv")


if __name__ == "__main__":
    main()
