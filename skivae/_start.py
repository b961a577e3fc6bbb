"""The flow start: a short identifiable-flow fit that seeds another model.

From random starts the iVAE's bound lands on solutions whose recovery of the
sources varies much from draw to draw, and the contrastive objectives on the
invertible network (TCL, GCL) barely move a random rotation. The exact
likelihood of the identifiable flow finds the sources cheaply, so those
models start from a short flow fit (``init="flow"``, what ``"auto"`` stands
for where it helps; see :mod:`skivae._defaults`):

- :func:`start_ivae` regresses a new iVAE onto the flow's sources
  (:func:`flow_sources`);
- :func:`flow_feature_net` hands the flow's invertible network to TCL or GCL.

Every function here takes its data as arguments (the estimator's
standardised training rows as tensors, ``u`` encoded by its fitted
:class:`~skivae._aux._AuxEncoder`) and returns what it made; it builds its
models with :mod:`skivae._builders` and trains them with
:func:`skivae._core.training.train`.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA

from skivae import _defaults as D
from skivae._builders import make_ar_model, make_flow
from skivae._core._torch_utils import to_numpy, to_tensor, torch_seed
from skivae._core.ar import current_u
from skivae._core.training import fit_to_latents, mean_score_loss, train
from skivae._inference import apply_batched, as_tensor, standardise


@dataclass
class ShortFlow:
    """A fitted short flow: its model (CPU, eval mode) and standardisations.

    ``x_mean``/``x_scale`` standardise its input, ``s_mean``/``s_scale`` its
    raw outputs; :meth:`transform` gives the standardised outputs. ``u`` is
    the encoded ``u`` it was fitted with (a continuous one standardised) and
    ``Z`` the standardised outputs of the rows it was fitted to.
    """

    module: torch.nn.Module
    x_mean: np.ndarray
    x_scale: np.ndarray
    u: np.ndarray = None
    s_mean: np.ndarray = None
    s_scale: np.ndarray = None
    Z: np.ndarray = None

    def raw_outputs(self, X):
        """``g(x)`` of the rows ``X`` (float64, batched on the CPU)."""
        Xp = (X - self.x_mean) / self.x_scale
        out = apply_batched(
            self.module, lambda m, xb, ub: m.features(xb), Xp, device=_CPU
        )
        return out.astype(np.float64)

    def transform(self, X):
        """Standardised outputs of the rows ``X``."""
        return (self.raw_outputs(X) - self.s_mean) / self.s_scale

    def inverse_transform(self, Z):
        """Rows ``X`` whose standardised outputs are ``Z`` (exact inverse)."""
        S = Z.astype(np.float64) * self.s_scale + self.s_mean
        Xp = apply_batched(self.module, lambda m, zb, ub: m.inverse(zb), S, device=_CPU)
        return Xp.astype(np.float64) * self.x_scale + self.x_mean


_CPU = torch.device("cpu")


def fit_short_flow(
    X,
    U,
    aux,
    *,
    prior,
    hidden_layer_sizes,
    activation,
    device,
    seed,
    max_iter=None,
    depth=None,
    bins=None,
    bound=None,
    ar_order=0,
    compile=False,
    budget=False,
):
    """Fit a flow (one restart, the flow's default training) to ``X``, ``U``:
    ``max_iter`` epochs (None: :func:`~skivae._defaults.start_flow_epochs`
    of its features, more with more of them), fewer on large data
    (:func:`~skivae._defaults.capped_epochs`); with ``budget`` (the
    estimator's ``max_iter="auto"``), epochs' worth of steps as that budget
    counts them, so more of them on small data
    (:func:`~skivae._defaults.epochs`, and the stopping rule's
    :func:`~skivae._defaults.patience`);
    ``compile``: the estimator's parameter (:func:`~skivae._core.training.train`).

    With ``ar_order > 0`` the rows are packed with their past (see
    :mod:`skivae._core.ar`) and the flow has the autoregressive prior; its
    standardisation and outputs are those of the current rows.

    ``X`` is a float64 array; ``U`` the encoded ``u`` of its rows (codes, or
    continuous columns) as an array, or None; ``aux`` the encoder that read
    it (the prior's shape). Like any fit, the flow standardises ``X`` and a
    continuous ``U`` on the rows it is given. Returns a :class:`ShortFlow`;
    raises FloatingPointError if training diverged.
    """
    seed = int(np.random.RandomState(seed).randint(np.iinfo(np.int32).max))
    blocks = ar_order + 1
    n_features = (X.shape[1] - ar_order) // blocks
    # None: the constants of skivae._defaults as they are at call time
    if max_iter is None:
        max_iter = D.start_flow_epochs(n_features)
    depth = D.FLOW_DEPTH if depth is None else depth
    bins = D.SPLINE_BINS if bins is None else bins
    bound = D.SPLINE_BOUND if bound is None else bound
    x_mean, x_scale = standardise(X[:, :n_features])
    Xp = X.copy()
    for b in range(blocks):  # the current rows' standardisation, for the past too
        cols = slice(b * n_features, (b + 1) * n_features)
        Xp[:, cols] = (X[:, cols] - x_mean) / x_scale
    if U is not None and U.dtype.kind == "f":
        U = U.astype(np.float64)
        n_aux = U.shape[1] // blocks
        u_mean, u_scale = standardise(U[:, :n_aux])
        U = (U - np.tile(u_mean, blocks)) / np.tile(u_scale, blocks)
    Xt = to_tensor(Xp, device)
    Ut = None if U is None else as_tensor(U, device)
    with torch_seed(seed, device):
        module = make_flow(
            n_features,
            aux,
            prior=prior,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            depth=depth,
            bins=bins,
            bound=bound,
            with_support=False,
        )
        if ar_order:
            module = make_ar_model(
                module,
                ar_order,
                aux,
                hidden_layer_sizes=hidden_layer_sizes,
                activation=activation,
            )
        module = module.to(device)
        batch_size = D.auto_batch_size("flow", X.shape[0])
        train(
            module,
            Xt,
            Ut,
            # with budget, max_iter epochs of 80 steps or more, as the flow's
            # "auto" budget counts them: on 800 rows 62 epochs of 13 steps,
            # not 10 (results/small_data.txt); fewer long ones on large data
            max_iter=(D.epochs if budget else D.capped_epochs)(
                max_iter, "flow", X.shape[0], batch_size
            ),
            n_iter_no_change=D.patience(10, "flow", X.shape[0], batch_size, budget),
            batch_size=batch_size,
            learning_rate=D.FLOW_LR,
            generator=torch.Generator().manual_seed(seed),
            compile=compile,
        )
    final = mean_score_loss(module, Xt, Ut)
    if not np.isfinite(final):
        raise FloatingPointError(f"the final loss is {final}")
    U = current_u(U, ar_order)
    flow = ShortFlow(module.cpu().eval(), x_mean, x_scale, u=U)
    raw = flow.raw_outputs(X[:, :n_features])
    flow.s_mean, flow.s_scale = standardise(raw)
    flow.Z = (raw - flow.s_mean) / flow.s_scale
    return flow


def flow_sources(X, U, aux, n_components, *, seed, ar_order=0, **flow):
    """Standardised sources of a short flow fit on the training rows.

    ``X`` (standardised) and ``U`` (encoded) are the training tensors;
    ``flow`` holds :func:`fit_short_flow`'s network settings. On square
    data the flow trains :func:`~skivae._defaults.start_flow_epochs`
    epochs, more with more features. With fewer
    components than features the flow runs on the whitened principal
    components of all the features (the leading ``max(16, 2 *
    n_components)`` when there are more) and longer (longer still with a
    continuous ``u``, whose prior is a network): it then has as many
    outputs as inputs, and :func:`choose_sources` keeps ``n_components`` of
    them by their dependence on ``u`` (:func:`u_information`) and how far
    they move the features (:func:`output_reach`); the others model the
    noise directions. Returns a tensor like ``X`` of shape ``(n_rows,
    n_components)``.

    With ``ar_order > 0``, ``X`` and ``U`` are packed with their past (see
    :mod:`skivae._core.ar`); on square data the short flow then has the
    autoregressive prior, undercomplete data start from the current rows
    alone.
    """
    Xn = to_numpy(X, np.float64)
    Un = None if U is None else to_numpy(U)
    n, d = n_components, (Xn.shape[1] - ar_order) // (ar_order + 1)
    if n >= d:
        short = fit_short_flow(Xn, Un, aux, seed=seed, ar_order=ar_order, **flow)
        return to_tensor(short.Z, X.device, dtype=X.dtype)
    if ar_order:  # the current rows (their u: the first block)
        Xn, Un = Xn[:, :d], current_u(Un, ar_order)
    Xn, scale = principal_inputs(Xn, n, seed)
    if aux.u_type_ == "continuous":
        epochs = D.START_FLOW_EPOCHS_UNDERCOMPLETE_CONTINUOUS
    else:
        epochs = D.START_FLOW_EPOCHS_UNDERCOMPLETE
    short = fit_short_flow(Xn, Un, aux, seed=seed, max_iter=epochs, **flow)
    Z = short.Z
    gain = u_information(short, Z)
    reach = output_reach(short, Z, scale, seed)
    keep = choose_sources(gain, reach, n)
    return to_tensor(Z[:, keep], X.device, dtype=X.dtype)


def principal_inputs(X, n_components, seed):
    """The undercomplete start's flow inputs: whitened principal components.

    The leading ``max(16, 2 * n_components)`` of ``X``'s (all of them when
    there are fewer features or rows), less the directions without variance
    (collinear features, on which the flow's likelihood would be
    degenerate), but never fewer than ``n_components``. Returns them and
    their standard deviations before whitening.
    """
    m = min(X.shape[1], max(D.START_MAX_DIMS, D.START_MAX_RATIO * n_components))
    m = min(m, X.shape[0])  # PCA has at most one component per row
    if m < n_components:
        raise ValueError(
            f"the flow start (init='auto' or 'flow') needs at least n_components="
            f"{n_components} training rows, got {X.shape[0]}; give more rows or "
            "set init='random'."
        )
    pca = PCA(m, whiten=True, random_state=seed).fit(X)
    var = pca.explained_variance_
    m = max(n_components, int(np.sum(var > D.START_MIN_VARIANCE * var[0])))
    return pca.transform(X)[:, :m], np.sqrt(var[:m])


def choose_sources(gain, reach, n, min_gain=None):
    """Indices (sorted) of the ``n`` flow outputs kept as sources.

    Candidates are the outputs whose ``u``-information ``gain`` is at least
    ``min_gain`` times the largest; among them, and then among the others,
    the outputs of largest ``reach`` (:func:`output_reach`) come first. The
    information alone left out a source on some draws: an output that
    carries part of the noise and a little of a source can gain as much from
    ``u``, but it moves ``x`` much less. ``min_gain``: None for
    ``START_MIN_GAIN``.
    """
    min_gain = D.START_MIN_GAIN if min_gain is None else min_gain
    gain, reach = np.asarray(gain, float), np.asarray(reach, float)
    top = gain.max()
    candidate = gain >= min_gain * top if top > 0 else np.zeros_like(gain, bool)
    order = np.lexsort((-reach, ~candidate))
    return np.sort(order[:n])


def output_reach(flow, Z, scale, seed, n_rows=None, step=None):
    """How far each output of a fitted :class:`ShortFlow` moves the features.

    ``Z`` holds the flow's standardised outputs of its whitened inputs, and
    ``scale`` the standard deviations of those inputs (the principal
    components' on the standardised features, which the principal axes
    keep as Euclidean lengths). Per output: the mean, over up to ``n_rows``
    rows, of the norm of the finite-difference derivative of the features
    along that output (``step`` in its standard deviations). The noise
    directions are thin, so their outputs move ``x`` little. ``n_rows``,
    ``step``: None for ``REACH_ROWS``, ``REACH_STEP``.
    """
    n_rows = D.REACH_ROWS if n_rows is None else n_rows
    step = D.REACH_STEP if step is None else step
    rng = np.random.default_rng(int(seed))
    rows = Z[rng.choice(len(Z), min(n_rows, len(Z)), replace=False)]
    base = flow.inverse_transform(rows)
    reach = np.empty(Z.shape[1])
    for j in range(Z.shape[1]):
        moved = rows.copy()
        moved[:, j] += step
        d = (flow.inverse_transform(moved) - base) * (scale / step)
        reach[j] = np.sqrt((d**2).sum(axis=1)).mean()
    return reach


def u_information(flow, Z):
    """How much each output of a fitted :class:`ShortFlow` depends on ``u``.

    ``Z`` holds the flow's standardised outputs of the rows it was fitted
    to. Per output: the mean log density of its raw value under the flow's
    conditional prior given those rows' ``u``, minus that under the
    maximum-likelihood fit of the same family without ``u`` (nats per row),
    so about zero for an output that ``u`` does not modulate.
    """
    prior = flow.module.prior
    S = Z * flow.s_scale + flow.s_mean
    if prior.kind == "laplace":
        b = np.abs(S - np.median(S, axis=0)).mean(axis=0)
        base = -np.log(2.0 * b) - 1.0
    else:
        base = -0.5 * (np.log(2.0 * np.pi * S.var(axis=0)) + 1.0)
    with torch.inference_mode():
        St = to_tensor(S, _CPU)
        loc, log_s2 = prior.params(as_tensor(flow.u, _CPU), St)
        lp = prior.component_log_prob(St, loc, log_s2).mean(0)
    return to_numpy(lp, np.float64) - base


def warn_start_diverged(exc, subject, stacklevel=3):
    """Warn that the short flow of an ``init="flow"`` start diverged (the
    error ``exc``) and that ``subject`` from a random initialisation."""
    warnings.warn(
        f"init='flow': the initial flow diverged ({exc}); {subject} from a "
        "random initialisation instead.",
        UserWarning,
        stacklevel=stacklevel,
    )


def start_ivae(module, X, U, aux, n_components, *, seed, ar_order=0, **flow):
    """Move a new iVAE ``module`` onto the sources of a short flow fit.

    ``X``, ``U``: the training tensors; ``flow``: the short flow's network
    settings (:func:`fit_short_flow`). The encoder's mean learns the
    sources, the decoder maps them back to ``X`` and the prior fits them
    given ``u`` (:func:`~skivae._core.training.fit_to_latents`). If the flow
    diverges the module is left as it is, with a warning.

    Missing cells (NaN, a masked module) are filled for the flow, which needs
    complete rows, by draws from their conditional law given the row's
    observed cells under the module's Gaussian model of ``X``
    (:meth:`~skivae._core.elbo.IVAEModule.fill_missing`, seeded by ``seed``):
    rows filled by conditional means would lie on planes of their observed
    cells, a shape the flow's density would have to model, while drawn
    cells keep the data's spread (with half the cells missing, +0.05 median
    MCC; benchmarks/results/missing_start.txt). The regression then counts
    the observed cells only. The autoregressive start keeps the conditional
    means: a cell recurs in several lagged blocks, which independent draws
    would fill with different values.

    With ``ar_order > 0``, ``X`` and ``U`` are packed with their past (see
    :mod:`skivae._core.ar`): the short flow has the autoregressive prior
    (square data), and the iVAE (whose prior is made autoregressive after
    this start) regresses on the current rows.
    """
    if not ar_order:
        gen = torch.Generator(device=X.device).manual_seed(int(seed))
        filled = module.fill_missing(X, generator=gen)
    else:
        d = module.n_features
        blocks = [
            module.fill_missing(X[:, b * d : (b + 1) * d]) for b in range(ar_order + 1)
        ]
        filled = torch.cat(blocks + [X[:, (ar_order + 1) * d :]], dim=1)
    try:
        Z = flow_sources(
            filled, U, aux, n_components, seed=seed, ar_order=ar_order, **flow
        )
    except FloatingPointError as exc:
        warn_start_diverged(exc, "this restart starts", stacklevel=6)
        return
    if ar_order:  # the current rows
        X, U = X[:, : module.n_features], current_u(U, ar_order)
    fit_to_latents(
        module,
        X,
        U,
        Z,
        seed=seed,
        epochs=D.DISTILL_EPOCHS,
        steps=D.DISTILL_STEPS,
        batch_size=D.DISTILL_BATCH,
        learning_rate=D.DISTILL_LR,
        prior_learning_rate=D.DISTILL_PRIOR_LR,
        log_var=D.DISTILL_LOGVAR,
    )


def flow_feature_net(X, U, aux, *, seed, **flow):
    """The invertible network of a short flow fit on the training tensors
    ``X`` (standardised) and ``U`` (for
    :func:`~skivae._defaults.start_flow_epochs` epochs, as the iVAE's square
    start), with that flow's own standardisation of
    its input folded into the first linear layer: a map of ``X`` itself, on
    ``X``'s device and dtype. Raises FloatingPointError if the flow diverged.
    """
    Un = None if U is None else to_numpy(U)
    short = fit_short_flow(to_numpy(X, np.float64), Un, aux, seed=seed, **flow)
    net = short.module.net.to(device=X.device, dtype=X.dtype)
    mean = torch.as_tensor(short.x_mean, device=X.device, dtype=X.dtype)
    scale = torch.as_tensor(short.x_scale, device=X.device, dtype=X.dtype)
    with torch.no_grad():
        # ((x - mean) / scale) @ W.T + b  ==  x @ (W / scale).T + (b - ...)
        w = net.weight[:, 0] / scale
        net.bias[:, 0] -= (mean @ w.transpose(-1, -2)).unsqueeze(-2)
        net.weight[:, 0] = w
    return net
