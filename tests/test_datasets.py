import doctest

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import kurtosis

import skivae.datasets
from skivae.datasets import (
    _apply_mlp,
    _condition_numbers,
    _condition_threshold,
    _draw_mixing_weights,
    _random_smooth_log_std,
    _spaced_coefficients,
    _unit_column_matrices,
    _unit_variance_noise,
    make_continuous_aux_sources,
    make_nonstationary_sources,
    make_spatial_sources,
    make_time_sources,
)

SMALL = {"n_segments": 4, "n_per_segment": 50, "n_sources": 3}


def _inverse_activation(y, activation):
    """Invert xtanh (by bisection: it is strictly increasing) or leaky ReLU."""
    if activation == "leaky_relu":
        return np.where(y > 0, y, y / 0.1)
    lo = np.full_like(y, -(np.abs(y).max() + 1) / 0.1)
    hi = -lo
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        above = np.tanh(mid) + 0.1 * mid > y
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _invert_mlp(X, weights, activation):
    """Recover S from X = f(S) for square, invertible weights."""
    S = X
    for layer, W in enumerate(reversed(weights)):
        if layer > 0:
            S = _inverse_activation(S, activation)
        S = np.linalg.solve(W.T, S.T).T
    return S


# --------------------------------------------------------------------------- #
# make_nonstationary_sources
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n_features", [None, 3, 7])
def test_nonstationary_shapes_and_dtypes(n_features):
    X, u, S = make_nonstationary_sources(**SMALL, n_features=n_features, random_state=0)
    n_features = 3 if n_features is None else n_features
    assert X.shape == (200, n_features) and X.dtype == np.float64
    assert S.shape == (200, 3) and S.dtype == np.float64
    assert u.shape == (200,) and u.dtype == np.int64
    assert_array_equal(u, np.repeat(np.arange(4), 50))
    assert np.all(np.isfinite(X))


def test_nonstationary_determinism():
    a = make_nonstationary_sources(**SMALL, random_state=3)
    b = make_nonstationary_sources(**SMALL, random_state=3)
    c = make_nonstationary_sources(**SMALL, random_state=4)
    d = make_nonstationary_sources(**SMALL, random_state=np.random.RandomState(3))
    for x, y, z in zip(a, b, d):
        assert_array_equal(x, y)
        assert_array_equal(x, z)
    assert not np.allclose(a[0], c[0])
    assert not np.allclose(a[2], c[2])


def test_nonstationary_segment_scales_in_range():
    lo, hi = 1.0, 2.5
    _, u, S = make_nonstationary_sources(
        n_segments=12,
        n_per_segment=4000,
        n_sources=3,
        scale_range=(lo, hi),
        random_state=0,
    )
    stds = np.array([S[u == m].std(axis=0) for m in range(12)])
    assert np.all(stds > 0.95 * lo) and np.all(stds < 1.05 * hi)
    # The scales are spread over the range, not stuck at one value.
    assert stds.max() / stds.min() > 1.8
    # Zero-mean sources in every segment.
    means = np.array([S[u == m].mean(axis=0) for m in range(12)])
    assert np.all(np.abs(means) < 0.1)


def test_nonstationary_scale_type_var_draws_variances():
    # Same seed: the same uniform draws are standard deviations under "std" and
    # variances under "var"; the mixing is the same function.
    kw = dict(n_segments=6, n_per_segment=20000, n_sources=2, random_state=0)
    X_s, u, S_std = make_nonstationary_sources(**kw, n_layers=1, scale_type="std")
    X_v, _, S_var = make_nonstationary_sources(**kw, n_layers=1, scale_type="var")
    std_s = np.array([S_std[u == m].std(axis=0) for m in range(6)])
    std_v = np.array([S_var[u == m].std(axis=0) for m in range(6)])
    assert_allclose(std_v**2, std_s, rtol=0.05)  # var convention: draw = variance
    assert np.all((std_v**2 > 0.45) & (std_v**2 < 3.1))
    W_s = np.linalg.lstsq(S_std, X_s, rcond=None)[0]
    W_v = np.linalg.lstsq(S_var, X_v, rcond=None)[0]
    assert_allclose(W_s, W_v, atol=1e-8)


def test_continuous_scale_type_var_halves_log_std():
    kw = dict(n_samples=4000, n_sources=2, n_layers=1, random_state=1)
    _, u_s, S_s = make_continuous_aux_sources(**kw, scale_type="std")
    _, u_v, S_v = make_continuous_aux_sources(**kw, scale_type="var")
    assert_allclose(u_s, u_v)
    log_std_s = np.log(np.abs(S_s))  # log|noise| + log std
    log_std_v = np.log(np.abs(S_v))  # log|noise| + log std / 2
    # log std = 2 * (log_std_s - log_std_v); it spans [log 0.5, log 3]
    log_std = 2 * (log_std_s - log_std_v)
    assert log_std.min() > np.log(0.5) - 1e-9 and log_std.max() < np.log(3) + 1e-9
    assert log_std.max() - log_std.min() > 0.9 * (np.log(3) - np.log(0.5))


@pytest.mark.parametrize("source, excess_kurtosis", [("gaussian", 0.0), ("laplace", 3)])
def test_nonstationary_source_distribution(source, excess_kurtosis):
    _, _, S = make_nonstationary_sources(
        n_segments=2,
        n_per_segment=20000,
        n_sources=2,
        scale_range=(1.0, 1.0),
        source=source,
        random_state=0,
    )
    assert_allclose(S.std(axis=0), 1.0, atol=0.02)  # unit variance
    assert_allclose(kurtosis(S, axis=0), excess_kurtosis, atol=0.4)


def test_one_layer_is_linear_with_unit_columns():
    X, _, S = make_nonstationary_sources(
        **SMALL, n_features=5, n_layers=1, activation="leaky_relu", random_state=0
    )
    W, *_ = np.linalg.lstsq(S, X, rcond=None)
    assert_allclose(S @ W, X, atol=1e-10)
    assert_allclose(np.linalg.norm(W, axis=0), 1.0)
    assert np.linalg.matrix_rank(W) == 3


