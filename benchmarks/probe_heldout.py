"""The iVAE on held-out rows: strong MCC and the bound per row, not MCC alone.

The family table (``bench_families.py``) scores the sources only. A change of
the iVAE's training can leave them as they were and still change the model
that ``score``, ``score_samples`` and ``sample`` use. This script fits
``IdentifiableVAE`` on a family of ``bench_families.py`` with 20% of its rows
held out (a fixed random split) and reports, per fit, the strong MCC of
``transform`` on the held-out rows and ``score`` there (the importance-weighted
log-likelihood bound, nats per row; higher is better). ``--set key=value``
passes an estimator parameter and ``--default NAME=value`` sets a constant of
:mod:`skivae._defaults` (as in ``bench_families.py``). Each fit runs in a
fresh process with one torch thread. Example (the measurement behind
``results/ivae_epochs.txt``: five epochs after the flow start instead of 20)::

    python benchmarks/probe_heldout.py --families paper_std layers4 laplace_leaky \\
        --seeds 41 42 43 --jobs 2 \\
        --default "IVAE_SETTINGS={'flow': (5, 1e-3), 'random': (40, 1e-2)}"
"""

import statistics

from _common import apply_defaults, print_table, probe_jobs, run_isolated
from bench_families import FAMILIES, family_data


def heldout_one(family, data_seed, params, defaults):
    """One iVAE fit on 80% of a family's rows, scored on the rest."""
    import time
    import warnings

    import numpy as np

    from skivae import IdentifiableVAE
    from skivae.metrics import mean_corr_coef

    apply_defaults(defaults)
    X, u, S = family_data(family, data_seed)
    order = np.random.RandomState(0).permutation(len(X))
    cut = int(0.8 * len(X))
    train, test = order[:cut], order[cut:]
    est = IdentifiableVAE(S.shape[1], random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X[train], u[train])
        seconds = time.perf_counter() - t0
    return dict(
        family=family,
        data_seed=data_seed,
        mcc=mean_corr_coef(S[test], est.transform(X[test])),
        score=est.score(X[test], u[test]),
        epochs=est.n_iter_,
        seconds=seconds,
    )


def main(argv=None):
    n_jobs, jobs = probe_jobs(
        __doc__,
        argv,
        FAMILIES,
        default_families=["paper_std"],
        default_seeds=[41, 42, 43],
    )
    cols = ["family", "data_seed", "mcc", "score", "epochs", "seconds"]
    rows = []
    for row in run_isolated(heldout_one, jobs, n_jobs=n_jobs):
        rows.append(row)
        print_table([row], cols)
    summary = []
    for f in dict.fromkeys(j["family"] for j in jobs):
        rs = [r for r in rows if r["family"] == f]
        summary.append(
            {
                "family": f,
                "fits": len(rs),
                "mcc": f"{statistics.median(r['mcc'] for r in rs):.3f}",
                "score": f"{statistics.median(r['score'] for r in rs):.3f}",
                "worst_score": f"{min(r['score'] for r in rs):.3f}",
                "median_s": f"{statistics.median(r['seconds'] for r in rs):.1f}",
            }
        )
    print("\nheld-out medians per family (score: nats per row, higher is better)")
    print_table(summary, ["family", "fits", "mcc", "score", "worst_score", "median_s"])


if __name__ == "__main__":
    main()
