import doctest
import warnings

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import FunctionTransformer

import skivae.metrics
from skivae import IdentifiableVAE
from skivae.datasets import make_nonstationary_sources
from skivae.metrics import (
    make_mcc_scorer,
    match_components,
    mcc_scorer,
    mean_corr_coef,
    weak_mean_corr_coef,
)

METRICS = [mean_corr_coef, weak_mean_corr_coef]


def _sources(n_samples=2000, n_sources=4, seed=0):
    return np.random.RandomState(seed).laplace(size=(n_samples, n_sources))


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_perfect_recovery_up_to_permutation_sign_scale(method):
    S = _sources()
    Z = S[:, [2, 0, 3, 1]] * np.array([-3.0, 0.5, 2.0, -0.1]) + 7.0
    score = mean_corr_coef(S, Z, method=method)
    assert isinstance(score, float)
    assert score == pytest.approx(1.0, abs=1e-12)


def test_independent_noise_gives_low_mcc():
    rng = np.random.RandomState(0)
    S, Z = rng.standard_normal((5000, 5)), rng.standard_normal((5000, 5))
    for method in ["pearson", "spearman"]:
        assert mean_corr_coef(S, Z, method=method) < 0.1
        assert weak_mean_corr_coef(S, Z, method=method) < 0.1


def test_partial_recovery_value():
    # Two sources recovered exactly, two replaced by independent noise.
    rng = np.random.RandomState(0)
    S = rng.standard_normal((20000, 4))
    Z = np.column_stack([S[:, 1], rng.standard_normal((20000, 2)), -S[:, 0]])
    assert mean_corr_coef(S, Z) == pytest.approx(0.5, abs=0.02)


def test_spearman_invariant_to_monotone_maps_pearson_is_not():
    S = _sources()
    Z = np.column_stack([np.exp(S[:, 1]), S[:, 0] ** 3, -np.tanh(S[:, 3]), S[:, 2]])
    assert mean_corr_coef(S, Z, method="spearman") == pytest.approx(1.0, abs=1e-12)
    assert mean_corr_coef(S, Z, method="pearson") < 0.9


def test_hungarian_matching_beats_greedy():
    # |corr| is about [[0.8, 0.6], [0.6, 0.0]]: taking the largest entry first
    # (0.8 + 0.0) loses to the optimal one-to-one matching (0.6 + 0.6).
    rng = np.random.RandomState(0)
    a, b, c = rng.standard_normal((3, 50000))
    S = np.column_stack([a, b])
    Z = np.column_stack([0.8 * a + 0.6 * b, 0.6 * a + 0.8 * c])
    true_idx, pred_idx = match_components(S, Z)
    assert_array_equal(true_idx, [0, 1])
    assert_array_equal(pred_idx, [1, 0])
    assert mean_corr_coef(S, Z) == pytest.approx(0.6, abs=0.01)


def test_constant_column_counts_as_zero():
    S = _sources(n_sources=2)
    Z = np.column_stack([S[:, 0], np.full(len(S), 3.0)])
    with np.errstate(all="raise"):
        assert mean_corr_coef(S, Z) == pytest.approx(0.5, abs=1e-12)
        assert weak_mean_corr_coef(S, Z) == pytest.approx(0.5, abs=1e-12)


def test_columns_with_a_large_offset_are_not_constant():
    # Variation of 1e-11 of a column's magnitude is data, not rounding error.
    S = np.random.RandomState(0).laplace(size=(1000, 3))
    for Z in (S + 1e11, 1.0 + 1e-9 * S):
        assert mean_corr_coef(S, Z) == pytest.approx(1.0, abs=1e-4)
        assert mean_corr_coef(S, Z) == pytest.approx(
            np.mean([np.corrcoef(S[:, j], Z[:, j])[0, 1] for j in range(3)]),
            abs=1e-8,
        )
    # A constant column of any size and magnitude still counts as zero.
    for n, value in [(7, 0.1), (100_001, 1e11), (3000, -3.3e-200)]:
        Z = np.column_stack([np.linspace(0, 1, n), np.full(n, value)])
        assert mean_corr_coef(Z[:, [0, 0]], Z) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("k_pred", [2, 6])