@pytest.mark.parametrize("activation", ["xtanh", "leaky_relu"])
def test_several_layers_are_nonlinear(activation):
    X, _, S = make_nonstationary_sources(
        **SMALL, n_layers=3, activation=activation, random_state=0
    )
    design = np.column_stack([S, np.ones(len(S))])
    coef, *_ = np.linalg.lstsq(design, X, rcond=None)
    residual = X - design @ coef
    assert np.linalg.norm(residual) > 0.01 * np.linalg.norm(X - X.mean(axis=0))


@pytest.mark.parametrize("activation", ["xtanh", "leaky_relu"])
@pytest.mark.parametrize("reuse_weights", [True, False])
def test_generator_matches_helpers_and_is_invertible(activation, reuse_weights):
    X, _, S = make_nonstationary_sources(
        **SMALL,
        n_layers=3,
        activation=activation,
        reuse_weights=reuse_weights,
        random_state=7,
    )
    # The mixing is drawn first from the random state.
    rng = np.random.RandomState(7)
    weights = _draw_mixing_weights(3, 3, 3, reuse_weights, rng)
    assert_allclose(_apply_mlp(S, weights, activation), X, rtol=1e-12, atol=1e-12)
    if reuse_weights:
        assert all(W is weights[0] for W in weights)
    else:
        assert not np.allclose(weights[0], weights[1])
        assert not np.allclose(weights[1], weights[2])
    # Square case: the MLP is invertible and S is recovered from X exactly.
    assert_allclose(_invert_mlp(X, weights, activation), S, atol=1e-8)


def test_mixing_does_not_depend_on_sample_size():
    kw = {"n_sources": 3, "n_layers": 1, "random_state": 5}
    X1, _, S1 = make_nonstationary_sources(n_segments=3, n_per_segment=30, **kw)
    X2, _, S2 = make_nonstationary_sources(n_segments=8, n_per_segment=70, **kw)
    W1, *_ = np.linalg.lstsq(S1, X1, rcond=None)
    W2, *_ = np.linalg.lstsq(S2, X2, rcond=None)
    assert_allclose(W1, W2, atol=1e-10)


@pytest.mark.parametrize("reuse_weights", [True, False])
def test_undercomplete_weights(reuse_weights):
    weights = _draw_mixing_weights(2, 4, 4, reuse_weights, np.random.RandomState(0))
    assert [W.shape for W in weights] == [(2, 4)] + [(4, 4)] * 3
    assert (weights[1] is weights[3]) == reuse_weights
    for W in weights:
        assert np.linalg.matrix_rank(W) == W.shape[0]


def test_condition_number_filter():
    rng = np.random.RandomState(0)
    for n_rows, n_cols, reuse in [(3, 3, False), (5, 5, False), (2, 4, False)]:
        threshold = _condition_threshold(n_rows, n_cols)
        for _ in range(20):
            for W in _draw_mixing_weights(n_rows, n_cols, 3, reuse, rng):
                assert_allclose(np.linalg.norm(W, axis=0), 1.0)
                assert np.all(np.abs(W) <= 1.0)
                assert _condition_numbers(W) <= _condition_threshold(*W.shape)
        # The threshold is the 25th percentile of the unfiltered distribution.
        raw = _unit_column_matrices(4000, n_rows, n_cols, np.random.RandomState(1))
        assert 0.2 < np.mean(_condition_numbers(raw) <= threshold) < 0.3


def test_condition_threshold_is_deterministic():
    value = _condition_threshold(4, 4)
    _condition_threshold.cache_clear()
    assert _condition_threshold(4, 4) == value
    assert _condition_threshold(4, 6) != value


def test_condition_threshold_draws_shrink_only_for_wide_shapes(monkeypatch):
    from skivae import datasets

    # Every shape the paper and the benchmarks use keeps its 5000 draws (and so
    # its data); a 400 x 400 mixing uses the minimum.
    for shape in [(5, 5), (10, 40), (20, 40), (40, 40), (50, 100)]:
        assert datasets._n_threshold_draws(*shape) == 5000
    assert 100 < datasets._n_threshold_draws(100, 100) < 5000
    assert datasets._n_threshold_draws(400, 400) == 100
    # With fewer draws the estimate is still the 25th percentile.
    monkeypatch.setattr(datasets, "_THRESHOLD_WORK", 50)
    assert datasets._n_threshold_draws(6, 6) == 5000 * 50 // 216
    _condition_threshold.cache_clear()
    try:
        threshold = _condition_threshold(6, 6)
        raw = _unit_column_matrices(4000, 6, 6, np.random.RandomState(1))
        assert 0.2 < np.mean(_condition_numbers(raw) <= threshold) < 0.3
    finally:
        _condition_threshold.cache_clear()


def test_binary_observations():
    kw = {"n_segments": 4, "n_per_segment": 2000, "n_sources": 3, "random_state": 0}
    X_clean, u, S = make_nonstationary_sources(**kw)
    X_bin, u_bin, S_bin = make_nonstationary_sources(**kw, binary=True)
    assert_array_equal(S_bin, S)
    assert_array_equal(u_bin, u)
    assert X_bin.dtype == np.float64
    assert set(np.unique(X_bin)) == {0.0, 1.0}
    # Bernoulli with p = sigmoid(f(S)).
    edges = np.quantile(X_clean, [0.0, 0.05, 0.45, 0.55, 0.95, 1.0])
    for lo, hi in [edges[:2], edges[2:4], edges[4:]]:
        mask = (X_clean >= lo) & (X_clean <= hi)
        expected = np.mean(1.0 / (1.0 + np.exp(-X_clean[mask])))
        assert abs(X_bin[mask].mean() - expected) < 0.05


