"""Every default estimator on every simulation family: median and worst MCC.

The check behind "defaults that hold on every family": each model runs with
its default parameters (``random_state=--model-seed``) on 15 families of
simulated data (and, when named, 6 held-out probes: ``--families probes``),
over several data draws (``--seeds``, by default 41-45, seeds never used for
tuning), each fit in a fresh process. Models (``--models``):

- ``flow``: ``NonlinearICA()`` (the identifiable flow; only on square,
  non-binary families);
- ``ivae``: ``IdentifiableVAE()`` fitted with ``u`` (``init="auto"``);
- ``ivae_random``: ``IdentifiableVAE(init="random")`` with ``u``;
- ``vae``: ``IdentifiableVAE()`` fitted with ``u=None`` (the plain VAE);
- ``tcl``: ``NonlinearICA(method="tcl")`` (only with a categorical ``u``);
- ``gcl``: ``NonlinearICA(method="gcl")``;
- ``fastica``: scikit-learn's ``FastICA(whiten="unit-variance")``, the linear
  baseline.

The default models are ``flow ivae vae ivae_random fastica``; ``tcl`` and
``gcl`` are slow and run only when named. Every estimator gets
``n_components=n_sources`` and, on the ``binary`` family, the iVAE/VAE get
``likelihood="bernoulli"`` (both declare the data, they are not tuning).
``--set key=value`` overrides a parameter of every skivae estimator (never
FastICA); ``--set model.key=value`` (e.g. ``--set flow.n_init=2``) of one model.
``--default NAME=value`` sets a constant of :mod:`skivae._defaults` in every
fit's process (e.g. ``--default DISTILL_LR=0.001``: a default against its
alternative, without editing the package).

Per fit it records ``mcc`` (strong MCC of ``transform(X)`` against the true
sources), for ``tcl``/``gcl`` also ``mcc_abs`` (``|estimate|`` against
``|s|``, what contrastive methods identify for symmetric sources), the seconds
of ``fit`` alone, the peak resident memory, and ``warned``: 1 when ``fit``
raised a ``ConvergenceWarning`` (all warnings are silenced, not shown; the CSV
keeps the first ``ConvergenceWarning``'s message in ``warning``). A fit that
raises is recorded with its error and a NaN MCC.

It prints every fit, then per (family, model) the number of fits, median and
worst MCC, median seconds and the number of fits that warned, then a wide
table (one row per family, "median (worst)" per model) and the median seconds
per family and model. It writes ``<out>/<tag>.txt`` (the command line, then
the tables), ``<tag>.csv`` (one row per fit, rewritten after every fit) and
``<tag>.png`` (a dot per draw, a bar at the median, per family and model).
``--scale`` multiplies every family's sample count (for smoke runs);
``--data-only`` only draws each family's data and prints its shape.

    python benchmarks/bench_families.py --jobs 2
    python benchmarks/bench_families.py --models tcl gcl --tag families_contrastive
    python benchmarks/bench_families.py --families paper_std u48 --models ivae \\
        --seeds 1 --scale 0.05 --tag smoke --no-plot
"""

import argparse
import csv
import os
import shlex
import statistics
import sys
import time

from _common import (
    MCC_STATS,
    apply_defaults,
    parse_cli_settings,
    print_table,
    run_isolated,
    summarize,
)
from bench_undercomplete import FAMILIES as _UNDERCOMPLETE

