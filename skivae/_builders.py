"""The torch models of the estimators, built from plain settings.

Each builder takes the fitted auxiliary encoder (:class:`skivae._aux._AuxEncoder`,
or None for a model without ``u``) and plain values, and returns a new
:class:`~skivae._core.base.LatentModel`; none sees an estimator. The estimators
(``_build_module``) and the flow start (:mod:`skivae._start`) share them, so a
model is built the same way wherever it is built. Randomly initialised
parameters draw from torch's global RNG, in the order written here.
"""

import torch

from skivae._core._torch_utils import to_tensor
from skivae._core.ar import ARModel, ARPrior, inner_prior
from skivae._core.contrastive import GCLModule, TCLModule
from skivae._core.elbo import IVAEModule
from skivae._core.flow import FlowModule, InvertibleMLP
from skivae._core.priors import ConditionalPrior
from skivae._defaults import FLOW_DEPTH, SPLINE_BINS, SPLINE_BOUND


def hidden_sizes(hidden_layer_sizes):
    """``hidden_layer_sizes`` as a tuple of Python ints."""
    return tuple(int(h) for h in hidden_layer_sizes)


def _aux_sizes(aux):
    """``(u_type, n_classes, n_aux)`` of an auxiliary encoder (or None)."""
    if aux is None:
        return None, None, None
    categorical = aux.u_type_ == "categorical"
    return (
        aux.u_type_,
        aux.n_aux_ if categorical else None,
        (None if categorical else aux.n_aux_),
    )


def aux_support(aux):
    """The training support of ``u`` and its log-weights, as CPU tensors
    (category codes as a LongTensor); ``(None, None)`` without ``u``."""
    if aux is None:
        return None, None
    cpu = torch.device("cpu")
    support = aux.support_
    dtype = torch.long if support.dtype.kind in "iu" else torch.float32
    return to_tensor(support, cpu, dtype=dtype), to_tensor(aux.log_weights_, cpu)


def make_prior(n_components, prior, aux, *, hidden_layer_sizes, activation):
    """The conditional prior p(z|u) (N(0, I) without ``u``); a continuous
    ``u`` goes through an MLP of the first hidden width."""
    u_type, n_classes, n_aux = _aux_sizes(aux)
    return ConditionalPrior(
        n_components,
        prior,
        u_type,
        n_classes=n_classes,
        n_aux=n_aux,
        hidden_layer_sizes=hidden_sizes(hidden_layer_sizes)[:1],
        activation=activation,
    )


def make_ivae(
    n_features,
    n_components,
    aux,
    *,
    prior,
    hidden_layer_sizes,
    activation,
    likelihood,
    decoder_var,
    posterior,
    input_noise_std,
    n_importance,
    n_importance_train,
    score_seed,
    masked=False,
):
    """An :class:`~skivae._core.elbo.IVAEModule` (``decoder_var="learn"``:
    learned per-feature variances; ``masked``: trained on data with missing
    cells, its encoder reads the mask)."""
    hidden = hidden_sizes(hidden_layer_sizes)
    conditional_prior = make_prior(
        n_components, prior, aux, hidden_layer_sizes=hidden, activation=activation
    )
    support, log_weights = aux_support(aux)
    return IVAEModule(
        n_features,
        n_components,
        conditional_prior,
        hidden_layer_sizes=hidden,
        activation=activation,
        likelihood=likelihood,
        decoder_var=None if decoder_var == "learn" else float(decoder_var),
        full_cov=posterior == "full",
        input_noise_std=input_noise_std,
        score_seed=score_seed,
        n_importance=n_importance,
        n_importance_train=n_importance_train,
        aux_support=support,
        aux_log_weights=log_weights,
        masked=masked,
    )


def make_flow(
    n_features,
    aux,
    *,
    prior,
    hidden_layer_sizes,
    activation,
    depth=FLOW_DEPTH,
    bins=SPLINE_BINS,
    bound=SPLINE_BOUND,
    n_restarts=1,
    with_support=True,
):
    """A :class:`~skivae._core.flow.FlowModule` with ``n_restarts`` restarts
    held as one batched model (their priors are built first, then the
    network). ``with_support=False`` leaves out the support of ``u``
    (needed only to score without ``u``)."""
    priors = [
        make_prior(
            n_features,
            prior,
            aux,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
        )
        for _ in range(n_restarts)
    ]
    flow = FlowModule(n_features, priors, depth=depth, bins=bins, bound=bound)
    flow._register_aux_support(*(aux_support(aux) if with_support else (None, None)))
    return flow


def make_invertible_net(n_features, *, depth, bins, bound):
    """A new invertible feature network (the flow's stack, a random rotation)."""
    return InvertibleMLP(n_features, depth=depth, bins=bins, bound=bound)


def make_tcl(
    n_features,
    n_components,
    aux,
    *,
    hidden_layer_sizes,
    activation,
    feature_net=None,
    zero_classifier=False,
):
    """A :class:`~skivae._core.contrastive.TCLModule` (``feature_net`` None:
    its own MLP)."""
    return TCLModule(
        n_features,
        n_components,
        aux.n_aux_,
        hidden_layer_sizes=hidden_sizes(hidden_layer_sizes),
        activation=activation,
        feature_net=feature_net,
        zero_classifier=zero_classifier,
    )


def make_gcl(
    n_features, n_components, aux, *, hidden_layer_sizes, activation, feature_net=None
):
    """A :class:`~skivae._core.contrastive.GCLModule` (its u-dependent terms
    start at zero)."""
    u_type, n_classes, n_aux = _aux_sizes(aux)
    support, log_weights = aux_support(aux)
    return GCLModule(
        n_features,
        n_components,
        u_type,
        n_classes=n_classes,
        n_aux=n_aux,
        hidden_layer_sizes=hidden_sizes(hidden_layer_sizes),
        activation=activation,
        aux_support=support,
        aux_log_weights=log_weights,
        feature_net=feature_net,
    )


def make_ar_model(inner, order, aux, *, hidden_layer_sizes, activation):
    """``inner`` (a single-restart flow or iVAE) with an autoregressive prior
    of ``order`` previous rows (:class:`~skivae._core.ar.ARModel`); its
    coefficients read ``u`` through an MLP of the first hidden width."""
    _, n_classes, n_aux = _aux_sizes(aux)
    prior = ARPrior(
        inner_prior(inner),
        order,
        n_classes=n_classes,
        n_aux=n_aux,
        hidden=hidden_sizes(hidden_layer_sizes)[:1],
        activation=activation,
    )
    return ARModel(inner, prior)
