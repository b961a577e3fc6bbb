"""Model selection without ground truth: agreement between independent fits.

Identifiable models recover the same latents up to permutation and
component-wise invertible maps, whatever the random initialisation. Fits that
found a spurious solution disagree with one another. :func:`seed_consistency`
measures that agreement: the strong MCC between the representations of every
pair of fits, and the *medoid*, the fit that agrees best with the others.

It needs only the data, so it can rank restarts, compare hyper-parameters in
a search, or warn that a model is not identified on a data set.

On simulations, where the true sources are known, :func:`cross_val_mcc`
scores a model out of sample: the matching between estimated and true
sources is found on each training fold and applied unchanged to the test
fold.
"""

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch, check_array, check_consistent_length
from sklearn.utils.parallel import Parallel, delayed

from skivae._compat import _safe_indexing
from skivae.metrics import _check_samples_array, match_components, mean_corr_coef

__all__ = ["cross_val_mcc", "seed_consistency"]


def seed_consistency(representations, X=None, *, method="spearman"):
    """Pairwise agreement (strong MCC) between several fits, and their medoid.

    Parameters
    ----------
    representations : sequence of array-like or of fitted estimators
        Either ``n_fits`` arrays of shape ``(n_samples, n_components)`` (the
        output of ``transform`` of each fit on the same rows; 1-D is one
        component), or ``n_fits``
        fitted transformers, in which case ``X`` is required and each
        representation is ``est.transform(X)``.

    X : array-like of shape (n_samples, n_features), default=None
        Data to transform when ``representations`` holds estimators.

    method : {"spearman", "pearson"}, default="spearman"
        Correlation of :func:`skivae.metrics.mean_corr_coef`. Spearman is
        invariant to the component-wise monotone maps that identifiable
        models leave undetermined.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With keys

        - ``pairwise``: ndarray of shape ``(n_fits, n_fits)``, the MCC
          between fits ``i`` and ``j`` (1 on the diagonal);
        - ``scores``: ndarray of shape ``(n_fits,)``, each fit's mean MCC
          with the other fits;
        - ``medoid``: int, the index of the fit with the highest score;
        - ``mean``: float, the mean off-diagonal MCC (1.0 when every fit
          finds the same latents).

    See Also
    --------
    skivae.metrics.mean_corr_coef : The MCC between two sets of components.

    Notes
    -----
    High agreement is necessary for identifiability but not sufficient: fits
    that share a bias (the same misspecified model, the same failure) can
    agree on a wrong answer. On simulations, compare with the true sources.

    Examples
    --------
    >>> import numpy as np
    >>> from skivae.model_selection import seed_consistency
    >>> rng = np.random.RandomState(0)
    >>> S = rng.standard_normal((500, 3))
    >>> same = [S[:, [2, 0, 1]] ** 3, -S, rng.standard_normal((500, 3))]
    >>> result = seed_consistency(same)
    >>> int(result.medoid) in (0, 1)
    True
    >>> bool(result.pairwise[0, 1] > 0.99), bool(result.pairwise[0, 2] < 0.2)
    (True, True)
    """
    reps = list(representations)
    if len(reps) < 2:
        raise ValueError(
            f"seed_consistency needs at least 2 fits to compare, got {len(reps)}."
        )
    # An estimator has fit and transform (a DataFrame has transform alone).
    is_estimator = [hasattr(r, "fit") and hasattr(r, "transform") for r in reps]
    if any(is_estimator) and not all(is_estimator):
        raise ValueError(
            "representations mixes fitted estimators and arrays: give all of one "
            "kind (arrays of transform outputs, or estimators with X)."
        )
    if all(is_estimator):
        if X is None:
            raise ValueError(
                "representations holds estimators: pass X, the data to transform "
                "with each of them."
            )
        reps = [r.transform(X) for r in reps]
    elif X is not None:
        warnings.warn(
            "seed_consistency got arrays and X: X is only read with fitted "
            "estimators (to transform it), so it is ignored here.",
            UserWarning,
            stacklevel=2,
        )
    reps = [_check_samples_array(r, "representations") for r in reps]
    # 1-D is one component, as in mean_corr_coef
    reps = [r.reshape(-1, 1) if r.ndim == 1 else r for r in reps]
    n = reps[0].shape[0]
    if n < 2:
        raise ValueError(
            f"representations have {n} row(s); correlations need at least 2 samples."
        )
    if any(r.shape[0] != n for r in reps):
        raise ValueError(
            "every representation must have the same number of rows (the same "
            f"samples); got {[r.shape[0] for r in reps]}."
        )
    if any(r.shape[1] != reps[0].shape[1] for r in reps):
        # The MCC matches min(k_i, k_j) pairs: a fit of one component would
        # agree perfectly with any fit that contains it.
        raise ValueError(
            "every representation must have the same number of components (fits "
            f"with the same n_components); got {[r.shape[1] for r in reps]}."
        )
    k = len(reps)
    pairwise = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            pairwise[i, j] = pairwise[j, i] = mean_corr_coef(
                reps[i], reps[j], method=method
            )
    scores = (pairwise.sum(1) - 1.0) / (k - 1)
    return Bunch(
        pairwise=pairwise,
        scores=scores,
        medoid=int(np.argmax(scores)),
        mean=float(scores.mean()),
    )


