import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

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
    with pytest.raises(ValueError, match="mixes fitted estimators and arrays"):
        seed_consistency([fits[0], fits[1].transform(X)], X)


def test_dataframes_are_representations_not_estimators():
    # A DataFrame has a transform method; it must still be read as an array.
    pd = pytest.importorskip("pandas")
    S = np.random.RandomState(0).standard_normal((100, 2))
    res = seed_consistency([pd.DataFrame(S), pd.DataFrame(-S[:, ::-1])])
    assert res.pairwise[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "reps, match",
    [
        ([np.zeros((5, 2))], "at least 2 fits"),
        ([np.ones((5, 2)), np.ones((6, 2))], "same number of rows"),
        ([np.ones((5, 3)), np.ones((5, 1))], "same number of components"),
        ([np.ones((5, 2)), np.full((5, 2), np.nan)], "NaN"),
        ([np.ones((1, 2)), np.ones((1, 2))], "representations have 1 row"),
    ],
)
def test_bad_input(reps, match):
    with pytest.raises(ValueError, match=match):
        seed_consistency(reps)


# ---------------------------------------------------------------- cross_val_mcc
def test_cross_val_mcc_matches_on_the_training_fold():
    """A test fold whose columns are swapped scores 0 with the training matching.

    The identity transformer returns X. X equals the sources on the training
    rows and the swapped sources on the test rows: the matching found on the
    training fold (identity) pairs each test column with the wrong source,
    while re-matching on the test fold would hide the swap.
    """
    from sklearn.preprocessing import FunctionTransformer

    from skivae.model_selection import cross_val_mcc

    rng = np.random.RandomState(0)
    S = rng.standard_normal((200, 2))
    train, test = np.arange(100), np.arange(100, 200)
    X = S.copy()
    X[test] = S[test][:, ::-1]
    result = cross_val_mcc(
        FunctionTransformer(), X, None, S, cv=[(train, test)], return_estimator=True
    )
    assert result.train_mcc[0] == pytest.approx(1.0)
    assert result.test_mcc_rematched[0] == pytest.approx(1.0)
    assert result.test_mcc[0] < 0.3
    assert_array_equal(result.matching[0][1], [0, 1])
    assert len(result.estimator) == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cross_val_mcc_with_an_estimator_and_parallel_jobs():
    from sklearn.model_selection import KFold

    from skivae import NonlinearICA
    from skivae.datasets import make_nonstationary_sources
    from skivae.metrics import match_components, mean_corr_coef
    from skivae.model_selection import cross_val_mcc

    X, u, S = make_nonstationary_sources(6, 30, 2, n_layers=1, random_state=0)
    ica = NonlinearICA(
        method="gcl", max_iter=2, hidden_layer_sizes=(8,), random_state=0
    )
    cv = KFold(2, shuffle=True, random_state=0)
    result = cross_val_mcc(ica, X, u, S, cv=cv, method="spearman")
    assert result.test_mcc.shape == (2,)
    train, test = next(cv.split(X))
    est = clone(ica).fit(X[train], u[train])
    matching = match_components(S[train], est.transform(X[train]), method="spearman")
    expected = mean_corr_coef(
        S[test], est.transform(X[test]), method="spearman", matching=matching
    )
    assert result.test_mcc[0] == pytest.approx(expected)
    assert (result.test_mcc <= result.test_mcc_rematched + 1e-12).all()
    parallel = cross_val_mcc(ica, X, u, S, cv=cv, method="spearman", n_jobs=2)
    assert_array_equal(parallel.test_mcc, result.test_mcc)


def test_cross_val_mcc_bad_input():
    from sklearn.preprocessing import FunctionTransformer

    from skivae.model_selection import cross_val_mcc

    X = np.random.RandomState(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="method must be"):
        cross_val_mcc(FunctionTransformer(), X, None, X, method="kendall")
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cross_val_mcc(FunctionTransformer(), X, None, X[:10])
    with pytest.raises(ValueError, match="sources is None"):
        cross_val_mcc(FunctionTransformer(), X, None, None)
    with pytest.raises(ValueError, match="needs a transformer.*LinearRegression"):
        from sklearn.linear_model import LinearRegression

        cross_val_mcc(LinearRegression(), X, None, X)
    with pytest.raises(ValueError, match="1 test row.*at least 2"):
        cross_val_mcc(FunctionTransformer(), X, None, X, cv=[(np.arange(19), [19])])


def test_seed_consistency_reads_1d_as_one_component():
    # As mean_corr_coef does (1-D arrays were refused here only).
    s = np.random.RandomState(0).standard_normal(30)
    res = seed_consistency([s, -2 * s, s[::-1]])
    assert res["pairwise"][0, 1] == pytest.approx(1.0)
    assert res["pairwise"][0, 2] < 0.5
    with pytest.raises(ValueError, match="representations must be an array"):
        seed_consistency([1.0, 2.0])


def test_seed_consistency_warns_that_x_is_ignored_with_arrays():
    S = np.random.RandomState(0).standard_normal((20, 2))
    with pytest.warns(UserWarning, match="X is only read with fitted estimators"):
        seed_consistency([S, S], X=S)


def test_cross_val_mcc_gives_an_ar_model_its_training_sequences():
    # With ar_order > 0 the groups are the sequences: each split's model must
    # be the one fitted on the training rows with their groups.
    from sklearn.model_selection import GroupKFold

    from skivae import NonlinearICA
    from skivae.datasets import make_time_sources
    from skivae.model_selection import cross_val_mcc

    X, u, S, groups = make_time_sources(4, 60, 2, n_segments=3, random_state=0)
    # Interleave the sequences (each keeps its time order): read as one
    # sequence, almost every row would get another sequence's row as its past.
    step = np.concatenate([np.arange(60)] * 4)
    order = np.lexsort((groups, step))
    X, u, S, groups = X[order], u[order], S[order], groups[order]
    est = NonlinearICA(ar_order=1, max_iter=1, n_init=1, random_state=0)
    cv = GroupKFold(2)
    res = cross_val_mcc(est, X, u, S, cv=cv, groups=groups, return_estimator=True)
    for (train, _), fitted in zip(cv.split(X, u, groups), res.estimator):
        ref = clone(est).fit(X[train], u[train], groups=groups[train])
        assert_allclose(fitted.transform(X), ref.transform(X))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cross_val_mcc(est, X, u, S, cv=cv, groups=groups[:-1])