def test_noise_has_given_std():
    kw = {"n_segments": 4, "n_per_segment": 2000, "n_sources": 3, "random_state": 0}
    X_clean, _, S = make_nonstationary_sources(**kw)
    X_noisy, _, S_noisy = make_nonstationary_sources(**kw, noise=0.3)
    assert_array_equal(S_noisy, S)
    diff = X_noisy - X_clean
    assert_allclose(diff.std(), 0.3, rtol=0.03)
    assert abs(diff.mean()) < 0.01


NONSTATIONARY_BAD = [
    ({"n_segments": 0}, "n_segments"),
    ({"n_segments": 2.5}, "n_segments"),
    ({"n_per_segment": 0}, "n_per_segment"),
    ({"n_sources": 0}, "n_sources"),
    ({"n_sources": True}, "n_sources"),
    ({"n_features": 2}, "n_features"),
    ({"n_layers": 0}, "n_layers"),
    ({"activation": "relu"}, "activation"),
    ({"source": "uniform"}, "source"),
    ({"scale_range": (0.0, 1.0)}, "scale_range"),
    ({"scale_range": (2.0, 1.0)}, "scale_range"),
    ({"scale_range": 1.0}, "scale_range"),
    ({"scale_range": (1.0, np.inf)}, "scale_range"),
    ({"scale_type": "variance"}, "scale_type"),
    ({"reuse_weights": "yes"}, "reuse_weights"),
    ({"noise": -0.1}, "noise"),
    ({"noise": np.nan}, "noise"),
    ({"binary": 1}, "binary"),
    ({"mean_range": 1.0}, "mean_range"),
    ({"mean_range": (2.0, -2.0)}, "mean_range"),
    ({"mean_range": (-np.inf, 1.0)}, "mean_range"),
    ({"mean_range": ("a", "b")}, "mean_range"),
    # pairs of something else than two real numbers (were read as numbers)
    ({"scale_range": ("1", "2")}, "scale_range must be a pair"),
    ({"scale_range": (True, 2)}, "scale_range must be a pair"),
    ({"scale_range": {1, 2}}, "scale_range must be a pair"),
    ({"scale_range": {1: 2, 3: 4}}, "scale_range must be a pair"),
    ({"mean_range": ("0", "1")}, "mean_range must be None or a pair"),
    ({"mean_range": (-1e308, 1e308)}, "difference is finite"),
]


@pytest.mark.parametrize("params, name", NONSTATIONARY_BAD)
def test_nonstationary_bad_arguments(params, name):
    with pytest.raises(ValueError, match=name):
        make_nonstationary_sources(**{**SMALL, **params})


# --------------------------------------------------------------------------- #
# make_continuous_aux_sources
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n_aux, n_features", [(1, None), (2, 5)])
def test_continuous_shapes_and_dtypes(n_aux, n_features):
    X, u, S = make_continuous_aux_sources(
        n_samples=300, n_sources=3, n_features=n_features, n_aux=n_aux, random_state=0
    )
    assert X.shape == (300, n_features or 3) and X.dtype == np.float64
    assert S.shape == (300, 3) and S.dtype == np.float64
    assert u.shape == (300, n_aux) and u.dtype == np.float64
    assert np.all((u >= 0) & (u <= 1))


def test_continuous_determinism():
    a = make_continuous_aux_sources(n_samples=200, n_sources=2, random_state=1)
    b = make_continuous_aux_sources(n_samples=200, n_sources=2, random_state=1)
    c = make_continuous_aux_sources(n_samples=200, n_sources=2, random_state=2)
    for x, y in zip(a, b):
        assert_array_equal(x, y)
    for x, z in zip(a, c):
        assert not np.allclose(x, z)


def test_continuous_modulation_is_strong_and_differs_between_components():
    _, u, S = make_continuous_aux_sources(
        n_samples=40000, n_sources=4, n_layers=1, random_state=0
    )
    bins = np.minimum((u[:, 0] * 10).astype(int), 9)
    profiles = np.log([S[bins == b].std(axis=0) for b in range(10)])  # (10, 4)
    # Every component's std is modulated by u over (most of) [0.5, 3].
    spread = np.exp(profiles.max(axis=0) - profiles.min(axis=0))
    assert np.all(spread > 2.0)
    assert np.all(np.exp(profiles) > 0.45) and np.all(np.exp(profiles) < 3.1)
    # The modulation functions differ between components.
    corr = np.corrcoef(profiles.T)[np.triu_indices(4, k=1)]
    assert np.all(corr < 0.99)


def test_continuous_linear_mixing_and_noise():
    kw = {
        "n_samples": 5000,
        "n_sources": 2,
        "n_features": 3,
        "n_layers": 1,
        "random_state": 0,
    }
    X, _, S = make_continuous_aux_sources(**kw)
    W, *_ = np.linalg.lstsq(S, X, rcond=None)
    assert_allclose(S @ W, X, atol=1e-10)
    X_noisy, _, _ = make_continuous_aux_sources(**kw, noise=0.5)
    assert_allclose((X_noisy - X).std(), 0.5, rtol=0.05)


CONTINUOUS_BAD = [
    ({"n_samples": 0}, "n_samples"),
    ({"n_sources": 0}, "n_sources"),
    ({"n_features": 1}, "n_features"),
    ({"n_aux": 0}, "n_aux"),
    ({"n_layers": 0}, "n_layers"),
    ({"activation": "sigmoid"}, "activation"),
    ({"source": "student"}, "source"),
    ({"reuse_weights": None}, "reuse_weights"),
    ({"noise": -1}, "noise"),
    ({"aux_map": "mlp"}, "aux_map"),
    ({"aux_map": None}, "aux_map"),
]


@pytest.mark.parametrize("params, name", CONTINUOUS_BAD)
def test_continuous_bad_arguments(params, name):
    with pytest.raises(ValueError, match=name):
        make_continuous_aux_sources(**{"n_samples": 50, "n_sources": 2, **params})