def test_different_numbers_of_columns(k_pred):
    rng = np.random.RandomState(0)
    S = rng.standard_normal((5000, 4))
    Z = np.column_stack([S[:, ::-1], rng.standard_normal((5000, 2))])[:, :k_pred]
    # min(4, k_pred) pairs are matched; extra estimated columns are ignored.
    assert mean_corr_coef(S, Z) == pytest.approx(1.0, abs=1e-12)
    true_idx, pred_idx = match_components(S, Z)
    assert len(true_idx) == len(pred_idx) == min(4, k_pred)
    assert weak_mean_corr_coef(S, Z) == pytest.approx(1.0, abs=1e-10)


def test_one_dimensional_inputs():
    S = _sources(n_sources=1)[:, 0]
    assert mean_corr_coef(S, -S) == pytest.approx(1.0)
    assert weak_mean_corr_coef(S, 2 * S + 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sources_pred must be an array.*scalar"):
        mean_corr_coef(S, 3.0)  # was scikit-learn's TypeError


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_weak_mcc_removes_invertible_linear_map(method):
    S = _sources(n_sources=5)
    A = np.random.RandomState(1).uniform(-1, 1, size=(5, 5))
    assert abs(np.linalg.det(A)) > 1e-3
    Z = S @ A + 4.0
    assert weak_mean_corr_coef(S, Z, method=method) == pytest.approx(1.0, abs=1e-6)
    assert mean_corr_coef(S, Z, method=method) < 0.8


def test_weak_mcc_is_mean_canonical_correlation():
    rng = np.random.RandomState(0)
    S = rng.standard_normal((3000, 3))
    Z = S @ rng.standard_normal((3, 3)) + rng.standard_normal((3000, 3))
    S_c, Z_c = S - S.mean(0), Z - Z.mean(0)
    # Canonical correlations: sqrt of the eigenvalues of Css^-1 Csz Czz^-1 Czs.
    M = np.linalg.solve(S_c.T @ S_c, S_c.T @ Z_c) @ np.linalg.solve(
        Z_c.T @ Z_c, Z_c.T @ S_c
    )
    rho = np.sqrt(np.sort(np.linalg.eigvals(M).real))
    assert weak_mean_corr_coef(S, Z) == pytest.approx(rho.mean(), abs=1e-10)
    # Weak MCC is invariant to invertible linear maps of either argument.
    B = rng.standard_normal((3, 3))
    assert weak_mean_corr_coef(S, Z @ B) == pytest.approx(rho.mean(), abs=1e-10)
    assert weak_mean_corr_coef(S @ B, Z) == pytest.approx(rho.mean(), abs=1e-10)


def test_weak_mcc_not_fooled_by_rank_deficient_estimate():
    S = _sources(n_sources=3)
    Z = np.column_stack([S[:, 0], S[:, 0], 2 * S[:, 0]])  # rank 1
    assert weak_mean_corr_coef(S, Z) == pytest.approx(1 / 3, abs=1e-10)


def test_matching_fitted_on_one_split_applied_to_another():
    rng = np.random.RandomState(0)
    S = rng.standard_normal((4000, 3))
    Z = -S[:, [1, 2, 0]] + 0.2 * rng.standard_normal((4000, 3))
    train, test = slice(0, 2000), slice(2000, None)
    matching = match_components(S[train], Z[train])
    assert_array_equal(matching[0], [0, 1, 2])
    assert_array_equal(matching[1], [2, 0, 1])
    on_test = mean_corr_coef(S[test], Z[test], matching=matching)
    assert isinstance(on_test, float)
    assert on_test == pytest.approx(mean_corr_coef(S[test], Z[test]))
    assert on_test > 0.95
    # A wrong matching is applied as given, not re-optimized.
    wrong = (np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert mean_corr_coef(S[test], Z[test], matching=wrong) < 0.1


@pytest.mark.parametrize(
    "matching",
    [
        (np.array([0, 1]), np.array([0])),
        (np.array([0, 5]), np.array([0, 1])),
        (np.array([0, 0]), np.array([0, 1])),
        (np.array([0.0, 1.0]), np.array([0, 1])),
        "bad",
    ],
)
def test_bad_matching_raises(matching):
    S = _sources(n_sources=2)
    with pytest.raises(ValueError, match="matching"):
        mean_corr_coef(S, S, matching=matching)


@pytest.mark.parametrize("metric", METRICS + [match_components])
def test_mismatched_lengths_raise(metric):
    with pytest.raises(ValueError, match="sources_true and sources_pred"):
        metric(_sources(100), _sources(99))


@pytest.mark.parametrize("metric", METRICS + [match_components])
@pytest.mark.parametrize("name", ["sources_true", "sources_pred"])
def test_nan_raises(metric, name):
    S = _sources(100)
    bad = S.copy()
    bad[3, 1] = np.nan
    args = {"sources_true": S, "sources_pred": S, name: bad}
    with pytest.raises(ValueError, match=name):
        metric(args["sources_true"], args["sources_pred"])


@pytest.mark.parametrize("metric", METRICS + [match_components])
def test_bad_method_raises(metric):
    with pytest.raises(ValueError, match="method"):
        metric(_sources(100), _sources(100), method="kendall")


def test_too_few_samples_raises():
    with pytest.raises(ValueError, match="sources_true"):
        mean_corr_coef(np.ones((1, 2)), np.ones((1, 2)))


def test_inputs_not_modified_and_lists_accepted():
    S = _sources(200, 3)
    Z = S @ np.random.RandomState(0).standard_normal((3, 3))
    S0, Z0 = S.copy(), Z.copy()
    for metric in METRICS:
        for method in ["pearson", "spearman"]:
            metric(S, Z, method=method)
    assert_array_equal(S, S0)
    assert_array_equal(Z, Z0)
    assert mean_corr_coef(S.tolist(), Z.tolist()) == mean_corr_coef(S, Z)


def test_values_in_unit_interval_weak_above_strong_for_independent_sources():
    rng = np.random.RandomState(0)
    for _ in range(5):
        S = rng.standard_normal((500, 3))
        Z = np.tanh(S @ rng.standard_normal((3, 3))) + 0.3 * rng.standard_normal(
            (500, 3)
        )
        strong, weak = mean_corr_coef(S, Z), weak_mean_corr_coef(S, Z)
        assert 0.0 <= strong <= weak + 1e-12 <= 1.0 + 1e-12


def test_docstring_examples():
    result = doctest.testmod(skivae.metrics)
    assert result.attempted > 0 and result.failed == 0


def test_match_components_returns_integer_arrays():
    true_idx, pred_idx = match_components(_sources(100), _sources(100, seed=1))
    for idx in (true_idx, pred_idx):
        assert idx.dtype.kind == "i"
        assert_allclose(np.sort(idx), np.arange(4))


# ------------------------------------------------------------------ scorers
_ignore_convergence = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning"
)


def _tiny_ivae_fit():
    X, u, S = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    est = IdentifiableVAE(max_iter=2, hidden_layer_sizes=(8,), random_state=0)
    return est.fit(X, u), X, u, S


def _linear_mixer(A):
    """A fitted transformer returning ``X @ A``."""
    return FunctionTransformer(lambda X: X @ A).fit(np.zeros((2, A.shape[0])))


@_ignore_convergence
def test_scorer_called_directly_is_mcc_of_transform():
    est, X, _, S = _tiny_ivae_fit()
    expected = mean_corr_coef(S, est.transform(X))
    for scorer in (make_mcc_scorer(), mcc_scorer):
        score = scorer(est, X, sources=S)
        assert isinstance(score, float)
        assert score == pytest.approx(expected, abs=1e-12)
    # y is accepted (and ignored), as scikit-learn passes it positionally.
    assert make_mcc_scorer()(est, X, np.zeros(len(X)), sources=S) == pytest.approx(
        expected, abs=1e-12
    )


def test_weak_scorer_uses_weak_mcc():
    S = _sources(n_sources=3)
    A = np.random.RandomState(1).uniform(-1, 1, size=(3, 3))
    mixer = _linear_mixer(A)
    weak = make_mcc_scorer(weak=True)(mixer, S, sources=S)
    strong = make_mcc_scorer()(mixer, S, sources=S)
    assert weak == pytest.approx(weak_mean_corr_coef(S, S @ A), abs=1e-12)
    assert weak == pytest.approx(1.0, abs=1e-6)
    assert strong == pytest.approx(mean_corr_coef(S, S @ A), abs=1e-12)
    assert strong < 0.9


def test_spearman_scorer_uses_rank_correlation():
    S = _sources(n_sources=2)
    exp = FunctionTransformer(np.exp).fit(S)
    assert make_mcc_scorer(method="spearman")(exp, S, sources=S) == pytest.approx(1.0)
    assert make_mcc_scorer(method="pearson")(exp, S, sources=S) < 0.9


def test_scorer_without_sources_raises():
    mixer = _linear_mixer(np.eye(2))
    S = _sources(n_sources=2)
    with pytest.raises(ValueError, match="metadata routing"):
        mcc_scorer(mixer, S)
    with pytest.raises(ValueError, match="metadata routing"):
        make_mcc_scorer(weak=True)(mixer, S, None)


@pytest.mark.parametrize("method", ["kendall", "PEARSON", None])
def test_scorer_bad_method_raises(method):
    with pytest.raises(ValueError, match="method"):
        make_mcc_scorer(method=method)


@pytest.mark.parametrize("weak", ["no", 0, None])
def test_scorer_weak_must_be_a_bool(weak):
    with pytest.raises(ValueError, match="weak must be True or False"):
        make_mcc_scorer(weak=weak)


def test_scorer_needs_a_transformer():
    from sklearn.linear_model import LinearRegression

    S = _sources(n_sources=2)
    reg = LinearRegression().fit(S, S[:, 0])
    with pytest.raises(ValueError, match="LinearRegression does not have"):
        mcc_scorer(reg, S, None, sources=S)


def test_scorer_repr_and_routing_request():
    scorer = make_mcc_scorer(method="spearman", weak=True)
    assert repr(scorer) == "make_mcc_scorer(method='spearman', weak=True)"
    request = scorer.get_metadata_routing()
    assert request.score.requests == {"sources": True}


@_ignore_convergence
def test_scorer_in_grid_search_with_metadata_routing():
    X, u, S = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    est = IdentifiableVAE(max_iter=2, hidden_layer_sizes=(8,), random_state=0)
    cv = KFold(2, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            est, {"prior": ["gaussian", "laplace"]}, scoring=mcc_scorer, cv=cv
        ).fit(X, u, sources=S)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))
    assert 0 <= search.best_score_ <= 1
    # Each fold is scored on its own rows' sources.
    for i, (train, test) in enumerate(cv.split(X)):
        fold = clone(est).set_params(prior="gaussian").fit(X[train], u[train])
        expected = mean_corr_coef(S[test], fold.transform(X[test]))
        got = search.cv_results_[f"split{i}_test_score"][0]
        assert got == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("scale", [1e155, 1e-200])
def test_mcc_at_extreme_scales(scale):
    # Sums of squares of raw columns overflow (1e155) or underflow (1e-200);
    # the correlation is scale-free and must not fall to 0.
    rng = np.random.RandomState(0)
    S = rng.laplace(size=(200, 3))
    Z = S[:, [2, 0, 1]] + 0.1 * rng.standard_normal((200, 3))
    expected = mean_corr_coef(S, Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings either
        assert mean_corr_coef(scale * S, scale * Z) == pytest.approx(expected)
        assert mean_corr_coef(S, scale * Z) == pytest.approx(expected)