def _fit_and_match(estimator, X, u, S, train, test, method, groups=None):
    """Fit on ``train``, match there, score ``test`` with that matching."""
    X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
    u_train = None if u is None else _safe_indexing(u, train)
    params = {}
    if groups is not None and getattr(estimator, "ar_order", 0):
        # A model with memory reads the training fold's sequences from groups.
        params["groups"] = _safe_indexing(groups, train)
    estimator.fit(X_train, u_train, **params)
    Z_train = estimator.transform(X_train)
    Z_test = estimator.transform(X_test)
    matching = match_components(S[train], Z_train, method=method)
    kw = {"method": method}
    return {
        "test_mcc": mean_corr_coef(S[test], Z_test, matching=matching, **kw),
        "test_mcc_rematched": mean_corr_coef(S[test], Z_test, **kw),
        "train_mcc": mean_corr_coef(S[train], Z_train, matching=matching, **kw),
        "matching": matching,
        "estimator": estimator,
    }


def cross_val_mcc(
    estimator,
    X,
    u,
    sources,
    *,
    cv=5,
    method="pearson",
    groups=None,
    n_jobs=None,
    return_estimator=False,
):
    """Out-of-sample MCC: match sources on each training fold, score the test fold.

    For every split of ``cv``, a clone of ``estimator`` is fitted on the
    training rows of ``(X, u)``; :func:`~skivae.metrics.match_components`
    pairs its training-fold output with the training-fold sources, and
    :func:`~skivae.metrics.mean_corr_coef` scores the test fold with that
    fixed matching. Unlike a scorer (such as
    :data:`~skivae.metrics.mcc_scorer`), which sees only the test fold and
    must search the matching there, the test rows then play no part in
    choosing which component estimates which source, so the score is not
    biased upwards by that choice (noticeably so with many components and
    small test folds).

    Parameters
    ----------
    estimator : estimator object
        A transformer whose ``fit(X, u)`` takes the auxiliary variable in
        ``y``'s place (:class:`~skivae.IdentifiableVAE`,
        :class:`~skivae.NonlinearICA`, or a Pipeline ending in one). It is
        cloned for each split.

    X : array-like of shape (n_samples, n_features)
        Observations.

    u : array-like of shape (n_samples,) or (n_samples, n_aux), or None
        Auxiliary variable, split with ``X``.

    sources : array-like of shape (n_samples, n_sources)
        True sources of the rows of ``X``.

    cv : int, cross-validation generator or iterable, default=5
        As in :func:`sklearn.model_selection.cross_validate`; an int is a
        ``KFold`` without shuffling. Segmented data are usually sorted by
        segment: pass ``KFold(n, shuffle=True, random_state=0)`` so that each
        training fold sees every segment.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation used both to match and to score.

    groups : array-like of shape (n_samples,), default=None
        Group labels for group-aware splitters. A skivae estimator with
        ``ar_order > 0`` also gets the training fold's labels in ``fit``: its
        sequences (see :meth:`~skivae.NonlinearICA.fit`); a Pipeline ending
        in one does not.

    n_jobs : int, default=None
        Number of splits fitted in parallel (joblib, through
        :mod:`sklearn.utils.parallel`, which hands scikit-learn's
        configuration and warning filters to the workers); ``None`` is 1.

    return_estimator : bool, default=False
        Also return the fitted estimator of each split.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With one entry per split in each key:

        - ``test_mcc``: ndarray, MCC of the test fold with the training
          fold's matching (the out-of-sample score);
        - ``test_mcc_rematched``: ndarray, MCC of the test fold with its own
          best matching (what :data:`~skivae.metrics.mcc_scorer` computes);
        - ``train_mcc``: ndarray, MCC of the training fold;
        - ``matching``: list of ``(true_idx, pred_idx)`` pairs;
        - ``estimator``: list of fitted estimators (``return_estimator=True``).

    See Also
    --------
    skivae.metrics.match_components : The matching found on each training fold.
    skivae.metrics.make_mcc_scorer : In-fold MCC as a scorer for searches.

    Notes
    -----
    This is a function rather than a scorer option because scikit-learn's
    scorer protocol, ``scorer(estimator, X_test, y_test, **metadata)``,
    never passes the training fold, where the matching must be found. To
    compare settings, call it once per candidate (for example over a
    :class:`~sklearn.model_selection.ParameterGrid`).

    Examples
    --------
    >>> from sklearn.model_selection import KFold
    >>> from skivae import NonlinearICA
    >>> from skivae.datasets import make_nonstationary_sources
    >>> from skivae.model_selection import cross_val_mcc
    >>> X, u, S = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    >>> ica = NonlinearICA(method="gcl", max_iter=2, random_state=0)
    >>> cv = KFold(2, shuffle=True, random_state=0)
    >>> result = cross_val_mcc(ica, X, u, S, cv=cv)
    >>> result.test_mcc.shape
    (2,)
    >>> bool(((0 <= result.test_mcc) & (result.test_mcc <= 1)).all())
    True
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    if not hasattr(estimator, "transform"):
        raise ValueError(
            f"cross_val_mcc needs a transformer (an estimator with transform), got "
            f"{type(estimator).__name__}: its output is matched to the sources."
        )
    if sources is None:
        raise ValueError(
            "sources is None: cross_val_mcc scores the fits against the true "
            "sources of the rows of X, which must be given (on simulated data)."
        )
    S = check_array(sources, ensure_2d=False, dtype=np.float64, input_name="sources")
    if S.ndim == 1:
        S = S.reshape(-1, 1)
    check_consistent_length(
        X, S, *(() if u is None else (u,)), *(() if groups is None else (groups,))
    )
    splits = list(check_cv(cv).split(X, u, groups))
    for train, test in splits:
        if min(len(train), len(test)) < 2:
            raise ValueError(
                f"cv made a fold with {len(train)} training and {len(test)} test "
                "row(s); the MCC correlates columns, so every fold needs at least "
                "2 rows of each. Use fewer splits."
            )
    results = Parallel(n_jobs=n_jobs)(
        delayed(_fit_and_match)(clone(estimator), X, u, S, train, test, method, groups)
        for train, test in splits
    )
    out = Bunch(
        test_mcc=np.array([r["test_mcc"] for r in results]),
        test_mcc_rematched=np.array([r["test_mcc_rematched"] for r in results]),
        train_mcc=np.array([r["train_mcc"] for r in results]),
        matching=[r["matching"] for r in results],
    )
    if return_estimator:
        out["estimator"] = [r["estimator"] for r in results]
    return out