def test_docstring_examples():
    result = doctest.testmod(skivae.datasets, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("make", ["segments", "continuous"])
def test_orthogonal_mixing(make):
    from skivae.datasets import _draw_mixing_weights

    rng = np.random.RandomState(0)
    for n_s, n_f in [(3, 3), (3, 6)]:
        weights = _draw_mixing_weights(n_s, n_f, 3, False, rng, "orthogonal")
        assert weights[0].shape == (n_s, n_f)
        for W in weights:
            assert_allclose(W @ W.T, np.eye(W.shape[0]), atol=1e-10)
    if make == "segments":
        X, u, S = make_nonstationary_sources(
            4, 50, 2, n_layers=1, mixing="orthogonal", random_state=0
        )
    else:
        X, u, S = make_continuous_aux_sources(
            200, 2, n_layers=1, mixing="orthogonal", random_state=0
        )
    W = np.linalg.lstsq(S, X, rcond=None)[0]
    assert_allclose(W @ W.T, np.eye(2), atol=1e-8)  # a rotation: norms preserved
    with pytest.raises(ValueError, match="mixing"):
        make_nonstationary_sources(4, 50, 2, mixing="random")


# --------------------------------------------------------------------------- #
# Defaults pinned, modulated means, the maps from a continuous u to the scales
# --------------------------------------------------------------------------- #
def test_default_outputs_are_pinned():
    # Values produced before mean_range and aux_map existed: the defaults of
    # both generators must keep giving the same draws for the same seed.
    X, u, S = make_continuous_aux_sources(
        n_samples=6, n_sources=2, n_features=3, n_aux=2, random_state=0
    )
    assert_allclose(
        X[-1],
        [0.23063994391815434, 0.47186448392281904, -0.07766346999134228],
        rtol=1e-10,
    )
    assert_allclose(S[-1], [0.4368723350471525, -0.8981771629126665], rtol=1e-10)
    assert_allclose(u[-1], [0.11037514116430513, 0.6563295894652734], rtol=1e-12)
    X, u, S = make_nonstationary_sources(
        n_segments=2, n_per_segment=3, n_sources=2, n_features=3, random_state=0
    )
    assert_allclose(
        X[-1],
        [-0.02310386017190746, 0.49552973762244934, 0.48827318452976715],
        rtol=1e-10,
    )
    assert_allclose(S[-1], [0.8455079692791692, -0.46808458449460744], rtol=1e-10)


def test_default_options_are_the_explicit_ones():
    kw = {"n_segments": 4, "n_per_segment": 30, "n_sources": 2, "random_state": 5}
    for a, b in zip(
        make_nonstationary_sources(**kw),
        make_nonstationary_sources(**kw, mean_range=None),
    ):
        assert_array_equal(a, b)
    kw = {"n_samples": 100, "n_sources": 2, "n_aux": 2, "random_state": 5}
    for a, b in zip(
        make_continuous_aux_sources(**kw),
        make_continuous_aux_sources(**kw, aux_map="fourier"),
    ):
        assert_array_equal(a, b)


def test_nonstationary_mean_range_adds_segment_means():
    kw = dict(n_segments=6, n_per_segment=500, n_sources=3, random_state=2)
    X0, u0, S0 = make_nonstationary_sources(**kw, n_layers=1)
    X1, u1, S1 = make_nonstationary_sources(**kw, n_layers=1, mean_range=(-5, 5))
    assert_array_equal(u0, u1)
    assert X1.shape == X0.shape and S1.shape == S0.shape
    shift = S1 - S0
    # One constant per segment and component, drawn in the range ...
    means = shift[:: kw["n_per_segment"]]
    assert_allclose(shift, means[u1], atol=1e-12)
    assert np.all((means >= -5) & (means <= 5))
    # ... spread over it, and differing between segments and components.
    assert means.max() - means.min() > 5
    assert len(np.unique(np.round(means, 8))) == means.size
    # The same mixing (linear here) and the same scales.
    W0 = np.linalg.lstsq(S0, X0, rcond=None)[0]
    W1 = np.linalg.lstsq(S1, X1, rcond=None)[0]
    assert_allclose(W0, W1, atol=1e-8)
    a = make_nonstationary_sources(**kw, mean_range=(1, 2))
    b = make_nonstationary_sources(**kw, mean_range=(1, 2))
    for x, y in zip(a, b):
        assert_array_equal(x, y)


def _continuous_log_std(n_samples, n_aux, aux_map, seed, n_sources=3):
    """The exact log standard deviations given ``u``, from the std/var pair.

    With the same seed the "std" and "var" draws share the noise and the
    function; ``log|S_std| - log|S_var| = log std / 2``.
    """
    kw = dict(
        n_samples=n_samples,
        n_sources=n_sources,
        n_aux=n_aux,
        n_layers=1,
        aux_map=aux_map,
        random_state=seed,
    )
    _, u, S_std = make_continuous_aux_sources(**kw, scale_type="std")
    _, _, S_var = make_continuous_aux_sources(**kw, scale_type="var")
    return u, 2 * (np.log(np.abs(S_std)) - np.log(np.abs(S_var)))


@pytest.mark.parametrize("aux_map", ["periodic", "monotone"])
@pytest.mark.parametrize("n_aux, n_features", [(1, None), (2, 5)])
def test_continuous_aux_map_shapes_range_determinism(aux_map, n_aux, n_features):
    kw = dict(
        n_samples=400,
        n_sources=3,
        n_features=n_features,
        n_aux=n_aux,
        aux_map=aux_map,
    )
    X, u, S = make_continuous_aux_sources(**kw, random_state=0)
    assert X.shape == (400, n_features or 3) and X.dtype == np.float64
    assert S.shape == (400, 3) and u.shape == (400, n_aux)
    assert np.all(np.isfinite(X))
    for a, b in zip((X, u, S), make_continuous_aux_sources(**kw, random_state=0)):
        assert_array_equal(a, b)
    X2, _, S2 = make_continuous_aux_sources(**kw, random_state=1)
    assert not np.allclose(S, S2)
    # The mixing is drawn first: the same seed gives the same u under any map.
    _, u_f, _ = make_continuous_aux_sources(
        **{**kw, "aux_map": "fourier"}, random_state=0
    )
    assert_array_equal(u, u_f)
    # The std spans [0.5, 3] for every component; the components differ.
    _, log_std = _continuous_log_std(400, n_aux, aux_map, 0)
    assert_allclose(log_std.min(axis=0), np.log(0.5), atol=1e-9)
    assert_allclose(log_std.max(axis=0), np.log(3.0), atol=1e-9)
    for i, j in zip(*np.triu_indices(3, k=1)):
        assert np.abs(log_std[:, i] - log_std[:, j]).max() > 0.01
    if n_aux == 2:  # (monotone functions of a 1-D u all correlate strongly)
        corr = np.corrcoef(log_std.T)[np.triu_indices(3, k=1)]
        assert np.all(np.abs(corr) < 0.99)


def _periodic_residual(u, log_std):
    """Largest residual of ``log_std`` regressed on period-1 cosines/sines.

    The basis spans every trigonometric polynomial of period 1 in each
    coordinate with integer frequencies up to 2 per coordinate.
    """
    n_aux = u.shape[1]
    grid = np.stack(np.meshgrid(*[np.arange(-2, 3)] * n_aux), -1).reshape(-1, n_aux)
    angles = 2 * np.pi * u @ grid.T
    basis = np.hstack([np.cos(angles), np.sin(angles)])
    coef = np.linalg.lstsq(basis, log_std, rcond=None)[0]
    return np.abs(basis @ coef - log_std).max()


@pytest.mark.parametrize("n_aux", [1, 2])
def test_continuous_periodic_map_is_periodic_in_u(n_aux):
    u, log_std = _continuous_log_std(3000, n_aux, "periodic", 0)
    # A period-1 trigonometric polynomial of u: exactly in the span ...
    assert _periodic_residual(u, log_std) < 1e-8
    # ... which the default map (non-integer frequencies) is not.
    u_f, log_std_f = _continuous_log_std(3000, n_aux, "fourier", 0)
    assert _periodic_residual(u_f, log_std_f) > 0.05
    if n_aux == 1:
        # Scales at u = 0 and u = 1 agree; the function is not constant.
        order = np.argsort(u[:, 0])
        first, last = log_std[order[0]], log_std[order[-1]]
        assert np.all(np.abs(first - last) < 0.05)
        assert np.all(log_std.max(axis=0) - log_std.min(axis=0) > 1.7)


def _monotone_in_each_coordinate(u, g):
    """Whether ``g`` is monotone (one direction per coordinate) along every axis.

    For some sign pattern ``s``, every pair ``a, b`` with ``s * (u_a - u_b) >= 0``
    coordinate-wise has ``g_a >= g_b``.
    """
    n_aux = u.shape[1]
    du = u[:, None, :] - u[None, :, :]
    dg = g[:, None] - g[None, :]
    for signs in np.array(np.meshgrid(*[[-1, 1]] * n_aux)).reshape(n_aux, -1).T:
        dominated = np.all(signs * du >= 0, axis=-1)
        if np.all(dg[dominated] >= -1e-12):
            return True
    return False


@pytest.mark.parametrize("n_aux", [1, 2])
def test_continuous_monotone_map_is_monotone_in_u(n_aux):
    u, log_std = _continuous_log_std(400, n_aux, "monotone", 0)
    for i in range(log_std.shape[1]):
        assert _monotone_in_each_coordinate(u, log_std[:, i])
    # The default map is not monotone, nor is the periodic one.
    for other in ("fourier", "periodic"):
        u_o, log_std_o = _continuous_log_std(400, n_aux, other, 0)
        assert not any(
            _monotone_in_each_coordinate(u_o, log_std_o[:, i]) for i in range(3)
        )


# --------------------------------------------------------------------------- #
# make_time_sources
# --------------------------------------------------------------------------- #
TIME_SMALL = {"n_sequences": 3, "n_steps": 40, "n_sources": 2, "n_segments": 4}


def _replay_time_draws(
    seed,
    n_sequences,
    n_steps,
    n_sources,
    n_segments,
    kind,
    innovation="gaussian",
    n_features=None,
    n_layers=2,
):
    """The generator's draws, replayed in its order: mixing, coefficients
    (and scales), innovations."""
    rng = np.random.RandomState(seed)
    weights = _draw_mixing_weights(
        n_sources, n_features or n_sources, n_layers, True, rng
    )
    n_blocks = 1 if kind == "stationary_ar" else n_segments
    if kind == "segment_ar":
        coefs = rng.uniform(-0.9, 0.9, size=(n_segments, n_sources))
    else:
        coefs = np.repeat(_spaced_coefficients(n_sources, rng)[None], n_blocks, 0)
    if kind == "ar_variance":
        scales = rng.uniform(0.5, 3.0, size=(n_segments, n_sources))
    else:
        scales = np.ones((n_blocks, n_sources))
    E = _unit_variance_noise(n_sequences * n_steps, n_sources, innovation, rng)
    return weights, coefs, scales, E.reshape(n_sequences, n_steps, n_sources)


def _reference_ar(E, coefs, scales, step_segment):
    """The recursion written out step by step, each sequence from scratch."""
    n_sequences, n_steps, n_sources = E.shape
    S = np.empty_like(E)
    for i in range(n_sequences):
        for j in range(n_sources):
            S[i, 0, j] = scales[step_segment[0], j] * E[i, 0, j]
            for t in range(1, n_steps):
                k = step_segment[t]
                a = coefs[k, j]
                S[i, t, j] = (
                    a * S[i, t - 1, j] + scales[k, j] * np.sqrt(1 - a * a) * E[i, t, j]
                )
    return S.reshape(-1, n_sources)


def _segment_lag1(S, u, groups, k):
    """Lag-1 autocorrelation and variance of each component within segment k,
    from pairs of consecutive steps of the same sequence in that segment."""
    pair = (groups[1:] == groups[:-1]) & (u[1:] == k) & (u[:-1] == k)
    prev, cur = S[:-1][pair], S[1:][pair]
    corr = np.array(
        [np.corrcoef(prev[:, j], cur[:, j])[0, 1] for j in range(S.shape[1])]
    )
    return corr, S[u == k].var(axis=0)


@pytest.mark.parametrize("kind", ["segment_ar", "stationary_ar", "ar_variance"])
@pytest.mark.parametrize("n_features", [None, 5])
def test_time_shapes_dtypes_groups(kind, n_features):
    X, u, S, groups = make_time_sources(
        **TIME_SMALL, kind=kind, n_features=n_features, random_state=0
    )
    n = 3 * 40
    assert X.shape == (n, n_features or 2) and X.dtype == np.float64
    assert S.shape == (n, 2) and S.dtype == np.float64
    assert np.all(np.isfinite(X))
    assert groups.dtype == np.int64
    assert_array_equal(groups, np.repeat(np.arange(3), 40))
    if kind == "stationary_ar":
        assert u is None
        # n_segments is ignored here, so any value (even an invalid one) is.
        other = make_time_sources(
            **{**TIME_SMALL, "n_segments": 0},
            kind=kind,
            n_features=n_features,
            random_state=0,
        )
        assert_array_equal(other[0], X)
    else:
        assert u.dtype == np.int64 and u.shape == (n,)
        assert_array_equal(u, np.tile(np.repeat(np.arange(4), 10), 3))


def test_time_segments_when_steps_not_divisible():
    _, u, _, groups = make_time_sources(
        n_sequences=2, n_steps=10, n_sources=1, n_segments=4, random_state=0
    )
    for g in range(2):
        seq = u[groups == g]
        assert np.all(np.diff(seq) >= 0)  # consecutive segments, in order
        lengths = np.bincount(seq, minlength=4)
        assert lengths.sum() == 10 and set(lengths) == {2, 3}
    # As many segments as steps: one step each; one step: a single draw.
    _, u, _, _ = make_time_sources(2, 5, 1, n_segments=5, random_state=0)
    assert_array_equal(u, np.tile(np.arange(5), 2))
    X, u, S, groups = make_time_sources(4, 1, 2, n_segments=1, random_state=0)
    assert X.shape == (4, 2) and S.shape == (4, 2)
    assert_array_equal(u, np.zeros(4))
    assert_array_equal(groups, np.arange(4))


@pytest.mark.parametrize(
    "kind, innovation",
    [
        ("segment_ar", "gaussian"),
        ("stationary_ar", "laplace"),
        ("ar_variance", "gaussian"),
        ("ar_variance", "laplace"),
    ],
)
def test_time_matches_reference_recursion(kind, innovation):
    # 9 steps in 4 segments (lengths 3, 2, 2, 2): every sequence starts afresh
    # from s_0 = m e_0 and follows the recursion; X is the MLP of S.
    kw = dict(n_sequences=3, n_steps=9, n_sources=3, n_segments=4)
    X, u, S, groups = make_time_sources(
        **kw, kind=kind, innovation=innovation, random_state=11
    )
    weights, coefs, scales, E = _replay_time_draws(
        11, **kw, kind=kind, innovation=innovation
    )
    n_blocks = 1 if kind == "stationary_ar" else 4
    step_segment = (np.arange(9) * n_blocks) // 9
    assert_allclose(S, _reference_ar(E, coefs, scales, step_segment), rtol=1e-10)
    assert_allclose(X, _apply_mlp(S, weights, "leaky_relu"), rtol=1e-12)


def test_time_segment_ar_autocorrelation_and_unit_variance():
    n_segments = 4
    X, u, S, groups = make_time_sources(
        n_sequences=40,
        n_steps=1000,
        n_sources=2,
        n_segments=n_segments,
        random_state=0,
    )
    _, coefs, _, _ = _replay_time_draws(0, 40, 1000, 2, n_segments, "segment_ar")
    assert np.abs(coefs).max() <= 0.9 and np.ptp(coefs) > 0.5
    for k in range(n_segments):
        corr, var = _segment_lag1(S, u, groups, k)
        assert_allclose(corr, coefs[k], atol=0.04)
        assert_allclose(var, 1.0, atol=0.15)  # unit variance in every segment
    # The marginals are N(0, 1): no excess kurtosis, unit variance overall.
    assert_allclose(S.var(axis=0), 1.0, atol=0.05)
    assert np.all(np.abs(kurtosis(S, axis=0)) < 0.2)


def test_time_stationary_ar_distinct_coefficients():
    X, u, S, groups = make_time_sources(
        n_sequences=20,
        n_steps=2000,
        n_sources=4,
        kind="stationary_ar",
        innovation="laplace",
        random_state=1,
    )
    assert u is None
    _, coefs, _, _ = _replay_time_draws(
        1, 20, 2000, 4, 10, "stationary_ar", innovation="laplace"
    )
    a = coefs[0]
    assert np.all(np.abs(a) <= 0.8)
    assert np.diff(np.sort(a)).min() >= 0.2 - 1e-12
    # The estimated lag-1 autocorrelations match and are distinct too.
    same = groups[1:] == groups[:-1]
    est = np.array(
        [np.corrcoef(S[:-1][same, j], S[1:][same, j])[0, 1] for j in range(4)]
    )
    assert_allclose(est, a, atol=0.03)
    assert np.diff(np.sort(est)).min() > 0.1
    assert_allclose(S.var(axis=0), 1.0, atol=0.1)  # unit stationary variance


@pytest.mark.parametrize("n_sources", [1, 2, 5, 8, 9, 12, 40])
def test_spaced_coefficients(n_sources):
    rng = np.random.RandomState(0)
    spacing = min(0.2, 1.6 / n_sources)
    draws = np.array([_spaced_coefficients(n_sources, rng) for _ in range(300)])
    assert np.all(np.abs(draws) <= 0.8)
    if n_sources > 1:
        assert np.diff(np.sort(draws, axis=1), axis=1).min() >= spacing - 1e-12
        # Random values in a random order, not a fixed grid.
        assert len(np.unique(np.argsort(draws, axis=1), axis=0)) > 1
    assert np.ptp(draws[:, 0]) > 0.01
    if n_sources <= 2:  # spread over the whole interval
        assert draws.min() < -0.7 and draws.max() > 0.7


def test_time_ar_variance_segments_differ():
    kw = dict(n_sequences=40, n_steps=800, n_sources=2, n_segments=8)
    _, u, S, groups = make_time_sources(**kw, kind="ar_variance", random_state=2)
    _, coefs, scales, _ = _replay_time_draws(2, **kw, kind="ar_variance")
    # The stationary std of segment k is its innovation multiplier.
    stds = np.array([S[u == k].std(axis=0) for k in range(8)])
    assert_allclose(stds, scales, rtol=0.12)
    assert np.all(stds.max(axis=0) / stds.min(axis=0) > 1.5)
    # The coefficients are fixed over time, the same in every segment.
    for k in range(8):
        corr, _ = _segment_lag1(S, u, groups, k)
        assert_allclose(corr, coefs[0], atol=0.05)


def test_time_sequences_are_independent():
    # Last step of sequence i and first step of sequence i + 1: uncorrelated,
    # while consecutive steps within a sequence are strongly correlated.
    X, _, S, groups = make_time_sources(
        n_sequences=3000,
        n_steps=4,
        n_sources=2,
        kind="segment_ar",
        n_segments=1,
        random_state=3,
    )
    _, coefs, _, _ = _replay_time_draws(3, 3000, 4, 2, 1, "segment_ar")
    S = S.reshape(3000, 4, 2)
    for j in range(2):
        across = np.corrcoef(S[:-1, -1, j], S[1:, 0, j])[0, 1]
        within = np.corrcoef(S[:, 2, j], S[:, 3, j])[0, 1]
        assert abs(across) < 0.08
        assert abs(within - coefs[0, j]) < 0.08
    assert np.abs(coefs).max() > 0.3  # the test can tell the two apart


def test_time_determinism_and_shared_mixing():
    a = make_time_sources(**TIME_SMALL, random_state=3)
    b = make_time_sources(**TIME_SMALL, random_state=3)
    c = make_time_sources(**TIME_SMALL, random_state=4)
    for x, y in zip(a, b):
        assert_array_equal(x, y)
    assert not np.allclose(a[2], c[2])
    # The mixing is drawn first: the same for any size or kind.
    Ws = []
    for kind, n_steps in [
        ("segment_ar", 40),
        ("stationary_ar", 77),
        ("ar_variance", 50),
    ]:
        X, _, S, _ = make_time_sources(
            4, n_steps, 2, kind=kind, n_features=3, n_layers=1, random_state=5
        )
        Ws.append(np.linalg.lstsq(S, X, rcond=None)[0])
    assert_allclose(Ws[0], Ws[1], atol=1e-10)
    assert_allclose(Ws[0], Ws[2], atol=1e-10)


def test_time_noise():
    kw = dict(n_sequences=10, n_steps=500, n_sources=2, random_state=0)
    X0, u0, S0, g0 = make_time_sources(**kw)
    X1, u1, S1, g1 = make_time_sources(**kw, noise=0.3)
    assert_array_equal(S0, S1)
    assert_allclose((X1 - X0).std(), 0.3, rtol=0.05)


TIME_BAD = [
    ({"n_sequences": 0}, "n_sequences"),
    ({"n_steps": 0}, "n_steps"),
    ({"n_steps": 2.0}, "n_steps"),
    ({"n_sources": 0}, "n_sources"),
    ({"n_features": 1}, "n_features"),
    ({"n_layers": 0}, "n_layers"),
    ({"activation": "relu"}, "activation"),
    ({"kind": "ar"}, "kind"),
    ({"kind": None}, "kind"),
    ({"n_segments": 0}, "n_segments"),
    ({"n_segments": 41}, "n_segments"),
    ({"innovation": "student"}, "innovation"),
    ({"mixing": "random"}, "mixing"),
    ({"noise": -1.0}, "noise"),
]


@pytest.mark.parametrize("params, name", TIME_BAD)
def test_time_bad_arguments(params, name):
    with pytest.raises(ValueError, match=name):
        make_time_sources(**{**TIME_SMALL, **params})


def test_time_stationary_ignores_n_segments():
    # More segments than steps is fine when there are no segments.
    X, u, S, _ = make_time_sources(
        2, 5, 2, kind="stationary_ar", n_segments=50, random_state=0
    )
    assert u is None and X.shape == (10, 2)


# --------------------------------------------------------------------------- #
# make_spatial_sources
# --------------------------------------------------------------------------- #
def _replay_spatial(
    seed,
    n_samples,
    n_sources,
    n_features=None,
    n_layers=2,
    n_basis=8,
    std_range=(0.5, 3.0),
):
    rng = np.random.RandomState(seed)
    weights = _draw_mixing_weights(
        n_sources, n_features or n_sources, n_layers, True, rng
    )
    coords = rng.uniform(size=(n_samples, 2))
    log_std = _random_smooth_log_std(
        coords, n_sources, rng, n_basis=n_basis, std_range=std_range
    )
    return weights, coords, log_std, rng


@pytest.mark.parametrize("n_features", [None, 5])
def test_spatial_shapes_dtypes_determinism(n_features):
    kw = dict(n_samples=300, n_sources=3, n_features=n_features)
    X, coords, S = make_spatial_sources(**kw, random_state=0)
    assert X.shape == (300, n_features or 3) and X.dtype == np.float64
    assert coords.shape == (300, 2) and coords.dtype == np.float64
    assert S.shape == (300, 3) and S.dtype == np.float64
    assert np.all((coords >= 0) & (coords <= 1)) and np.all(np.isfinite(X))
    for a, b in zip((X, coords, S), make_spatial_sources(**kw, random_state=0)):
        assert_array_equal(a, b)
    X2, coords2, S2 = make_spatial_sources(**kw, random_state=1)
    assert not np.allclose(coords, coords2) and not np.allclose(S, S2)
    weights, coords_r, _, _ = _replay_spatial(0, 300, 3, n_features)
    assert_array_equal(coords, coords_r)
    assert_allclose(X, _apply_mlp(S, weights, "leaky_relu"), rtol=1e-12)


@pytest.mark.parametrize("source, excess", [("gaussian", 0.0), ("laplace", 3.0)])
def test_spatial_std_follows_smooth_field(source, excess):
    n, std_range = 20000, (0.5, 3.0)
    _, coords, S = make_spatial_sources(
        n_samples=n, n_sources=3, n_layers=1, source=source, random_state=0
    )
    _, _, log_std, _ = _replay_spatial(0, n, 3, n_layers=1)
    std = np.exp(log_std)
    assert_allclose(std.min(axis=0), std_range[0])
    assert_allclose(std.max(axis=0), std_range[1])
    z = S / std  # the unit-variance noise
    assert_allclose(z.std(axis=0), 1.0, atol=0.03)
    assert_allclose(kurtosis(z, axis=0), excess, atol=0.5)
    # The local std of S, on a 6 x 6 grid of cells, tracks the true std.
    cell = np.minimum((coords * 6).astype(int), 5) @ [6, 1]
    local = np.array([S[cell == c].std(axis=0) for c in range(36)])
    true = np.array([std[cell == c].mean(axis=0) for c in range(36)])
    for j in range(3):
        assert np.corrcoef(local[:, j], true[:, j])[0, 1] > 0.9
        assert true[:, j].max() / true[:, j].min() > 2  # a real modulation
    # Smooth, not white noise: neighbours have close log-stds.
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(coords).query(coords, k=2)
    jump = np.abs(log_std - log_std[nearest[:, 1]]).mean(axis=0)
    spread = np.abs(log_std - log_std[np.random.RandomState(0).permutation(n)])
    assert np.all(jump < 0.05 * spread.mean(axis=0))


def test_spatial_same_seed_same_mixing_and_options():
    Ws = []
    for n in (200, 900):
        X, _, S = make_spatial_sources(
            n_samples=n, n_sources=2, n_features=4, n_layers=1, random_state=7
        )
        Ws.append(np.linalg.lstsq(S, X, rcond=None)[0])
    assert_allclose(Ws[0], Ws[1], atol=1e-10)
    # std_range and n_basis reach the field.
    _, _, S = make_spatial_sources(
        n_samples=500,
        n_sources=2,
        n_layers=1,
        std_range=(1.0, 1.0),
        random_state=0,
    )
    _, _, S_ref = make_spatial_sources(
        n_samples=500, n_sources=2, n_layers=1, random_state=0
    )
    _, _, log_std, _ = _replay_spatial(0, 500, 2, n_layers=1)
    assert_allclose(S, S_ref / np.exp(log_std), rtol=1e-10)
    _, _, log_std_2, rng = _replay_spatial(0, 500, 2, n_layers=1, n_basis=2)
    _, _, S2 = make_spatial_sources(
        n_samples=500, n_sources=2, n_layers=1, n_basis=2, random_state=0
    )
    assert not np.allclose(log_std, log_std_2)
    z = _unit_variance_noise(500, 2, "gaussian", rng)
    assert_allclose(S2, np.exp(log_std_2) * z, rtol=1e-10)


SPATIAL_BAD = [
    ({"n_samples": 0}, "n_samples"),
    ({"n_sources": 0}, "n_sources"),
    ({"n_features": 1}, "n_features"),
    ({"n_layers": 0}, "n_layers"),
    ({"activation": "tanh"}, "activation"),
    ({"source": "uniform"}, "source"),
    ({"n_basis": 0}, "n_basis"),
    ({"std_range": (0.0, 1.0)}, "std_range"),
    ({"std_range": (3.0, 1.0)}, "std_range"),
    ({"std_range": 2.0}, "std_range"),
    ({"mixing": "random"}, "mixing"),
    ({"noise": np.inf}, "noise"),
]


@pytest.mark.parametrize("params, name", SPATIAL_BAD)
def test_spatial_bad_arguments(params, name):
    with pytest.raises(ValueError, match=name):
        make_spatial_sources(**{"n_samples": 50, "n_sources": 2, **params})


def test_spatial_cycles_control_the_roughness_of_the_fields():
    # The default cycles give the same draw as before the parameter; more
    # cycles give log-scale fields that change faster between neighbours.
    from skivae.datasets import make_spatial_sources

    base = make_spatial_sources(2000, 2, random_state=0)
    same = make_spatial_sources(2000, 2, cycles=(0.5, 2.0), random_state=0)
    np.testing.assert_array_equal(base[0], same[0])

    def extrema(cycles):
        # local extrema of the log-scale fields along the square's diagonal
        from skivae.datasets import _random_smooth_log_std

        t = np.linspace(0.0, 1.0, 2001)
        field = _random_smooth_log_std(
            np.column_stack([t, t]), 20, np.random.RandomState(0), cycles=cycles
        )
        return np.sum(np.diff(np.sign(np.diff(field, axis=0)), axis=0) != 0) / 20

    assert extrema((4.0, 6.0)) > 3 * extrema((0.5, 1.0))
    with pytest.raises(ValueError, match="cycles must satisfy"):
        make_spatial_sources(100, 2, cycles=(2.0, 1.0))
    # 2 pi * 1e308 overflows: an error naming cycles, not numpy's OverflowError.
    with pytest.raises(ValueError, match="cycles must be at most 1e307"):
        make_spatial_sources(100, 2, cycles=(1e300, 1e308))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("kwargs", [{"noise": 1e308}, {"scale_range": (1e300, 1e308)}])
def test_overflowing_simulation_is_an_error(kwargs):
    # Huge but finite arguments overflow float64: an error, not an X with inf.
    with pytest.raises(ValueError, match="simulated X is not finite"):
        make_nonstationary_sources(4, 50, 2, random_state=0, **kwargs)