#: name -> (generator, keyword arguments). Generators: "nonstationary"
#: (``make_nonstationary_sources``, ``u`` a segment index) and "continuous"
#: (``make_continuous_aux_sources``, a continuous 2-D ``u``). The key
#: ``rel_noise`` is the benchmark's own: Gaussian noise of that standard
#: deviation relative to each feature's standard deviation is added to the
#: noiseless ``X`` (10 % on the standardised scale), from a generator seeded by
#: ``(data seed, 1)``, so ``noise10``'s clean ``X`` is ``paper_std``'s.
FAMILIES = {
    "paper_std": (
        "nonstationary",
        dict(n_segments=40, n_per_segment=1000, n_sources=5, n_layers=3),
    ),
    "paper_var": (
        "nonstationary",
        dict(
            n_segments=40, n_per_segment=1000, n_sources=5, n_layers=3, scale_type="var"
        ),
    ),
    "layers4": (
        "nonstationary",
        dict(n_segments=40, n_per_segment=1000, n_sources=5, n_layers=4),
    ),
    "d10": (
        "nonstationary",
        dict(n_segments=40, n_per_segment=1000, n_sources=10, n_layers=3),
    ),
    "d20": (
        "nonstationary",
        dict(n_segments=40, n_per_segment=1000, n_sources=20, n_layers=2),
    ),
    "few_segments": (
        "nonstationary",
        dict(n_segments=8, n_per_segment=3000, n_sources=5, n_layers=3),
    ),
    "means": (
        "nonstationary",
        dict(
            n_segments=40,
            n_per_segment=1000,
            n_sources=5,
            n_layers=3,
            mean_range=(-5.0, 5.0),  # the official code's "uncentered" means
        ),
    ),
    "laplace_leaky": (
        "nonstationary",
        dict(
            n_segments=40,
            n_per_segment=500,
            n_sources=5,
            n_layers=2,
            source="laplace",
            activation="leaky_relu",
        ),
    ),
    # u48 and u510 exactly as in bench_undercomplete.py
    "u48": ("nonstationary", dict(_UNDERCOMPLETE["u48"])),
    "u510": ("nonstationary", dict(_UNDERCOMPLETE["u510"])),
    "cont_periodic": (
        "continuous",
        dict(
            n_samples=12000,
            n_sources=3,
            n_features=6,
            n_aux=2,
            n_layers=2,
            activation="leaky_relu",
            aux_map="periodic",
            noise=0.05,
        ),
    ),
    "cont_monotone": (
        "continuous",
        dict(
            n_samples=12000,
            n_sources=3,
            n_features=6,
            n_aux=2,
            n_layers=2,
            activation="leaky_relu",
            aux_map="monotone",
            noise=0.05,
        ),
    ),
    "cont_square": (
        "continuous",
        dict(n_samples=20000, n_sources=5, n_aux=2, n_layers=2),
    ),
    "binary": (
        "nonstationary",
        dict(
            n_segments=40,
            n_per_segment=1000,
            n_sources=3,
            n_features=12,
            n_layers=2,
            binary=True,
        ),
    ),
    "noise10": (
        "nonstationary",
        dict(n_segments=40, n_per_segment=1000, n_sources=5, n_layers=3, rel_noise=0.1),
    ),
}
#: Held-out probes, added in version 0.6 after every default was chosen and
#: never used to choose one: other dimensions, source laws, mixings, noise
#: levels, kinds of ``u`` and both scale conventions than the families above.
#: They run only when named (``--families probes`` names them all).
PROBES = {
    "probe_fresh_laplace": (
        "nonstationary",
        dict(
            n_segments=30,
            n_per_segment=800,
            n_sources=4,
            n_layers=3,
            source="laplace",
            reuse_weights=False,
            mixing="orthogonal",
        ),
    ),
    "probe_small_var": (
        "nonstationary",
        dict(
            n_segments=15, n_per_segment=400, n_sources=3, n_layers=2, scale_type="var"
        ),
    ),
    "probe_d7_means": (
        "nonstationary",
        dict(
            n_segments=40,
            n_per_segment=800,
            n_sources=7,
            n_layers=2,
            scale_type="var",
            mean_range=(-2.0, 2.0),
        ),
    ),
    "probe_under_noise": (
        "nonstationary",
        dict(
            n_segments=30,
            n_per_segment=600,
            n_sources=4,
            n_features=12,
            n_layers=2,
            activation="leaky_relu",
            mixing="orthogonal",
            noise=0.3,
        ),
    ),
    "probe_cont1_laplace": (
        "continuous",
        dict(
            n_samples=8000,
            n_sources=3,
            n_features=7,
            n_aux=1,
            n_layers=2,
            source="laplace",
            noise=0.1,
        ),
    ),
    "probe_cont_square_var": (
        "continuous",
        dict(
            n_samples=15000,
            n_sources=4,
            n_aux=3,
            n_layers=3,
            aux_map="monotone",
            scale_type="var",
        ),
    ),
}
FAMILIES.update(PROBES)
DEFAULT_FAMILIES = [f for f in FAMILIES if f not in PROBES]
MODELS = ("flow", "ivae", "ivae_random", "vae", "tcl", "gcl", "fastica")
DEFAULT_MODELS = ("flow", "ivae", "vae", "ivae_random", "fastica")
_IVAE_MODELS = ("ivae", "ivae_random", "vae")
_SIZE_KEYS = ("n_per_segment", "n_samples")  # what --scale multiplies


