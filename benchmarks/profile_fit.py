"""Where the seconds of a default fit go: cProfile and torch.profiler.

One default fit of each estimator (``--what``: ``flow`` is
``NonlinearICA()``, ``ivae`` is ``IdentifiableVAE()``) on the paper's setting
(``make_nonstationary_sources(40, 1000, 5, n_layers=3)``, the official
code's scale convention, data seed ``--seed``), on ``--threads`` torch
threads (1 by default: run it on a quiet machine). For each fit it prints

- the wall time of a plain fit (no profiler) and of the profiled one, the
  number of optimiser steps and the time per step;
- cProfile's top functions by their own time (Python overhead shows here)
  and by cumulative time (which part of the fit: the start, the restarts,
  the epochs, the selection);
- torch.profiler's top operators by their own CPU time, where the
  arithmetic goes (spline pieces, matrix products, slogdet, Adam).

and writes the same text to ``<out>/profile_<tag>.txt``.

    python benchmarks/profile_fit.py --tag before
    python benchmarks/profile_fit.py --what flow --top 25
"""

import argparse
import cProfile
import io
import os
import pstats
import shlex
import sys
import time


def _estimator(what, seed):
    from skivae import IdentifiableVAE, NonlinearICA

    if what == "flow":
        return NonlinearICA(random_state=seed)
    return IdentifiableVAE(random_state=seed)


def profile_one(what, seed, top, out):
    import warnings

    import torch
    from torch.profiler import ProfilerActivity, profile

    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    X, u, S = make_nonstationary_sources(40, 1000, 5, n_layers=3, random_state=seed)
    warnings.simplefilter("ignore")
    _estimator(what, 0).fit(X[:2000], u[:2000])  # warm-up: imports, allocator
    t0 = time.perf_counter()
    est = _estimator(what, 0).fit(X, u)
    plain = time.perf_counter() - t0
    steps = est.training_settings_["max_iter"] * -(
        -len(X) // est.training_settings_["batch_size"]
    )
    out(
        f"\n=== {what}: {type(est).__name__} defaults, 40 x 1000 rows, 5 sources, "
        f"3 layers, {torch.get_num_threads()} thread(s)"
    )
    out(
        f"plain fit {plain:.2f} s, MCC {mean_corr_coef(S, est.transform(X)):.3f}; "
        f"settings {est.training_settings_}; "
        f"{steps} steps per restart, {1000 * plain / steps:.2f} ms per step (all "
        "restarts and the start included)"
    )
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    _estimator(what, 0).fit(X, u)
    prof.disable()
    out(f"under cProfile {time.perf_counter() - t0:.2f} s")
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        text = buf.getvalue()
        out(f"\n--- cProfile, top {top} by {key}")
        out(text[text.find("ncalls") :].rstrip())
    # torch.profiler keeps every event in memory: the operator mix of a small
    # fit (4 000 rows, two epochs after the start), not of the whole one
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as tprof:
        _estimator(what, 0).set_params(max_iter=2).fit(X[::10], u[::10])
    out(
        f"\n--- torch.profiler of a max_iter=2 fit on 4 000 rows "
        f"({time.perf_counter() - t0:.2f} s under it), top {top} operators by "
        "self CPU time"
    )
    out(tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--what", nargs="+", choices=["flow", "ivae"], default=["flow", "ivae"]
    )
    p.add_argument("--seed", type=int, default=1, help="data seed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--tag", default="fit")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    lines = []

    def out(text):
        print(text, flush=True)
        lines.append(text)

    out(f"command: python {shlex.join(sys.argv)}")
    for what in args.what:
        profile_one(what, args.seed, args.top, out)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"profile_{args.tag}.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
