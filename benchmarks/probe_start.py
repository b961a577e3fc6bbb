"""Where an iVAE's accuracy goes between its flow start and its fit.

``IdentifiableVAE(init="auto")`` starts from a short flow fit, regresses a
new iVAE onto that flow's sources, then maximises the bound
(:mod:`skivae._start`). This script fits the default iVAE on families of
``bench_families.py`` and reports three strong MCCs against the true sources
per fit, all on the training rows:

- ``start``: the short flow's sources (what the regression aims at);
- ``regressed``: the encoder's means right after the regression;
- ``fitted``: ``transform(X)`` of the fitted estimator.

A gap between ``start`` and ``regressed`` is the regression's; one between
``regressed`` and ``fitted`` is the bound's training. With ``n_init`` above
one, the columns ``start`` and ``regressed`` are of the last restart.
``--set key=value`` passes an estimator parameter and ``--default
NAME=value`` sets a constant of :mod:`skivae._defaults` (as in
``bench_families.py``). Each fit runs in a fresh process with one torch
thread. Example (the measurement behind ``DISTILL_LR``,
``results/distill_lr.txt``)::

    python benchmarks/probe_start.py --families paper_std u48 --seeds 41 42 43 44 45 \\
        --default DISTILL_LR=0.001 --jobs 2
"""

import statistics

from _common import apply_defaults, print_table, probe_jobs, run_isolated
from bench_families import FAMILIES, family_data


def probe_one(family, data_seed, params, defaults):
    """One default iVAE fit with the start's sources and the regressed
    encoder recorded: a row of MCCs and seconds."""
    import time
    import warnings

    import torch

    import skivae._ivae as ivae_module
    from skivae import IdentifiableVAE, _start
    from skivae.metrics import mean_corr_coef

    apply_defaults(defaults)
    X, u, S = family_data(family, data_seed)
    row = dict(family=family, data_seed=data_seed, start=float("nan"))
    row["regressed"] = float("nan")
    flow_sources, start_ivae = _start.flow_sources, ivae_module.start_ivae

    def sources_spy(*args, **kwargs):
        Z = flow_sources(*args, **kwargs)
        if Z.shape[0] == len(S):  # the training rows (no validation split)
            row["start"] = mean_corr_coef(S, Z.detach().cpu().numpy())
        return Z

    def start_spy(module, Xt, *args, **kwargs):
        out = start_ivae(module, Xt, *args, **kwargs)
        if Xt.shape[0] == len(S):
            with torch.inference_mode():
                mean = module.encode(Xt)[0]
            row["regressed"] = mean_corr_coef(S, mean.cpu().numpy())
        return out

    _start.flow_sources, ivae_module.start_ivae = sources_spy, start_spy
    est = IdentifiableVAE(S.shape[1], random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X, u)
        row["seconds"] = time.perf_counter() - t0
        row["fitted"] = mean_corr_coef(S, est.transform(X))
    row["init"] = est.init_
    return row


def main(argv=None):
    n_jobs, jobs = probe_jobs(
        __doc__,
        argv,
        FAMILIES,
        default_families=["paper_std", "u48"],
        default_seeds=[41, 42, 43, 44, 45],
    )
    rows = []
    cols = ["family", "data_seed", "init", "start", "regressed", "fitted", "seconds"]
    for row in run_isolated(probe_one, jobs, n_jobs=n_jobs):
        rows.append(row)
        print(
            " ".join(
                f"{c}={row[c]:.3f}" if c in cols[3:] else f"{c}={row[c]}"
                for c in cols
                if c in row
            ),
            flush=True,
        )
    summary = []
    for f in dict.fromkeys(j["family"] for j in jobs):
        rs = [r for r in rows if r["family"] == f]
        out = {"family": f, "fits": len(rs)}
        for c in ("start", "regressed", "fitted"):
            vals = [r[c] for r in rs if r[c] == r[c]]
            out[c] = f"{statistics.median(vals):.3f} ({min(vals):.3f})" if vals else "-"
        out["median_s"] = f"{statistics.median(r['seconds'] for r in rs):.1f}"
        summary.append(out)
    print("\nmedian (worst) MCC per family")
    print_table(summary, ["family", "fits", "start", "regressed", "fitted", "median_s"])


if __name__ == "__main__":
    main()