def family_data(name, random_state, scale=1.0):
    """Draw family ``name``: returns ``(X, u, S)``.

    ``scale`` multiplies the number of points per segment (or of samples).
    """
    import numpy as np

    from skivae.datasets import make_continuous_aux_sources, make_nonstationary_sources

    generator, kwargs = FAMILIES[name]
    kw = dict(kwargs)
    rel_noise = kw.pop("rel_noise", 0.0)
    for key in _SIZE_KEYS:
        if key in kw:
            kw[key] = max(2, int(round(kw[key] * scale)))
    make = {
        "nonstationary": make_nonstationary_sources,
        "continuous": make_continuous_aux_sources,
    }[generator]
    X, u, S = make(random_state=random_state, **kw)
    if rel_noise:
        rng = np.random.default_rng((random_state, 1))
        X = X + rel_noise * X.std(axis=0) * rng.standard_normal(X.shape)
    return X, u, S


def skip_reason(model, family):
    """Why ``model`` does not run on ``family`` (None when it does)."""
    generator, kw = FAMILIES[family]
    n_features = kw.get("n_features") or kw["n_sources"]
    if model == "flow" and kw.get("binary"):
        return "the flow models continuous X"
    if model == "flow" and n_features != kw["n_sources"]:
        return "the flow needs n_features == n_sources"
    if model == "tcl" and generator != "nonstationary":
        return "TCL needs a categorical u"
    return None


def model_params(model, params):
    """The ``--set`` overrides that apply to ``model`` (skivae models only)."""
    out = {k: v for k, v in params.items() if "." not in k}
    for key, value in params.items():  # model.key wins over key
        target, dot, name = key.rpartition(".")
        if dot and target == model:
            out[name] = value
    return out


def make_estimator(model, family, n_sources, model_seed, params):
    """The estimator of ``model`` with defaults, ``n_components=n_sources``."""
    from sklearn.decomposition import FastICA

    from skivae import IdentifiableVAE, NonlinearICA

    if model == "fastica":
        return FastICA(n_sources, whiten="unit-variance", random_state=model_seed)
    if model in _IVAE_MODELS:
        kw = {"likelihood": "bernoulli"} if FAMILIES[family][1].get("binary") else {}
        if model == "ivae_random":
            kw["init"] = "random"
        kw.update(params)
        return IdentifiableVAE(n_sources, random_state=model_seed, **kw)
    kw = {} if model == "flow" else {"method": model}
    kw.update(params)
    return NonlinearICA(n_sources, random_state=model_seed, **kw)


