import numpy as np
import pytest
from numpy.testing import assert_allclose

from skivae.model_selection import seed_consistency


def _fits(rng, n=400):
    S = rng.standard_normal((n, 3))
    good = [S[:, [1, 2, 0]] * [1, -2, 3], np.tanh(S), S**3]
    bad = rng.standard_normal((n, 3))
    return S, good, bad


def test_pairwise_is_symmetric_with_unit_diagonal_and_finds_the_medoid():
    rng = np.random.RandomState(0)
    _, good, bad = _fits(rng)
    res = seed_consistency([bad] + good)
    assert_allclose(res.pairwise, res.pairwise.T)
    assert_allclose(np.diag(res.pairwise), 1.0)
    # The three fits that agree (up to permutation, sign, monotone maps) all
    # score far above the spurious one, which is never the medoid.
    assert res.medoid != 0
    assert res.scores[0] < 0.5 < res.scores[1:].min()
    assert res.pairwise[1, 2] > 0.99 and res.pairwise[1, 3] > 0.99
    assert 0 < res.mean < 1


def test_spearman_sees_monotone_maps_pearson_does_not_fully():
    rng = np.random.RandomState(1)
    S = rng.standard_normal((1000, 2))
    spear = seed_consistency([S, np.exp(3 * S)], method="spearman")
    pear = seed_consistency([S, np.exp(3 * S)], method="pearson")
    assert spear.pairwise[0, 1] == pytest.approx(1.0)
    assert pear.pairwise[0, 1] < 0.7


def test_estimators_are_transformed_on_X():
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(2)
    X = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4))
    fits = [PCA(2, random_state=s).fit(X) for s in (0, 1)]
    res = seed_consistency(fits, X)
    assert res.pairwise[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pass X"):
        seed_consistency(fits)


@pytest.mark.parametrize(
    "reps, match",
    [
        ([np.zeros((5, 2))], "at least 2 fits"),
        ([np.ones((5, 2)), np.ones((6, 2))], "same number of rows"),
        ([np.ones((5, 2)), np.full((5, 2), np.nan)], "NaN"),
    ],
)
def test_bad_input(reps, match):
    with pytest.raises(ValueError, match=match):
        seed_consistency(reps)
