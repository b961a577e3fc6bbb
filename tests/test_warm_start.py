"""warm_start=True: fit continues training the fitted model (both estimators)."""

import io

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

import skivae
from skivae import IdentifiableVAE, NonlinearICA

FAST = dict(max_iter=3, hidden_layer_sizes=(16,), random_state=0)
ESTIMATORS = {
    "ivae": lambda **kw: IdentifiableVAE(**{**FAST, **kw}),
    "nica-ivae": lambda **kw: NonlinearICA(method="ivae", **{**FAST, **kw}),
    "flow": lambda **kw: NonlinearICA(**{**FAST, **kw}),
    "tcl": lambda **kw: NonlinearICA(method="tcl", **{**FAST, **kw}),
    "gcl": lambda **kw: NonlinearICA(method="gcl", **{**FAST, **kw}),
}
pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::skivae.IdentifiabilityWarning"),
]


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_second_fit_continues_and_extends_the_loss_curve(name, segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS[name](warm_start=True).fit(X, u)
    first, Z1 = list(est.loss_curve_), est.transform(X)
    encoder, x_mean = est.aux_encoder_, est._x_mean.copy()
    # continue on rescaled data: the fitted standardisation is kept
    est.fit(X * 2.0 + 1.0, u)
    assert est.n_iter_ == 6 and len(est.loss_curve_) == 6
    assert est.loss_curve_[:3] == first
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.aux_encoder_ is encoder
    assert_array_equal(est._x_mean, x_mean)
    assert not np.allclose(est.transform(X), Z1)
    # a fresh fit of the same data starts again
    fresh = clone(est).set_params(warm_start=False).fit(X * 2.0 + 1.0, u)
    assert fresh.n_iter_ == 3
    assert not np.allclose(fresh.transform(X), est.transform(X))


def test_warm_fit_lowers_the_loss(segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS["ivae"](warm_start=True).fit(X, u)
    before = est.loss_curve_[-1]
    est.fit(X, u)
    assert est.loss_curve_[-1] < before
    # the continued model is better than a fresh one trained as long as the
    # second fit alone
    fresh = ESTIMATORS["ivae"]().fit(X, u)
    assert est.score(X, u) > fresh.score(X, u)


def test_without_warm_start_a_second_fit_is_a_fresh_fit(segment_data):
    X, u, _ = segment_data
    X2, u2 = X[::2] + 0.5, u[::2]
    est = ESTIMATORS["ivae"]().fit(X, u)
    est.fit(X2, u2)
    fresh = ESTIMATORS["ivae"]().fit(X2, u2)
    assert_array_equal(est.transform(X), fresh.transform(X))
    assert est.loss_curve_ == fresh.loss_curve_ and est.n_iter_ == 3


def test_warm_start_ignores_n_init_and_is_reproducible(segment_data):
    X, u, _ = segment_data
    a = ESTIMATORS["ivae"](warm_start=True).fit(X, u)
    b = clone(a).fit(X, u)
    a.fit(X, u)
    b.set_params(n_init=3).fit(X, u)  # one restart only: the same as a
    assert_array_equal(a.transform(X), b.transform(X))
    assert a.loss_curve_ == b.loss_curve_


def test_early_stopping_scores_are_extended(segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS["ivae"](warm_start=True, early_stopping=True).fit(X, u)
    first = list(est.validation_scores_)
    est.fit(X, u)
    assert len(est.validation_scores_) == est.n_iter_ > len(first)
    assert est.validation_scores_[: len(first)] == first
    assert est.best_validation_score_ == max(est.validation_scores_)


def test_n_importance_may_change_between_warm_fits(segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS["ivae"](warm_start=True).fit(X, u)
    est.set_params(n_importance=6).fit(X, u)
    assert est.module_.n_importance == 6 and est.module_.iwae_eps.shape == (6, 2)
    assert np.all(np.isfinite(est.score_samples(X, u)))


def _mismatches(X, u):
    first = u < 6
    yield "features", dict(X=X[:, :1], u=u), "2 features"
    yield "categories", dict(X=X[first], u=u[first]), "12 categories.*6 of"
    yield "unseen", dict(X=X, u=u + 100), "not seen during fit"
    yield "no u", dict(X=X, u=None), "fitted with u"
    yield "shape", dict(X=X, u=u, n_components=1), "another shape"
    yield "layers", dict(X=X, u=u, hidden_layer_sizes=(8,)), "another shape"
    # same shapes, another reading of X: was accepted, and scored above 0
    binary = (X > 0).astype(float)
    yield (
        "likelihood",
        dict(X=binary, u=u, likelihood="bernoulli"),
        "likelihood changed",
    )


@pytest.mark.filterwarnings("ignore:IdentifiableVAE.fit got u=None")
@pytest.mark.parametrize(
    "case",
    ["features", "categories", "unseen", "no u", "shape", "layers", "likelihood"],
)
def test_mismatched_data_or_parameters_raise_and_keep_the_model(case, segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS["ivae"](warm_start=True).fit(X, u)
    Z, curve, state = est.transform(X), list(est.loss_curve_), dict(vars(est))
    _, bad, match = next(c for c in _mismatches(X, u) if c[0] == case)
    params = {k: v for k, v in bad.items() if k not in ("X", "u")}
    est.set_params(**params)
    with pytest.raises(ValueError, match=match):
        est.fit(bad["X"], bad["u"])
    assert vars(est).keys() == state.keys()
    assert est.loss_curve_ == curve and est.n_components_ == 2
    est.set_params(n_components=None, hidden_layer_sizes=(16,), likelihood="gaussian")
    assert_array_equal(est.transform(X), Z)


def test_fitted_without_u_needs_no_u(segment_data):
    X, u, _ = segment_data
    with pytest.warns(UserWarning, match="plain VAE"):
        est = ESTIMATORS["ivae"](warm_start=True).fit(X)
    with pytest.raises(ValueError, match="fitted without u"):
        est.fit(X, u)
    with pytest.warns(UserWarning, match="plain VAE"):
        est.fit(X)
    assert est.n_iter_ == 6


def test_continuous_u_must_keep_its_width():
    rng = np.random.RandomState(0)
    X, U = rng.randn(200, 3), rng.randn(200, 2)
    est = ESTIMATORS["ivae"](warm_start=True).fit(X, U)
    with pytest.raises(ValueError, match="warm_start=True.*2"):
        est.fit(X, U[:, :1])
    est.fit(X, U + 0.1)
    assert est.n_iter_ == 6


def test_save_load_keeps_warm_start_and_continues_alike(segment_data):
    X, u, _ = segment_data
    est = ESTIMATORS["ivae"](warm_start=True, n_importance=4).fit(X, u)
    buffer = io.BytesIO()
    est.save(buffer)
    buffer.seek(0)
    loaded = skivae.load(buffer)
    assert loaded.get_params() == est.get_params()
    assert_allclose(loaded.score_samples(X, u), est.score_samples(X, u))
    est.fit(X, u)
    loaded.fit(X, u)
    assert loaded.n_iter_ == 6
    assert_array_equal(loaded.transform(X), est.transform(X))
