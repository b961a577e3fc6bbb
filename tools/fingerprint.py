"""Fingerprints of fitted results, to check that a refactoring changed nothing.

Fits a set of small configurations that go through every path of the fit
loop (each method, both starts, undercomplete, continuous ``u``, early
stopping, batched and sequential restarts, warm start, no ``u``, binary data)
and prints one SHA-256 digest per configuration of its ``transform``,
``score`` and ``sample`` outputs (on CPU, so bit-identical when nothing
changed):

    python tools/fingerprint.py > before.txt   # on the old checkout
    python tools/fingerprint.py > after.txt    # on the new one
    diff before.txt after.txt

``PYTHONPATH=/other/checkout python tools/fingerprint.py`` fingerprints
another checkout with the same script.
"""

import hashlib
import sys
import time
import warnings

import numpy as np


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()[:16]


def _configs():
    from skivae import IdentifiableVAE, NonlinearICA
    from skivae.datasets import make_continuous_aux_sources, make_nonstationary_sources

    sq = make_nonstationary_sources(8, 150, 3, n_layers=2, random_state=0)
    under = make_nonstationary_sources(
        8, 150, 3, n_features=6, n_layers=2, noise=0.05, random_state=1
    )
    cont = make_continuous_aux_sources(
        1200, 3, n_features=6, n_aux=2, n_layers=2, random_state=2
    )
    binary = make_nonstationary_sources(
        8, 150, 3, n_features=8, n_layers=2, binary=True, random_state=3
    )
    small = dict(max_iter=4)
    return [
        ("ivae flow start square", IdentifiableVAE(random_state=0), sq),
        ("ivae flow start undercomplete", IdentifiableVAE(3, random_state=0), under),
        ("ivae continuous u undercomplete", IdentifiableVAE(3, random_state=0), cont),
        ("ivae random", IdentifiableVAE(init="random", **small, random_state=0), sq),
        (
            "ivae early stopping n_init 2",
            IdentifiableVAE(early_stopping=True, n_init=2, random_state=0),
            sq,
        ),
        (
            "ivae bernoulli",
            IdentifiableVAE(3, likelihood="bernoulli", **small, random_state=0),
            binary,
        ),
        ("vae (no u)", IdentifiableVAE(**small, random_state=0), (sq[0], None, sq[2])),
        ("flow default", NonlinearICA(random_state=0), sq),
        ("flow early stopping", NonlinearICA(early_stopping=True, random_state=0), sq),
        (
            "flow continuous u",
            NonlinearICA(**small, random_state=0),
            make_continuous_aux_sources(1200, 3, n_aux=2, n_layers=2, random_state=4),
        ),
        ("nica ivae", NonlinearICA(method="ivae", random_state=0), sq),
        (
            "nica ivae undercomplete",
            NonlinearICA(3, method="ivae", random_state=0),
            under,
        ),
        ("tcl flow features", NonlinearICA(method="tcl", **small, random_state=0), sq),
        (
            "tcl random start",
            NonlinearICA(method="tcl", init="random", **small, random_state=0),
            sq,
        ),
        ("tcl mlp", NonlinearICA(3, method="tcl", **small, random_state=0), under),
        ("gcl flow features", NonlinearICA(method="gcl", **small, random_state=0), sq),
        (
            "gcl mlp continuous",
            NonlinearICA(3, method="gcl", **small, random_state=0),
            cont,
        ),
    ]


def main():
    from sklearn.base import clone

    warnings.simplefilter("ignore")
    t_all = time.perf_counter()
    for name, est, (X, u, _) in _configs():
        t0 = time.perf_counter()
        est.fit(X, u)
        Z = est.transform(X)
        parts = [Z, [est.n_iter_], est.loss_curve_]
        if hasattr(est, "score_samples"):
            parts.append(est.score_samples(X, u))
        try:
            parts.extend(est.sample(7, random_state=1))
        except ValueError:
            pass  # TCL and GCL have no generative model
        line = f"{name:34s} {_digest(*parts)}"
        if name.startswith("ivae flow start square"):
            warm = clone(est).set_params(warm_start=True, max_iter=2)
            warm.fit(X, u).fit(X, u)
            line += f"  warm {_digest(warm.transform(X), warm.loss_curve_)}"
        print(f"{line}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"total {time.perf_counter() - t_all:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
