"""Ablation: the official iVAE recipe, every knob at once, against skivae's defaults.

``official`` is :class:`_official_recipe.OfficialRecipeIVAE` trained by
:func:`_official_recipe.fit_recipe`: the official code's main configuration as
PAPER.md lists it (MLPs 2 x 100 with xtanh, separate mean and log-variance
encoders of ``[x, one_hot(u)]``, diagonal posterior, zero-mean prior with an
MLP log-variance, decoder variance 0.1, raw x, the beta-TCVAE-weighted ELBO
100 / 1 / 0 / 10 with the minibatch-weighted estimator, Adam 0.01 with
ReduceLROnPlateau(patience=0, factor=0.1) per epoch, batch 64, 20 epochs, no
clipping). ``ivae`` is ``IdentifiableVAE()`` with defaults. Each fit runs in a
fresh process on ``make_nonstationary_sources(40, 1000, 5, n_layers=3)``, for
each data seed and scale convention (``std``: the official code's, ``var``:
weaker modulation). Both MCCs are printed: on ONE posterior sample z ~ q(z|x,u)
(what the official code reports) and on the posterior mean; for ``ivae`` the
sample is one draw from its full-covariance q(z|x).

``--revert KNOB[=VALUE]`` adds a variant ``official-KNOB`` with that single knob
switched back to skivae's choice (default VALUE in brackets): objective
[elbo], encoder [x_only], posterior [full], x [standardised], schedule
[cosine: skivae's train(), cosine decay and clipping], epochs [40], batch
[256, what batch_size="auto" gives here], decoder_var [0.01], activation
[leaky_relu], width [64], init [skivae: make_mlp's initialisation instead of
the official code's Xavier-uniform weights].

    python benchmarks/bench_ablation.py | tee benchmarks/results/ablation.txt
    python benchmarks/bench_ablation.py --models --revert objective --scale-types var
    python benchmarks/bench_ablation.py --smoke
"""

import argparse
import sys
import time
import warnings

from _common import print_table, run_isolated, summarize

#: knob -> (official value, skivae's value used by a bare ``--revert KNOB``)
KNOBS = {
    "objective": ("weighted", "elbo"),
    "encoder": ("xu", "x_only"),
    "posterior": ("diag", "full"),
    "x": ("raw", "standardised"),
    "schedule": ("plateau", "cosine"),
    "epochs": (20, 40),
    "batch": (64, 256),
    "decoder_var": (0.1, 0.01),
    "activation": ("xtanh", "leaky_relu"),
    "width": (100, 64),
    "init": ("xavier", "skivae"),
}
_TYPES = {"epochs": int, "batch": int, "decoder_var": float, "width": int}


def parse_revert(item):
    """``"epochs=30"`` or ``"epochs"`` -> ``("epochs", 30)``."""
    knob, _, value = item.partition("=")
    if knob not in KNOBS:
        raise SystemExit(f"unknown knob {knob!r}; choose from {sorted(KNOBS)}")
    if not value:
        return knob, KNOBS[knob][1]
    return knob, _TYPES.get(knob, str)(value)


