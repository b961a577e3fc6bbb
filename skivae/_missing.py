"""Missing cells (NaN) in ``X``: validation and the checks around them.

The iVAE (:class:`~skivae.IdentifiableVAE`, ``NonlinearICA(method="ivae")``)
trains on the observed cells of each row (a masked likelihood, see
:class:`~skivae._core.elbo.IVAEModule`); the flow, TCL and GCL need complete
rows. An estimator says which by its ``_accepts_missing()``; its fitted
``masked_`` says whether its model was trained with missing cells (only such
a model's encoder reads the mask, so only it can transform partial rows).
"""

import numpy as np

from skivae._compat import validate_data

_IMPUTE = (
    "or put an imputer (sklearn.impute.SimpleImputer, IterativeImputer or "
    "KNNImputer) before it in a Pipeline"
)


def validate_X(est, X, *, reset, fit):
    """``validate_data`` of ``X`` with NaN allowed (infinity is not), then
    :func:`check_missing`. Returns ``(X, has_missing)``."""
    kwargs = {"ensure_min_samples": 2} if fit else {}
    X = validate_data(
        est,
        X,
        dtype=[np.float64, np.float32],
        reset=reset,
        ensure_all_finite="allow-nan",
        **kwargs,
    )
    return X, check_missing(est, X, fit=fit, new=reset)


def check_missing(est, X, *, fit, new=True):
    """Whether ``X`` has missing cells; a ValueError naming the remedy when
    ``est`` cannot use them (the method needs complete rows, a row or a
    training column is entirely missing, or the model was fitted on complete
    data). ``new=False``: a warm start, whose model already knows every
    column (its scale came from the first fit), so a column missing from
    this batch is allowed."""
    missing = np.isnan(X)
    if not missing.any():
        return False
    name = type(est).__name__
    n_rows = int(missing.any(axis=1).sum())
    if not est._accepts_missing(fitted=not fit):
        method = est._fitted_param("method", fitted=not fit)
        what = f"{name}(method={method!r})" if method else name
        raise ValueError(
            f"X contains NaN (missing cells) in {n_rows} row(s), but {what} "
            "needs complete rows. Use NonlinearICA(method='ivae') or "
            f"IdentifiableVAE, which train on the observed cells, {_IMPUTE}."
        )
    empty = np.flatnonzero(missing.all(axis=1))
    if empty.size:
        raise ValueError(
            f"X has {empty.size} row(s) whose cells are all missing (NaN), "
            f"e.g. row {empty[0]}: they carry no information about the "
            "latents. Drop them before calling "
            f"{'fit' if fit else 'this method'}."
        )
    if fit and new:
        empty = np.flatnonzero(missing.all(axis=0))
        if empty.size:
            raise ValueError(
                f"X has {empty.size} column(s) with no observed value (all "
                f"NaN), e.g. column {empty[0]}: nothing can be learned about "
                "them. Drop them before fitting."
            )
    elif not fit and not getattr(est, "masked_", False):
        raise ValueError(
            f"X contains NaN (missing cells) in {n_rows} row(s), but this "
            f"{name} was fitted on complete X, so its encoder never learned "
            "to read missing cells. Refit on data with missing cells (the "
            f"model then trains on the observed cells), {_IMPUTE}."
        )
    return True
