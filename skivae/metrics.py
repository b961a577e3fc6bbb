"""Metrics for comparing estimated sources with the true sources.

The mean correlation coefficient (MCC) measures how well a set of estimated
components recovers the true sources up to the indeterminacies that nonlinear
ICA leaves: a permutation, signs and scales (strong MCC, :func:`mean_corr_coef`),
or an invertible linear map (weak MCC, :func:`weak_mean_corr_coef`).

All functions take numpy arrays of shape ``(n_samples, n_components)``, true
sources first, and return plain Python floats. They use only numpy, scipy and
scikit-learn.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from sklearn.utils import check_array
from sklearn.utils.metadata_routing import MetadataRequest

__all__ = [
    "make_mcc_scorer",
    "match_components",
    "mcc_scorer",
    "mean_corr_coef",
    "weak_mean_corr_coef",
]

_METHODS = ("pearson", "spearman")


def _check_samples_array(A, name):
    """``A`` as a float64 array of 1 or 2 dimensions (scikit-learn's check
    raises a TypeError for a scalar)."""
    if np.ndim(A) == 0:
        raise ValueError(
            f"{name} must be an array of shape (n_samples, n_components), got a "
            f"scalar {A!r:.40}."
        )
    return check_array(A, ensure_2d=False, dtype=np.float64, input_name=name)


def _check_sources(sources_true, sources_pred):
    """Validate both arrays: float64, finite, 2-D (1-D is one column), same n."""
    arrays = []
    for name, A in (("sources_true", sources_true), ("sources_pred", sources_pred)):
        A = _check_samples_array(A, name)
        if A.ndim == 1:
            A = A.reshape(-1, 1)
        if A.shape[0] < 2:
            raise ValueError(f"{name} must have at least 2 samples, got {A.shape[0]}.")
        if A.shape[1] < 1:
            raise ValueError(f"{name} must have at least 1 column, got 0.")
        arrays.append(A)
    S, Z = arrays
    if S.shape[0] != Z.shape[0]:
        raise ValueError(
            "sources_true and sources_pred must have the same number of samples, "
            f"got {S.shape[0]} and {Z.shape[0]}."
        )
    return S, Z


def _check_method(method):
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    return method


def _center(A):
    """Centred copy of A and its column norms (inf for constant columns).

    Each column is first divided by the smallest power of two above its
    largest magnitude: exact (the correlations are unchanged to the bit), and
    the sums of squares stay finite at any scale (1e155 would overflow them,
    1e-200 underflow).
    """
    A = np.ldexp(A, -np.frexp(np.abs(A).max(axis=0))[1])
    scale = np.abs(A).max(axis=0) * np.sqrt(A.shape[0])
    A = A - A.mean(axis=0)
    norm = np.linalg.norm(A, axis=0)
    # Constant columns get an infinite norm: correlation 0. A constant column
    # centres to n equal values, the rounding error of its mean (at most about
    # log2(n) * eps of its magnitude, pairwise summation): 1e-13 is above that
    # for any n, and far below a real column's spread (a column 1e11 + s kept
    # correlation 1 where the former 1e-10 made it constant).
    norm[norm <= 1e-13 * scale] = np.inf
    return A, norm


def _abs_corr(S, Z, method):
    """Absolute correlations between the columns of S (rows) and Z (columns).

    Constant columns have no defined correlation and get 0.
    """
    if method == "spearman":
        S, Z = rankdata(S, axis=0), rankdata(Z, axis=0)
    S_c, norm_s = _center(S)
    Z_c, norm_z = _center(Z)
    C = (S_c.T @ Z_c) / np.outer(norm_s, norm_z)
    return np.clip(np.nan_to_num(np.abs(C)), 0.0, 1.0)


def _check_matching(matching, k_true, k_pred):
    try:
        rows, cols = matching
        rows = np.asarray(rows)
        cols = np.asarray(cols)
    except (TypeError, ValueError):
        raise ValueError(
            "matching must be a pair (true_idx, pred_idx) of index arrays, "
            f"as returned by match_components; got {matching!r}."
        ) from None
    if (
        rows.ndim != 1
        or cols.ndim != 1
        or rows.shape != cols.shape
        or rows.size == 0
        or not np.issubdtype(rows.dtype, np.integer)
        or not np.issubdtype(cols.dtype, np.integer)
    ):
        raise ValueError(
            "matching must be a pair (true_idx, pred_idx) of non-empty 1-D integer "
            "arrays of equal length."
        )
    if rows.min() < 0 or rows.max() >= k_true or cols.min() < 0 or cols.max() >= k_pred:
        raise ValueError(
            f"matching indices out of range for {k_true} true and {k_pred} "
            "estimated components."
        )
    if np.unique(rows).size != rows.size or np.unique(cols).size != cols.size:
        raise ValueError("matching must be one-to-one (no repeated indices).")
    return rows, cols


def match_components(sources_true, sources_pred, *, method="pearson"):
    """Find the one-to-one matching of estimated to true components.

    The matching maximizes the total absolute correlation (Hungarian algorithm)
    and pairs ``min(k_true, k_pred)`` components. Fit it on one split and pass
    it to :func:`mean_corr_coef` through ``matching=`` to score another split.

    Parameters
    ----------
    sources_true : array-like of shape (n_samples, k_true)
        True sources. A 1-D array is one column.

    sources_pred : array-like of shape (n_samples, k_pred)
        Estimated sources. A 1-D array is one column.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation used to build the matching.

    Returns
    -------
    true_idx : ndarray of shape (min(k_true, k_pred),)
        Indices of the matched true sources, in increasing order.

    pred_idx : ndarray of shape (min(k_true, k_pred),)
        Indices of the estimated components matched to ``true_idx``:
        ``sources_pred[:, pred_idx[j]]`` estimates ``sources_true[:, true_idx[j]]``.

    See Also
    --------
    mean_corr_coef : Strong MCC, optionally with a precomputed matching.

    Notes
    -----
    The matching ignores signs. To align the estimate with the truth, take
    ``sources_pred[:, pred_idx]`` and flip each column whose Pearson
    correlation with ``sources_true[:, true_idx]`` is negative.

    Examples
    --------
    >>> import numpy as np
    >>> from skivae.metrics import match_components
    >>> rng = np.random.RandomState(0)
    >>> S = rng.laplace(size=(200, 3))
    >>> true_idx, pred_idx = match_components(S, -S[:, [2, 0, 1]])
    >>> true_idx, pred_idx
    (array([0, 1, 2]), array([1, 2, 0]))
    """
    S, Z = _check_sources(sources_true, sources_pred)
    C = _abs_corr(S, Z, _check_method(method))
    rows, cols = linear_sum_assignment(C, maximize=True)
    return rows.astype(np.intp), cols.astype(np.intp)


def mean_corr_coef(sources_true, sources_pred, *, method="pearson", matching=None):
    """Strong mean correlation coefficient (MCC) between true and estimated sources.

    Correlates every true source with every estimated component, takes absolute
    values, finds the one-to-one matching that maximizes their total (Hungarian
    algorithm) and returns the mean of the matched correlations. It is invariant
    to a permutation, sign flips and rescaling of the estimated components (and,
    with ``method="spearman"``, to any strictly monotone element-wise map).

    Parameters
    ----------
    sources_true : array-like of shape (n_samples, k_true)
        True sources. A 1-D array is one column.

    sources_pred : array-like of shape (n_samples, k_pred)
        Estimated sources. ``k_pred`` may differ from ``k_true``: then the
        ``min(k_true, k_pred)`` best-matched pairs are averaged, and the
        unmatched components are ignored.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation coefficient. Spearman's is Pearson's on the column-wise
        ranks.

    matching : tuple of (ndarray, ndarray), default=None
        A precomputed matching ``(true_idx, pred_idx)``, as returned by
        :func:`match_components` (typically on a training split). If given, the
        correlations of these pairs are averaged and no matching is searched.

    Returns
    -------
    mcc : float
        Mean absolute correlation of the matched pairs, in ``[0, 1]``; 1 is
        perfect recovery. Constant columns count as correlation 0.

    See Also
    --------
    match_components : The matching, to reuse on another split.
    weak_mean_corr_coef : MCC up to an invertible linear map.

    Examples
    --------
    >>> import numpy as np
    >>> from skivae.metrics import mean_corr_coef
    >>> rng = np.random.RandomState(0)
    >>> S = rng.laplace(size=(500, 3))
    >>> round(mean_corr_coef(S, -2.0 * S[:, [2, 0, 1]]), 6)
    1.0
    """
    S, Z = _check_sources(sources_true, sources_pred)
    C = _abs_corr(S, Z, _check_method(method))
    if matching is None:
        rows, cols = linear_sum_assignment(C, maximize=True)
    else:
        rows, cols = _check_matching(matching, S.shape[1], Z.shape[1])
    return float(C[rows, cols].mean())


def _orthonormal_basis(A):
    """Orthonormal basis of the span of the centred columns of A (rank-revealing)."""
    A = A - A.mean(axis=0)
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return U[:, :0]
    tol = s[0] * max(A.shape) * np.finfo(A.dtype).eps
    return U[:, s > tol]


def weak_mean_corr_coef(sources_true, sources_pred, *, method="pearson"):
    """Weak mean correlation coefficient: MCC after alignment by CCA.

    Canonical correlation analysis (CCA) finds the pairs of linear combinations
    of the true sources and of the estimated components that are maximally
    correlated. The weak MCC is the MCC between the ``min(k_true, k_pred)``
    pairs of canonical variates, so an estimate that recovers the sources up to
    an invertible linear map (plus a constant) scores 1.

    Parameters
    ----------
    sources_true : array-like of shape (n_samples, k_true)
        True sources. A 1-D array is one column.

    sources_pred : array-like of shape (n_samples, k_pred)
        Estimated sources. A 1-D array is one column.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation coefficient used between the canonical variates.

    Returns
    -------
    mcc : float
        Weak MCC in ``[0, 1]``. With Pearson correlation it is the mean of the
        ``min(k_true, k_pred)`` canonical correlations.

    See Also
    --------
    mean_corr_coef : Strong MCC (permutation, signs and scales only).

    Notes
    -----
    CCA is computed in closed form: both centred arrays are whitened (an
    orthonormal basis ``Q_S``, ``Q_Z`` of their column spaces, from an SVD with
    rank detection), then the SVD ``Q_S.T @ Q_Z = U diag(rho) V.T`` gives the
    canonical correlations ``rho`` and the canonical variates ``Q_S @ U`` and
    ``Q_Z @ V``. The variates of a pair correlate with ``rho_j`` and are
    uncorrelated across pairs. Both variates depend on the data only through
    the column spaces of the centred arrays, which do not change when
    ``sources_pred`` is replaced by ``sources_pred @ A + c`` for any invertible
    ``A``: the linear indeterminacy of the weak identifiability result is
    removed. This is the weak MCC of the ICE-BeeM/iVAE reference code
    (``CCA`` followed by the strong MCC of the two sets of canonical variates),
    without the iterative solver. Components missing because an array is rank
    deficient count as correlation 0. With ``method="spearman"`` the canonical
    variates are still linear; only their final comparison uses ranks.

    Examples
    --------
    >>> import numpy as np
    >>> from skivae.metrics import mean_corr_coef, weak_mean_corr_coef
    >>> rng = np.random.RandomState(0)
    >>> S = rng.laplace(size=(500, 3))
    >>> Z = S @ rng.uniform(-1, 1, size=(3, 3))
    >>> round(weak_mean_corr_coef(S, Z), 6)
    1.0
    >>> mean_corr_coef(S, Z) < 0.9
    True
    """
    S, Z = _check_sources(sources_true, sources_pred)
    method = _check_method(method)
    n_pairs = min(S.shape[1], Z.shape[1])
    Q_s, Q_z = _orthonormal_basis(S), _orthonormal_basis(Z)
    if Q_s.shape[1] == 0 or Q_z.shape[1] == 0:
        return 0.0
    U, _, Vt = np.linalg.svd(Q_s.T @ Q_z, full_matrices=False)
    variates_true = Q_s @ U
    variates_pred = Q_z @ Vt.T
    C = _abs_corr(variates_true, variates_pred, method)
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].sum() / n_pairs)


class _MCCScorer:
    """Scorer ``(estimator, X, y=None, *, sources) -> MCC`` of ``transform(X)``.

    Built by :func:`make_mcc_scorer`; see there.
    """

    def __init__(self, method="pearson", weak=False):
        self.method = method
        self.weak = weak

    def __call__(self, estimator, X, y=None, sources=None, **kwargs):
        if sources is None:
            raise ValueError(
                "The MCC scorer needs the true sources of the scored rows. Enable "
                "metadata routing (sklearn.set_config(enable_metadata_routing=True)) "
                "and pass them to the search's fit: search.fit(X, u, sources=S); or "
                "call the scorer directly as scorer(estimator, X, sources=S)."
            )
        if not hasattr(estimator, "transform"):
            raise ValueError(
                f"the MCC scorer rates the output of transform, which "
                f"{type(estimator).__name__} does not have; score a transformer "
                "(or a Pipeline ending in one)."
            )
        Z = estimator.transform(X)
        fn = weak_mean_corr_coef if self.weak else mean_corr_coef
        return fn(sources, Z, method=self.method)

    def get_metadata_routing(self):
        """Request ``sources`` for scoring (scikit-learn metadata routing)."""
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="sources", alias=True)
        return request

    def __repr__(self):
        return f"make_mcc_scorer(method={self.method!r}, weak={self.weak!r})"


def make_mcc_scorer(*, method="pearson", weak=False):
    """Make a scorer that rates a transformer by the MCC of its output.

    The scorer computes ``mean_corr_coef(sources, estimator.transform(X))``
    (or :func:`weak_mean_corr_coef` with ``weak=True``). Higher is better.
    The true sources are sample-aligned metadata: with scikit-learn's
    metadata routing enabled, a search passes them through ``fit`` and
    splits them with the rows of ``X``, so each fold is scored on its own
    sources.

    Parameters
    ----------
    method : {"pearson", "spearman"}, default="pearson"
        Correlation used by the metric.
    weak : bool, default=False
        Use the weak MCC (after CCA alignment) instead of the strong one.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None, *, sources)``, usable as ``scoring=``.

    Examples
    --------
    >>> import sklearn
    >>> from sklearn.model_selection import GridSearchCV, KFold
    >>> from skivae import IdentifiableVAE
    >>> from skivae.datasets import make_nonstationary_sources
    >>> from skivae.metrics import make_mcc_scorer
    >>> X, u, S = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    >>> with sklearn.config_context(enable_metadata_routing=True):
    ...     search = GridSearchCV(
    ...         IdentifiableVAE(max_iter=2, random_state=0),
    ...         {"prior": ["gaussian", "laplace"]},
    ...         scoring=make_mcc_scorer(),
    ...         cv=KFold(2, shuffle=True, random_state=0),
    ...     ).fit(X, u, sources=S)
    >>> bool(0 <= search.best_score_ <= 1)
    True
    """
    if method not in _METHODS:
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    if not isinstance(weak, (bool, np.bool_)):
        raise ValueError(f"weak must be True or False, got {weak!r}.")
    return _MCCScorer(method=method, weak=bool(weak))


#: Strong (Pearson) MCC scorer; see :func:`make_mcc_scorer`.
mcc_scorer = make_mcc_scorer()
