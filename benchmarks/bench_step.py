"""Milliseconds of one training step of the identifiable flow, and what each
part of the 0.10 speed-ups buys.

A step is what ``fit`` repeats 1 600 times on the paper's setting: the loss of
``R`` batched restarts on a mini-batch (forward), its gradient (backward), the
gradient clip and Adam with the cosine schedule. The step runs on one torch
thread on random data (``--batch`` rows, ``--features`` features, 40
segments), 20 warm-up steps, then the best of 5 rounds of ``--steps`` steps.
Variants, each in a fresh process:

- ``shipped``: the code as it is;
- ``zuko-lookup``: the splines find their bins with zuko's own lookup (the
  knots broadcast to every row), as before 0.10;
- ``torch-adam``: ``torch.optim.Adam(foreach=True)`` with ``LambdaLR``, as
  before 0.10;
- ``before``: both.

Run it on a quiet machine::

    python benchmarks/bench_step.py
    python benchmarks/bench_step.py --batch 1000 --variants shipped before
"""

import argparse
import math
import os
import sys

from _common import print_table, run_isolated

VARIANTS = ("shipped", "zuko-lookup", "torch-adam", "before")


def time_step(variant, batch, features, restarts, steps):
    import time

    import torch

    torch.set_num_threads(1)
    from zuko.transforms import MonotonicRQSTransform

    import skivae._core.flow as flow
    from skivae._core.priors import ConditionalPrior
    from skivae._core.training import _Adam, _cosine_factor

    if variant in ("zuko-lookup", "before"):
        flow._StackedRQS.searchsorted = staticmethod(MonotonicRQSTransform.searchsorted)
        flow._StackedRQS.bin = MonotonicRQSTransform.bin
    torch.manual_seed(0)
    priors = [
        ConditionalPrior(features, "gaussian", "categorical", n_classes=40)
        for _ in range(restarts)
    ]
    model = flow.FlowModule(features, priors)
    params = list(model.parameters())
    schedule = _cosine_factor(100_000)
    if variant in ("torch-adam", "before"):
        opt = torch.optim.Adam(params, lr=0.04, foreach=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    else:
        opt, sched = _Adam(params, lr=0.04, schedule=schedule), None
    x = torch.randn(batch, features)
    u = torch.randint(0, 40, (batch,))

    def step():
        opt.zero_grad()
        model.loss(x, u).mean().backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        if sched is not None:
            sched.step()

    for _ in range(20):
        step()
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps * 1e3)
    return dict(
        variant=variant,
        batch=batch,
        features=features,
        restarts=restarts,
        ms_per_step=round(best, 3),
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[500])
    p.add_argument("--features", type=int, default=5)
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--repeats", type=int, default=2, help="rounds of all variants")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--tag", default=None, help="write <out>/<tag>.txt")
    args = p.parse_args(argv)
    jobs = [
        dict(
            variant=variant,
            batch=batch,
            features=args.features,
            restarts=args.restarts,
            steps=args.steps,
        )
        for _ in range(args.repeats)  # interleaved, so drift hits every variant
        for batch in args.batch
        for variant in args.variants
    ]
    best = {}
    for r in run_isolated(time_step, jobs):
        key = (r["batch"], VARIANTS.index(r["variant"]))
        best[key] = min(best.get(key, math.inf), r["ms_per_step"])
    table = [
        dict(batch=b, variant=VARIANTS[v], best_ms_per_step=ms)
        for (b, v), ms in sorted(best.items())
    ]
    columns = ["batch", "variant", "best_ms_per_step"]
    print_table(table, columns)
    if args.tag:
        with open(os.path.join(args.out, f"{args.tag}.txt"), "w") as fh:
            fh.write("command: python bench_step.py " + " ".join(sys.argv[1:]) + "\n")
            fh.write(
                f"{args.features} features, {args.restarts} restarts, one thread; "
                f"best of 5 rounds of {args.steps} steps, {args.repeats} fresh "
                "processes per variant\n\n"
            )
            print_table(table, columns, file=fh)


if __name__ == "__main__":
    main()