def _official(X, u, S, model_seed, config):
    import numpy as np
    import torch
    from _official_recipe import (
        ELBO_WEIGHTS,
        OFFICIAL_WEIGHTS,
        OfficialRecipeIVAE,
        fit_recipe,
    )

    if config["x"] == "standardised":
        X = (X - X.mean(0)) / X.std(0)
    torch.manual_seed(model_seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    Ut = torch.as_tensor(u, dtype=torch.long)
    width = config["width"]
    model = OfficialRecipeIVAE(
        X.shape[1],
        S.shape[1],
        int(u.max()) + 1,
        n_data=X.shape[0],
        hidden_layer_sizes=(width, width),
        activation=config["activation"],
        decoder_var=config["decoder_var"],
        weights=OFFICIAL_WEIGHTS if config["objective"] == "weighted" else ELBO_WEIGHTS,
        encoder=config["encoder"],
        posterior=config["posterior"],
        init=config["init"],
        score_seed=model_seed,
    )
    gen = torch.Generator().manual_seed(model_seed)
    t0 = time.perf_counter()
    losses, lr = fit_recipe(
        model,
        Xt,
        Ut,
        epochs=config["epochs"],
        batch_size=config["batch"],
        learning_rate=0.01,
        schedule=config["schedule"],
        generator=gen,
    )
    seconds = time.perf_counter() - t0
    with torch.inference_mode():
        z_mean = model.features(Xt, Ut).double().numpy()
        draw = torch.Generator().manual_seed(10_000 + model_seed)
        z_draw = model.sample_posterior(Xt, Ut, generator=draw).double().numpy()
        # by chunks: the 8 fixed draws over all rows at once would set the peak
        elbo = (
            sum(
                float(model.score_samples(Xt[i], Ut[i]).sum())
                for i in torch.arange(Xt.shape[0]).split(4096)
            )
            / Xt.shape[0]
        )
    return z_draw, z_mean, seconds, len(losses), lr, elbo, np.isfinite(losses[-1])


def _skivae(X, u, model_seed):
    import torch

    from skivae import IdentifiableVAE
    from skivae._core.nets import gaussian_sample

    est = IdentifiableVAE(random_state=model_seed)
    t0 = time.perf_counter()
    est.fit(X, u)
    seconds = time.perf_counter() - t0
    z_mean = est.transform(X)
    module = est.module_
    dtype = next(module.parameters()).dtype
    with torch.inference_mode():
        xs = torch.as_tensor((X - est._x_mean) / est._x_scale, dtype=dtype)
        torch.manual_seed(10_000 + model_seed)
        z_draw = gaussian_sample(*module.encode(xs)).double().numpy()
    elbo = est.score(X, u)
    return z_draw, z_mean, seconds, est.n_iter_, float("nan"), elbo, True


def fit_one(model, scale, data_seed, model_seed, config, data):
    from sklearn.exceptions import ConvergenceWarning

    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import mean_corr_coef

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", UserWarning)
    X, u, S = make_nonstationary_sources(
        random_state=data_seed, scale_type=scale, **data
    )
    row = {"model": model, "scale": scale, "data_seed": data_seed}
    row["model_seed"] = model_seed
    try:
        if model == "ivae":
            out = _skivae(X, u, model_seed)
        else:
            out = _official(X, u, S, model_seed, config)
    except FloatingPointError:  # the loss became NaN: no estimate to score
        nan = float("nan")
        return {**row, "mcc_sample": nan, "mcc_mean": nan, "diverged": 1}
    z_draw, z_mean, seconds, epochs, lr, elbo, _ = out
    return {
        **row,
        "diverged": 0,
        "mcc_sample": mean_corr_coef(S, z_draw),
        "mcc_mean": mean_corr_coef(S, z_mean),
        "seconds": seconds,
        "epochs": epochs,
        "final_lr": lr,
        "elbo": elbo,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--model-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--scale-types", nargs="+", default=["std", "var"])
    p.add_argument(
        "--models",
        nargs="*",
        default=["official", "ivae"],
        help="official and/or ivae (none: only the --revert variants)",
    )
    p.add_argument("--revert", action="append", default=[], help="KNOB[=VALUE]")
    p.add_argument("--smoke", action="store_true", help="one tiny fit, seconds")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    args = p.parse_args(argv)
    data = {"n_segments": 40, "n_per_segment": 1000, "n_sources": 5, "n_layers": 3}
    official = {k: v[0] for k, v in KNOBS.items()}
    if args.smoke:  # tiny data, 2 epochs, one draw: checks that every variant runs
        data = {"n_segments": 10, "n_per_segment": 100, "n_sources": 2, "n_layers": 2}
        official["epochs"] = 2
        args.seeds, args.scale_types, args.model_seeds = [1], ["std"], [0]
        args.models = [m for m in args.models if m != "ivae"]
    variants = [(m, official) for m in args.models if m in ("official", "ivae")]
    for item in args.revert:
        knob, value = parse_revert(item)
        variants.append((f"official-{knob}", {**official, knob: value}))
    jobs = [
        dict(model=m, scale=scale, data_seed=s, model_seed=ms, config=cfg, data=data)
        for scale in args.scale_types
        for s in args.seeds
        for ms in args.model_seeds
        for m, cfg in variants
    ]
    print("command: python benchmarks/bench_ablation.py " + " ".join(sys.argv[1:]))
    print(f"data: {data}")
    print(f"official recipe: {official}")
    for m, cfg in variants:
        diff = {k: v for k, v in cfg.items() if v != official[k]}
        if diff:
            print(f"{m}: {diff}")
    cols = [
        "model",
        "scale",
        "data_seed",
        "model_seed",
        "mcc_sample",
        "mcc_mean",
        "seconds",
        "epochs",
        "final_lr",
        "elbo",
        "peak_mb",
        "diverged",
    ]
    rows = []
    for res in run_isolated(fit_one, jobs, n_jobs=args.jobs, threads=args.threads):
        rows.append(res)
        print_table([res], cols)
    print("\nall fits")
    print_table(rows, cols)
    print("\nsummary per model and scale convention (over data draws and model seeds)")
    stats = [
        ("median_mcc_sample", "mcc_sample", "median"),
        ("min_mcc_sample", "mcc_sample", "min"),
        ("median_mcc_mean", "mcc_mean", "median"),
        ("min_mcc_mean", "mcc_mean", "min"),
        ("max_mcc_mean", "mcc_mean", "max"),
        ("median_s", "seconds", "median"),
        ("max_peak_mb", "peak_mb", "max"),
        ("diverged", "diverged", "sum"),
    ]
    summary = summarize(rows, ["model", "scale"], stats)
    print_table(summary, list(summary[0]))


if __name__ == "__main__":
    main()