def fit_one(family, model, data_seed, model_seed, scale, params, defaults=None):
    import time
    import traceback
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from skivae.metrics import mean_corr_coef

    apply_defaults(defaults)
    X, u, S = family_data(family, data_seed, scale)
    n_sources = S.shape[1]
    row = {
        "family": family,
        "model": model,
        "data_seed": data_seed,
        "model_seed": model_seed,
        "n_samples": X.shape[0],
        "mcc": float("nan"),
        "mcc_abs": float("nan"),
        "seconds": float("nan"),
        "warned": 0,
        "error": "",
        "warning": "",
    }
    try:
        est = make_estimator(model, family, n_sources, model_seed, params)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            if model == "fastica":
                est.fit(X)
            else:
                est.fit(X, None if model == "vae" else u)
            row["seconds"] = time.perf_counter() - t0
        convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if convergence:
            row["warned"] = 1
            row["warning"] = str(convergence[0].message).replace("\n", " ")[:200]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Z = est.transform(X)
        row["mcc"] = mean_corr_coef(S, Z)
        if model in ("tcl", "gcl"):
            row["mcc_abs"] = mean_corr_coef(np.abs(S), np.abs(Z))
    except Exception as exc:  # a failed fit is a result, not the end of the run
        row["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
        traceback.print_exc()
    return row


def pivot(summary, families, models, cell):
    """One row per family, one column per model, ``cell(summary_row)`` each."""
    index = {(r["family"], r["model"]): r for r in summary}
    table = []
    for f in families:
        row = {"family": f}
        for m in models:
            r = index.get((f, m))
            row[m] = cell(r) if r is not None else "-"
        table.append(row)
    return table


def plot(rows, families, models, path):
    """A dot per draw and a bar at the median, per family and model: MCC, seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, 1, figsize=(max(10, 0.9 * len(families) + 2), 8), sharex=True
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    width = 0.8 / max(1, len(models))
    for ax, key in zip(axes, ("mcc", "seconds")):
        for j, m in enumerate(models):
            color = colors[j % len(colors)]
            label = m
            for i, f in enumerate(families):
                vals = [
                    r[key]
                    for r in rows
                    if r["family"] == f and r["model"] == m and r[key] == r[key]
                ]
                if not vals:
                    continue
                x = i - 0.4 + width * (j + 0.5)
                ax.scatter([x] * len(vals), vals, s=12, color=color, alpha=0.6)
                ax.hlines(
                    statistics.median(vals),
                    x - 0.45 * width,
                    x + 0.45 * width,
                    color=color,
                    linewidth=2.5,
                    label=label,
                )
                label = None  # one legend entry per model
        ax.grid(alpha=0.3, axis="y")
        for i in range(len(families) - 1):
            ax.axvline(i + 0.5, color="0.85", linewidth=0.8)
    axes[0].set_ylabel("MCC (dots: draws, bars: median)")
    axes[0].set_ylim(0, 1.02)
    secs = [r["seconds"] for r in rows if r["seconds"] == r["seconds"]]
    if secs and min(secs) > 0 and max(secs) / min(secs) > 20:
        axes[1].set_yscale("log")
    axes[1].set_ylabel("fit seconds")
    axes[1].set_xticks(range(len(families)))
    axes[1].set_xticklabels(families, rotation=45, ha="right")
    axes[0].legend(ncol=min(len(models), 7), fontsize=8, loc="lower left")
    n_draws = len({r["data_seed"] for r in rows})
    axes[0].set_title(f"default estimators per family ({n_draws} data draw(s))")
    axes[1].set_xlim(-0.5, len(families) - 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--families",
        nargs="+",
        default=DEFAULT_FAMILIES,
        metavar="F",
        help="family names, or 'probes' for every held-out probe",
    )
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="M")
    p.add_argument("--seeds", type=int, nargs="+", default=[41, 42, 43, 44, 45])
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument(
        "--set", action="append", help="estimator parameter, [model.]key=value"
    )
    p.add_argument(
        "--default",
        action="append",
        metavar="NAME=VALUE",
        help="a constant of skivae._defaults in every fit, e.g. DISTILL_LR=0.001",
    )
    p.add_argument("--scale", type=float, default=1.0, help="sample-count factor")
    p.add_argument("--tag", default="families", help="name of the output files")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument(
        "--data-only", action="store_true", help="only draw each family's data"
    )
    args = p.parse_args(argv)
    args.families = [
        g for f in args.families for g in (PROBES if f == "probes" else [f])
    ]
    for name, allowed in (("families", FAMILIES), ("models", MODELS)):
        bad = [v for v in getattr(args, name) if v not in allowed]
        if bad:
            p.error(f"unknown {name} {bad}; choose from {list(allowed)}")
    if not args.scale > 0:
        p.error("--scale must be > 0")
    words = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    command = "python " + " ".join(shlex.quote(w) for w in words)

    if args.data_only:
        for f in args.families:
            for s in args.seeds:
                t0 = time.perf_counter()
                X, u, S = family_data(f, s, args.scale)
                print(
                    f"{f:>14} seed {s}: X {X.shape}, u {u.shape}, S {S.shape}, "
                    f"{time.perf_counter() - t0:.2f} s"
                )
        return

    params, defaults = parse_cli_settings(p, args.set, args.default)
    for m in args.models:  # a misspelt --set key fails here, not in every fit
        if m != "fastica":
            try:
                make_estimator(m, args.families[0], 1, 0, model_params(m, params))
            except TypeError as exc:
                p.error(f"--set for {m}: {exc}")
    jobs, skipped = [], []
    for f in args.families:
        for m in args.models:
            reason = skip_reason(m, f)
            if reason:
                skipped.append(f"{f}/{m}: {reason}")
        for s in args.seeds:
            for m in args.models:
                if skip_reason(m, f) is None:
                    jobs.append(
                        dict(
                            family=f,
                            model=m,
                            data_seed=s,
                            model_seed=args.model_seed,
                            scale=args.scale,
                            params={} if m == "fastica" else model_params(m, params),
                            defaults=defaults,
                        )
                    )
    header = [
        f"command: {command}",
        f"params: {params or 'defaults'}; "
        f"skivae._defaults: {defaults or 'as shipped'}; model seed {args.model_seed}; "
        f"data seeds {args.seeds}; scale {args.scale}; "
        f"{args.jobs} job(s) x {args.threads} thread(s)",
    ]
    print("\n".join(header))
    for line in skipped:
        print(f"skipped {line}")

    cols = [
        "family",
        "model",
        "data_seed",
        "n_samples",
        "mcc",
        "mcc_abs",
        "seconds",
        "warned",
        "peak_mb",
        "error",
    ]
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, args.tag)
    rows = []
    t_start = time.perf_counter()
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols)
        with open(f"{stem}.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols + ["model_seed", "warning"])
            writer.writeheader()
            writer.writerows(rows)
    wall = time.perf_counter() - t_start

    for r in rows:
        r["failed"] = int(bool(r["error"]))
    stats = [
        ("median_mcc", "mcc", "median"),
        ("min_mcc", "mcc", "min"),
        ("median_s", "seconds", "median"),
        ("warned", "warned", "sum"),
        ("failed", "failed", "sum"),
        ("median_mcc_abs", "mcc_abs", "median"),
        next(s for s in MCC_STATS if s[0] == "max_peak_mb"),
    ]
    summary = summarize(rows, ["family", "model"], stats)
    models = [m for m in args.models if any(r["model"] == m for r in rows)]
    families = [f for f in args.families if any(r["family"] == f for r in rows)]
    wide = pivot(
        summary,
        families,
        models,
        lambda r: f"{r['median_mcc']:.3f} ({r['min_mcc']:.3f})",
    )
    wide_s = pivot(summary, families, models, lambda r: f"{r['median_s']:.1f}")
    fit_s = sum(r["seconds"] for r in rows if r["seconds"] == r["seconds"])

    with open(f"{stem}.txt", "w") as fh:
        for file in (sys.stdout, fh):
            if file is fh:
                print("\n".join(header), file=fh)
                for line in skipped:
                    print(f"skipped {line}", file=fh)
            print(
                "\nsummary per family and model (over data draws; warned: fits "
                "that raised a ConvergenceWarning)",
                file=file,
            )
            print_table(summary, list(summary[0]), file=file)
            print("\nmedian MCC (worst draw) per family and model", file=file)
            print_table(wide, ["family", *models], file=file)
            print("\nmedian fit seconds per family and model", file=file)
            print_table(wide_s, ["family", *models], file=file)
            print(
                f"\n{len(rows)} fits, {fit_s:.0f} s of fitting in all, "
                f"{wall:.0f} s wall clock",
                file=file,
            )
    written = [f"{stem}.txt", f"{stem}.csv"]
    if not args.no_plot:
        plot(rows, families, models, f"{stem}.png")
        written.append(f"{stem}.png")
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
