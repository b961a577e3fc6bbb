"""The GPU path: the test suite's device tests and the paper setting on CUDA.

Where ``torch.cuda.is_available()``, this script

1. runs the test suite's GPU tests (``pytest -m gpu``);
2. checks that ``device="auto"`` resolves to CUDA;
3. fits the default ``NonlinearICA()`` (the flow), ``IdentifiableVAE()``
   and a masked ``IdentifiableVAE()`` (30 % of the cells missing) on the
   paper's setting (``make_nonstationary_sources(40, 1000, 5, n_layers=3)``,
   data seeds ``--seeds``) with ``device="cpu"`` and ``device="cuda"``, and
   prints MCC and fit seconds side by side (CPU on ``--threads`` threads);
   with ``--compile``, also on CUDA with ``compile=True`` (``cuda+compile``:
   the first fit of each model pays the compilation, later seeds reuse it;
   a ``CompileFallbackWarning`` is reported as ``fell back``).

Where no CUDA device is available it says so and exits with status 0, so
the script can stay in a CI job that runs everywhere. Results go to
``<out>/<tag>.txt``.

    python benchmarks/bench_device.py
    python benchmarks/bench_device.py --seeds 1 2 3 --tag device
    python benchmarks/bench_device.py --skip-tests --compile --tag device_compile
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def fit_one(model, mode, seed, threads):
    import warnings

    import numpy as np
    import torch

    from skivae import CompileFallbackWarning, IdentifiableVAE, NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    X, u, S = make_nonstationary_sources(40, 1000, 5, n_layers=3, random_state=seed)
    if model == "ivae_masked":
        X = np.where(np.random.default_rng(seed).random(X.shape) < 0.3, np.nan, X)
    cls = NonlinearICA if model == "flow" else IdentifiableVAE
    device = mode.split("+")[0]
    est = cls(random_state=0, device=device, compile=mode.endswith("+compile"))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CompileFallbackWarning)
        est.fit(X, u)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return dict(
        model=model,
        device=mode,
        fell_back=any(issubclass(w.category, CompileFallbackWarning) for w in caught),
        seed=seed,
        mcc=mean_corr_coef(S, est.transform(X)),
        seconds=seconds,
        device_=str(est.device_),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--models", nargs="+", default=["flow", "ivae", "ivae_masked"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument(
        "--compile", action="store_true", help="also fit on CUDA with compile=True"
    )
    p.add_argument("--tag", default="device")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    import torch

    lines = [f"command: python {shlex.join(sys.argv)}"]

    def out(text):
        print(text, flush=True)
        lines.append(text)

    out(lines[0])
    if not torch.cuda.is_available():
        out(
            "no CUDA device is available here (torch "
            f"{torch.__version__}): nothing to measure. Run this script on a "
            "machine with a GPU."
        )
        return 0
    out(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    status = 0
    if not args.skip_tests:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"]
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        status = res.returncode
        tail = (res.stdout + res.stderr).strip().splitlines()[-3:]
        out(f"pytest -m gpu: exit status {res.returncode}; " + " | ".join(tail))
    from skivae._core._torch_utils import resolve_device

    out(f'device="auto" resolves to {resolve_device("auto")}')
    rows = []
    modes = ["cpu", "cuda"] + (["cuda+compile"] if args.compile else [])
    for model in args.models:
        for mode in modes:
            for seed in args.seeds:
                r = fit_one(model, mode, seed, args.threads)
                rows.append(r)
                out(
                    f"{model:12s} {mode:12s} seed {seed}: MCC {r['mcc']:.3f}, "
                    f"{r['seconds']:.1f} s (device_ {r['device_']})"
                    + (" fell back" if r["fell_back"] else "")
                )
    out("\nmodel         device        median MCC  worst MCC  median seconds")
    for model in args.models:
        for mode in modes:
            rs = [r for r in rows if r["model"] == model and r["device"] == mode]
            mcc = [r["mcc"] for r in rs]
            out(
                f"{model:12s}  {mode:12s}  {statistics.median(mcc):10.3f}  "
                f"{min(mcc):9.3f}  {statistics.median(r['seconds'] for r in rs):14.1f}"
            )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.tag}.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
