"""``warm_start=True``: checks and the model to continue from.

Functions of a fitted estimator's state, used by the base class's fit loop
when it continues the fitted model instead of starting a new one.
"""

import contextlib

import numpy as np
import torch

from skivae._core._torch_utils import torch_seed
from skivae._missing import validate_X

#: parameters a warm start may not change although the weights keep their
#: shapes (a Gaussian fit continued as a Bernoulli one trained on standardised
#: targets outside [0, 1] and scored above 0)
_FIXED = ("likelihood",)

#: buffers that may differ in shape between fits (the iVAE's scoring draws,
#: redrawn when ``n_importance`` changed)
_REDRAWN = {"iwae_eps"}


def _redrawn(key):
    """Whether the state-dict entry ``key`` is a redrawn buffer (at any depth:
    an autoregressive model holds the iVAE as ``inner``)."""
    return key.rsplit(".", 1)[-1] in _REDRAWN


@contextlib.contextmanager
def restoring_on_error(est):
    """Restore ``est``'s attributes if the block raises, so a fit that fails
    (a refused warm start, bad ``u``, a diverging loss, an interrupt) leaves
    the estimator as it was before: the previous model, or unfitted. The
    snapshot is shallow, which suffices because a fit builds new fitted
    objects (a warm start trains a copy of ``module_``) rather than changing
    the old ones in place."""
    saved = dict(vars(est))
    try:
        yield
    except BaseException:
        state = vars(est)
        state.update(saved)  # (first: never an estimator without parameters)
        for name in set(state) - set(saved):
            del state[name]
        raise


def validate_fit_X(est, X, reset):
    """``(X, has_missing)``: a fit's ``X`` validated (missing cells only where
    the estimator takes them, see :mod:`skivae._missing`); with
    ``reset=False`` (a warm start) ``X`` must have the fitted features, and
    missing cells need a model fitted with them."""
    try:
        X, has_missing = validate_X(est, X, reset=reset, fit=True)
    except ValueError as exc:
        if reset or "features" not in str(exc):
            raise
        raise ValueError(
            f"{exc} warm_start=True continues the fitted model, which needs "
            "the same features; set warm_start=False to fit a new model."
        ) from exc
    if has_missing and not reset and not getattr(est, "masked_", False):
        raise ValueError(
            "X contains NaN (missing cells), but warm_start=True continues a "
            "model fitted on complete X, whose encoder does not read missing "
            "cells; set warm_start=False to fit a new model on these data."
        )
    return X, has_missing


def warm_aux(enc, u, n_samples):
    """Encode ``u`` with the fitted auxiliary encoder ``enc`` (None: fitted
    without ``u``); a ValueError when it cannot continue the fitted model."""
    if (enc is None) != (u is None):
        fitted = "without u" if enc is None else "with u"
        raise ValueError(
            f"warm_start=True continues the fitted model, which was fitted "
            f"{fitted}; pass {'no' if enc is None else 'a'} u as well, or set "
            "warm_start=False to fit a new model."
        )
    if enc is None:
        return None
    try:
        U = enc.transform(u, n_samples)
    except ValueError as exc:
        raise ValueError(
            f"warm_start=True continues the fitted model, which cannot read "
            f"this u: {exc} Set warm_start=False to fit a new model."
        ) from exc
    if enc.u_type_ == "categorical" and len(np.unique(U)) != enc.n_aux_:
        raise ValueError(
            f"warm_start=True continues the fitted model, whose u has "
            f"{enc.n_aux_} categories, but this u has {len(np.unique(U))} of "
            "them; pass data from every category, or set warm_start=False to "
            "fit a new model."
        )
    return U


def continued_module(est, n_features, seed):
    """A copy of ``est.module_`` to continue training.

    The model the current parameters build, holding the fitted weights; a
    ValueError if their shapes differ (a parameter that shapes the model
    changed). The scoring draws ``iwae_eps`` are redrawn when
    ``n_importance`` changed.
    """
    fitted = getattr(est, "_fitted_params", {})
    for name in _FIXED:
        if name in fitted and getattr(est, name) != fitted[name]:
            raise ValueError(
                f"warm_start=True continues the fitted model, but {name} changed "
                f"({fitted[name]!r} to {getattr(est, name)!r}), which changes how "
                "X is read and scored with the same weights; restore it or set "
                "warm_start=False to fit a new model."
            )
    with torch_seed(seed, torch.device("cpu")):
        module = est._build_module(n_features, seed)
    new, old = module.state_dict(), est.module_.state_dict()
    if new.keys() != old.keys() or any(
        new[k].shape != old[k].shape for k in new if not _redrawn(k)
    ):
        raise ValueError(
            "warm_start=True continues the fitted model, but the current "
            "parameters build a model of another shape (n_components, "
            "hidden_layer_sizes, prior, posterior, method, ... changed since "
            "the last fit); restore them or set warm_start=False to fit a new "
            "model."
        )
    module.load_state_dict(
        {
            k: new[k] if _redrawn(k) and new[k].shape != old[k].shape else old[k]
            for k in new
        }
    )
    return module
