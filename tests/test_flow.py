"""NonlinearICA(method="flow"): the identifiable flow as an estimator."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skivae import NonlinearICA
from skivae.datasets import make_nonstationary_sources
from skivae.metrics import mean_corr_coef

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
FAST = dict(max_iter=3, random_state=0)


@pytest.fixture(scope="module")
def data():
    return make_nonstationary_sources(10, 60, 2, n_layers=2, random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, u, _ = data
    return NonlinearICA(**FAST).fit(X, u)


def test_flow_is_the_default_and_auto_settings_resolve_per_method(data):
    X, u, _ = data
    est = NonlinearICA(**FAST).fit(X, u)
    assert est.method == "flow"
    # 600 rows: the flow's auto batch is min(512, max(64, 600 // 80)) = 64.
    assert est.training_settings_ == {
        "max_iter": 3,
        "learning_rate_init": 0.04,
        "n_init": 2,
        "batch_size": 64,
        "n_iter_no_change": 10,  # an int max_iter counts patience in epochs
    }
    ivae = NonlinearICA(method="ivae", max_iter=2, random_state=0).fit(X, u)
    assert ivae.training_settings_ == {
        "max_iter": 2,
        "learning_rate_init": 0.001,  # after the flow start (init="auto")
        "n_init": 1,
        "batch_size": 32,  # the other methods' min(256, max(32, 600 // 100))
        "n_iter_no_change": 10,
    }
    rand = NonlinearICA(method="ivae", init="random", random_state=0)
    rand.fit(X[:200], u[:200])
    assert rand.training_settings_["learning_rate_init"] == 0.01
    # max_iter="auto": 40 epochs' worth of 100 steps; 200 rows in batches of
    # 32 make 7 steps per epoch, so ceil(4000 / 7) = 572 epochs, and the
    # stopping rule waits 10 such epochs' worth: ceil(1000 / 7) = 143
    assert rand.training_settings_["max_iter"] == 572
    assert rand.training_settings_["n_iter_no_change"] == 143


@pytest.mark.parametrize(
    "n_features, expected", [(2, 20), (5, 20), (8, 32), (10, 40), (20, 40)]
)
def test_flow_auto_budget_grows_with_the_dimension(n_features, expected):
    from skivae._defaults import nica_settings

    flow = nica_settings(NonlinearICA(), n_features=n_features, u_type="categorical")
    assert flow.max_iter == expected and flow.auto_max_iter
    # an int max_iter, and the other methods, are not scaled
    fixed = nica_settings(
        NonlinearICA(max_iter=7), n_features=n_features, u_type="categorical"
    )
    assert fixed.max_iter == 7
    tcl = nica_settings(
        NonlinearICA(method="tcl", init="random"),
        n_features=n_features,
        u_type="categorical",
    )
    assert tcl.max_iter == 40


@pytest.mark.parametrize("n_rows, expected", [(1000, 64), (40000, 500), (80000, 512)])
def test_flow_auto_batch_size_follows_the_rows(n_rows, expected):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_rows, 2))
    u = np.arange(n_rows) % 4
    est = NonlinearICA(max_iter=1, n_init=1, random_state=0).fit(X, u)
    assert est.training_settings_["batch_size"] == expected


def test_non_square_raises_and_points_to_ivae():
    X, u, _ = make_nonstationary_sources(8, 30, 2, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="square data.*method='ivae'"):
        NonlinearICA(n_components=2, **FAST).fit(X, u)
    # n_components=None is square by definition: 4 sources from 4 features.
    assert NonlinearICA(**FAST).fit(X, u).n_components_ == 4


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"flow_depth": 0}, "flow_depth"),
        ({"spline_bins": 1}, "spline_bins"),
        ({"spline_bound": -1.0}, "spline_bound"),
        ({"n_init": "many"}, "n_init"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_flow_parameters(data, bad, match):
    X, u, _ = data
    with pytest.raises(ValueError, match=match):
        NonlinearICA(**bad).fit(X, u)


def test_non_finite_input_raises(data):
    X, u, _ = data
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NonlinearICA(**FAST).fit(X, u)


def test_inverse_transform_is_exact(fitted, data):
    X, _, _ = data
    assert_allclose(fitted.inverse_transform(fitted.transform(X)), X, atol=1e-9)


def test_features_skip_the_jacobian_but_are_the_same_map(fitted, data):
    import copy

    import torch

    X = data[0][:50]
    module = copy.deepcopy(fitted.module_).double()
    Xs = torch.as_tensor(fitted._scale_x(X))
    # transform uses features(), which runs the stack without log-determinants
    raw = module.unmix(Xs)[0].detach()
    assert torch.equal(module.features(Xs), raw)
    expected = (raw.numpy() - fitted._s_mean) / fitted._s_scale
    assert_allclose(fitted.transform(X), expected, rtol=1e-10, atol=1e-12)


def test_restart_with_best_likelihood_is_kept(data):
    X, u, _ = data
    est = NonlinearICA(n_init=3, **FAST).fit(X, u)
    lls = est.restart_scores_
    assert lls.shape == (3,) and len(np.unique(lls)) == 3  # restarts differ
    # The kept model's training log-likelihood is the best restart's (score is
    # on the original scale of X: add the standardisation's log-Jacobian).
    jac = float(np.sum(np.log(est._x_scale)))
    assert est.score(X, u) + jac == pytest.approx(lls.max(), abs=1e-4)
    single = NonlinearICA(n_init=1, **FAST).fit(X, u)
    assert not np.allclose(single.transform(X), est.transform(X))


def test_loss_curve_is_the_kept_restarts_own():
    # The restarts train as one batched model; loss_curve_ must follow the
    # kept one (its last epoch's loss is near its final training loss), not
    # the mean over restarts (which sits between the two).
    X, u, _ = make_nonstationary_sources(8, 300, 3, random_state=0)
    est = NonlinearICA(max_iter=6, n_init=2, random_state=2).fit(X, u)
    kept, other = sorted(est.restart_scores_, reverse=True)
    assert len(est.loss_curve_) == est.n_iter_ == 6
    assert est.best_loss_ == min(est.loss_curve_)
    last = est.loss_curve_[-1]
    assert abs(last + kept) < 0.5 * abs(last + other)


def test_score_is_an_exact_density_on_the_original_scale():
    # 1-D data, scaled by 10: the density over x must integrate to one for
    # each u and for the marginal, which needs the standardisation's Jacobian.
    rng = np.random.RandomState(0)
    u = np.repeat([0, 1, 2], 200)
    X = 10 * np.tanh(rng.standard_normal(600) * np.array([0.5, 1.0, 2.0])[u])
    est = NonlinearICA(max_iter=5, random_state=0).fit(X[:, None], u)
    grid = np.linspace(-40, 40, 40001)[:, None]
    dx = grid[1, 0] - grid[0, 0]
    for code in (0, 2):
        dens = np.exp(est.score_samples(grid, np.full(len(grid), code)))
        assert dens.sum() * dx == pytest.approx(1.0, abs=2e-3)
    assert np.exp(est.score_samples(grid)).sum() * dx == pytest.approx(1.0, abs=2e-3)


def test_sample_is_consistent_with_transform_and_the_prior(fitted):
    X_s, S_s = fitted.sample(4000, u=np.full(4000, 3), random_state=0)
    # Exact inverse: transforming the samples gives back their sources.
    assert_allclose(fitted.transform(X_s), S_s, atol=1e-7)
    # The sources follow the learned prior of segment 3 (standardised).
    prior = fitted.module_.prior
    import torch

    loc, log_s2 = prior.params(torch.tensor([3]), torch.zeros(1, 2))
    mean = (loc[0].detach().numpy() - fitted._s_mean) / fitted._s_scale
    std = np.exp(0.5 * log_s2[0].detach().numpy()) / fitted._s_scale
    assert_allclose(S_s.mean(0), mean, atol=4 * std.max() / np.sqrt(4000))
    assert_allclose(S_s.std(0), std, rtol=0.06)
    X_a, _ = fitted.sample(10, random_state=1)
    X_b, _ = fitted.sample(10, random_state=1)
    assert_allclose(X_a, X_b)


def test_early_stopping_selects_on_validation(data):
    X, u, _ = data
    est = NonlinearICA(max_iter=4, early_stopping=True, random_state=0).fit(X, u)
    assert len(est.validation_scores_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)


@pytest.mark.slow
def test_flow_recovers_signed_sources():
    # Bounded recovery check: 3 sources, 2 xtanh mixing layers, default settings.
    X, u, S = make_nonstationary_sources(20, 500, 3, n_layers=2, random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = NonlinearICA(random_state=0).fit(X, u)
    assert mean_corr_coef(S, est.transform(X)) > 0.9
