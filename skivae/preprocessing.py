"""Preparing auxiliary variables from the data.

For time series, the past of each sequence can serve as the auxiliary variable
of an identifiable model: with sources whose temporal dependence differs
between components, ``u_t = (x_{t-1}, ..., x_{t-p})`` makes them identifiable
(permutation contrastive learning and its relatives). :func:`lagged_rows` builds
that ``u`` from a table whose rows are in time order within each sequence.

The functions use only numpy and scikit-learn.
"""

import numbers

import numpy as np
from sklearn.utils import check_array

__all__ = ["lagged_rows"]


def _check_n_lags(n_lags):
    if (
        isinstance(n_lags, bool)
        or not isinstance(n_lags, numbers.Integral)
        or n_lags < 1
    ):
        raise ValueError(f"n_lags must be an integer >= 1, got {n_lags!r}.")
    return int(n_lags)


def _is_missing_label(v):
    """None, a float NaN, or pandas' NA / NaT (a missing label of ``u`` or
    ``groups``)."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def _group_codes(groups, n_samples):
    """Integer codes (0, 1, ...) of the group labels, one per row."""
    if groups is None:
        return np.zeros(n_samples, dtype=np.intp)
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(
            f"groups must be one-dimensional (one label per row of X), got an "
            f"array of shape {groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            f"groups must have one label per row of X: got {groups.shape[0]} "
            f"labels for {n_samples} rows."
        )
    return _label_codes(groups, "groups")[1]


def _label_codes(labels, name):
    """Distinct labels of a 1-D array and each row's code (``np.unique``),
    with errors naming ``name`` for missing or incomparable labels."""
    kind = labels.dtype.kind
    if (
        (kind in "fc" and np.isnan(labels).any())
        or (kind in "mM" and np.isnat(labels).any())
        or (kind == "O" and any(map(_is_missing_label, labels)))
    ):
        raise ValueError(
            f"{name} must not contain missing labels (None, NaN, NaT or pandas NA)."
        )
    try:
        uniques, codes = np.unique(labels, return_inverse=True)
    except TypeError:
        raise ValueError(
            f"{name} must hold labels of one comparable type (e.g. all integers "
            "or all strings)."
        ) from None
    return uniques, codes.reshape(-1)


def lagged_rows(X, groups=None, n_lags=1):
    """The previous rows of each sequence, side by side, as an auxiliary variable.

    Row ``t`` of the output holds ``[x_{t-1}, x_{t-2}, ..., x_{t-n_lags}]``,
    where ``x_{t-k}`` is the ``k``-th previous row *of the same group* in the
    given row order. The groups (sequences) may be interleaved and in any
    order; a row never borrows from another group. Rows with fewer than
    ``n_lags`` previous rows in their group get NaN and are left out of
    ``keep``, so that the usual pattern is::

        U, keep = lagged_rows(X, groups)
        est.fit(X[keep], U[keep])

    which fits ``est`` with the previous rows as a continuous auxiliary
    variable.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Observations, in time order within each group. A pandas DataFrame is
        accepted. NaN is allowed (it is copied into the lagged rows);
        infinite values are not.

    groups : array-like of shape (n_samples,), default=None
        Sequence label of each row (e.g. the ``groups`` returned by
        :func:`skivae.datasets.make_time_sources`). Labels may be integers,
        strings or any values of one comparable type. ``None`` means that all
        rows form one sequence.

    n_lags : int, default=1
        Number of previous rows to put side by side.

    Returns
    -------
    U : ndarray of shape (n_samples, n_lags * n_features)
        Lagged rows (float64): columns ``(k - 1) * n_features`` to
        ``k * n_features - 1`` hold the ``k``-th previous row of the group.
        Rows without a full history hold NaN where a previous row is missing.

    keep : ndarray of shape (n_samples,)
        Boolean mask of the rows with a full history (at least ``n_lags``
        previous rows in their group). It does not look at NaN copied from
        ``X``: use ``keep & ~np.isnan(U).any(axis=1)`` to drop those rows too.

    See Also
    --------
    skivae.datasets.make_time_sources : Time series of sources mixed by a
        random MLP.

    Examples
    --------
    >>> import numpy as np
    >>> from skivae.preprocessing import lagged_rows
    >>> X = np.array([[0.0], [1.0], [10.0], [2.0], [20.0]])
    >>> groups = np.array([0, 0, 1, 0, 1])
    >>> U, keep = lagged_rows(X, groups)
    >>> U.ravel()
    array([nan,  0., nan,  1., 10.])
    >>> keep
    array([False,  True, False,  True,  True])
    >>> U, keep = lagged_rows(X, groups, n_lags=2)
    >>> U.shape, int(keep.sum())
    ((5, 2), 1)
    """
    try:
        X = check_array(
            X,
            dtype=np.float64,
            ensure_all_finite="allow-nan",
            ensure_2d=True,
            input_name="X",
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"X must be a 2-D array of numbers (NaN allowed, not infinity): {exc}"
        ) from None
    n_samples, n_features = X.shape
    previous = _previous_rows(groups, n_samples, n_lags)
    exists = previous >= 0
    U = np.where(
        np.repeat(exists, n_features, axis=1),
        X[np.where(exists, previous, 0)].reshape(n_samples, -1),
        np.nan,
    )
    return U, exists.all(axis=1)


def _previous_rows(groups, n_samples, n_lags):
    """Indices ``(n_samples, n_lags)`` of the 1st .. ``n_lags``-th previous
    row of each row's group (row order within a group is time order), -1
    where there is none. ``groups`` None: one sequence."""
    codes = _group_codes(groups, n_samples)
    n_lags = _check_n_lags(n_lags)
    # Sort the rows by group, keeping their order within a group: then the
    # k-th previous row of a group is k rows up, if it has the same code.
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    prev_sorted = np.full((n_samples, n_lags), -1, dtype=np.int64)
    for k in range(1, min(n_lags, n_samples - 1) + 1):
        same = sorted_codes[k:] == sorted_codes[:-k]
        prev_sorted[k:, k - 1] = np.where(same, order[:-k], -1)
    previous = np.empty_like(prev_sorted)
    previous[order] = prev_sorted
    return previous
