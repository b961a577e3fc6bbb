"""Model selection without ground truth: agreement between independent fits.

Identifiable models recover the same latents up to permutation and
component-wise invertible maps, whatever the random initialisation. Fits that
found a spurious solution disagree with one another. :func:`seed_consistency`
measures that agreement: the strong MCC between the representations of every
pair of fits, and the *medoid*, the fit that agrees best with the others.

It needs only the data, so it can rank restarts, compare hyper-parameters in
a search, or warn that a model is not identified on a data set.
"""

import numpy as np
from sklearn.utils import Bunch, check_array

from skivae.metrics import mean_corr_coef

__all__ = ["seed_consistency"]


def seed_consistency(representations, X=None, *, method="spearman"):
    """Pairwise agreement (strong MCC) between several fits, and their medoid.

    Parameters
    ----------
    representations : sequence of array-like or of fitted estimators
        Either ``n_fits`` arrays of shape ``(n_samples, n_components)`` (the
        output of ``transform`` of each fit on the same rows), or ``n_fits``
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
    if any(hasattr(r, "transform") for r in reps):
        if X is None:
            raise ValueError(
                "representations holds estimators: pass X, the data to transform "
                "with each of them."
            )
        reps = [r.transform(X) for r in reps]
    reps = [
        check_array(r, dtype=np.float64, input_name="representations") for r in reps
    ]
    n = reps[0].shape[0]
    if any(r.shape[0] != n for r in reps):
        raise ValueError(
            "every representation must have the same number of rows (the same "
            f"samples); got {[r.shape[0] for r in reps]}."
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
