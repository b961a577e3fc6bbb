"""The flow start (skivae._start): data in, a started model out.

These tests call the start's functions with tensors and a fitted auxiliary
encoder, as the estimators do, and check what they return; the estimators'
own tests check that a default fit uses them.
"""

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from skivae import IdentifiableVAE, NonlinearICA
from skivae._aux import _AuxEncoder
from skivae._builders import make_ivae
from skivae._core.training import fit_to_latents
from skivae._start import (
    choose_sources,
    fit_short_flow,
    flow_feature_net,
    flow_sources,
    output_reach,
    principal_inputs,
    start_ivae,
    u_information,
)
from skivae.datasets import make_continuous_aux_sources, make_nonstationary_sources
from skivae.metrics import mean_corr_coef

NET = dict(hidden_layer_sizes=(16,), activation="leaky_relu")
FLOW = dict(prior="gaussian", device=torch.device("cpu"), **NET)


def _encoded(u, continuous=False):
    """The fitted auxiliary encoder and the encoded u, as an estimator has."""
    aux = _AuxEncoder("continuous" if continuous else "categorical")
    U = aux.fit(u, len(u), np.random.RandomState(0))
    return aux, U


def _tensors(X, U):
    Xs = (X - X.mean(0)) / X.std(0)
    dtype = torch.long if U.dtype.kind in "iu" else torch.float32
    return torch.as_tensor(Xs, dtype=torch.float32), torch.as_tensor(U, dtype=dtype)


def _ivae(n_features, n_components, aux, seed=0):
    torch.manual_seed(seed)
    return make_ivae(
        n_features,
        n_components,
        aux,
        prior="gaussian",
        likelihood="gaussian",
        decoder_var=0.01,
        posterior="full",
        input_noise_std=0.0,
        n_importance=1,
        n_importance_train=1,
        score_seed=seed,
        **NET,
    )


# ------------------------------------------------------------ the short flow
def test_short_flow_outputs_are_standardised_and_invertible():
    X, u, S = make_nonstationary_sources(20, 150, 2, n_layers=1, random_state=0)
    aux, U = _encoded(u)
    flow = fit_short_flow(X, U, aux, seed=0, **FLOW)
    assert flow.Z.shape == X.shape
    np.testing.assert_allclose(flow.Z.mean(0), 0, atol=1e-8)
    np.testing.assert_allclose(flow.Z.std(0), 1, atol=1e-8)
    np.testing.assert_allclose(flow.transform(X), flow.Z)
    np.testing.assert_allclose(flow.inverse_transform(flow.Z), X, atol=1e-8)
    assert mean_corr_coef(S, flow.Z) > 0.95  # a linear mixing: 10 epochs do


def test_short_flow_is_seeded_and_leaves_the_global_rng_alone():
    X, u, _ = make_nonstationary_sources(10, 60, 2, n_layers=1, random_state=0)
    aux, U = _encoded(u)
    state = torch.get_rng_state()
    a = fit_short_flow(X, U, aux, seed=3, max_iter=2, **FLOW)
    b = fit_short_flow(X, U, aux, seed=3, max_iter=2, **FLOW)
    c = fit_short_flow(X, U, aux, seed=4, max_iter=2, **FLOW)
    assert torch.equal(state, torch.get_rng_state())
    assert_array_equal(a.Z, b.Z)
    assert not np.allclose(a.Z, c.Z)


def test_short_flow_uses_the_estimators_codes_when_a_category_is_absent():
    """Early stopping can leave a category out of the training rows. The
    start must index the prior's table with the estimator's codes (one row
    per category of the whole u), not re-encode the codes it sees: with
    category 0 absent, re-encoding shifts every code by one, and the
    u-information of each output is then computed against the wrong rows."""
    X, u, S = make_nonstationary_sources(
        20, 150, 2, n_features=2, n_layers=1, random_state=0
    )
    X = np.hstack([X, 3.0 * np.random.RandomState(1).randn(len(X), 2)])
    aux, U = _encoded(u)
    rows = U != 0  # category 0 only in the validation split
    flow = fit_short_flow(X[rows], U[rows], aux, seed=0, **FLOW)
    assert flow.module.prior.table.shape[0] == aux.n_aux_ == 20
    gain = u_information(flow, flow.Z)
    corr = np.abs(np.corrcoef(flow.Z.T, S[rows].T)[:4, 4:]).max(axis=1)
    assert gain[corr > 0.9].min() > 0.1 and np.abs(gain[corr < 0.3]).max() < 0.05


def test_short_flow_standardises_continuous_u_on_its_rows():
    X, u, _ = make_continuous_aux_sources(800, 2, n_aux=2, n_layers=1, random_state=0)
    aux, U = _encoded(u, continuous=True)
    flow = fit_short_flow(X[:400], U[:400], aux, seed=0, max_iter=2, **FLOW)
    np.testing.assert_allclose(flow.u.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(flow.u.std(0), 1, atol=1e-12)


# ------------------------------------------------------- undercomplete choice
def test_principal_inputs_cap_and_drop_directions_without_variance():
    rng = np.random.RandomState(0)
    Xw, scale = principal_inputs(rng.randn(300, 20), 2, seed=0)
    assert Xw.shape == (300, 16) and scale.shape == (16,)  # max(16, 2 * 2)
    X = rng.randn(300, 3)
    Xw, scale = principal_inputs(np.hstack([X, X[:, :1]]), 2, seed=0)
    assert Xw.shape == (300, 3)  # the duplicated column adds no direction
    np.testing.assert_allclose(Xw.std(0, ddof=1), 1, rtol=1e-6)
    Xw, _ = principal_inputs(rng.randn(300, 40), 12, seed=0)
    assert Xw.shape == (300, 24)  # 2 * n_components beyond 16


def test_undercomplete_start_on_fewer_rows_than_principal_components():
    # 10 rows of 40 features: PCA(16) was scikit-learn's error naming a
    # n_components=16 the user never set.
    from skivae import IdentifiableVAE

    rng = np.random.RandomState(0)
    Xw, _ = principal_inputs(rng.randn(10, 40), 2, seed=0)
    assert Xw.shape[0] == 10 and 2 <= Xw.shape[1] <= 10
    X, u = rng.randn(10, 40), np.arange(10) % 3
    est = IdentifiableVAE(n_components=2, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert est.fit(X, u).transform(X).shape == (10, 2)
    with pytest.raises(ValueError, match="needs at least n_components=3 training"):
        principal_inputs(rng.randn(2, 40), 3, seed=0)


@pytest.mark.parametrize("prior", ["gaussian", "laplace"])
def test_undercomplete_start_keeps_the_outputs_that_depend_on_u(prior):
    """Two segment-modulated sources, linearly mixed into 3 features, next to
    3 stationary noise features of larger variance: the leading principal
    components are mostly noise, the outputs chosen by their dependence on
    ``u`` are the sources. (The two ways :func:`u_information` measures the
    dependence: Gaussian, which ``"gaussian_var"`` shares, and Laplace.)"""
    X, u, S = make_nonstationary_sources(
        20, 150, 2, n_features=3, n_layers=1, random_state=0
    )
    noise = 3.0 * np.random.RandomState(1).randn(len(X), 3)
    X = np.hstack([X / X.std(0), noise])
    aux, U = _encoded(u)
    Z = flow_sources(*_tensors(X, U), aux, 2, seed=0, **{**FLOW, "prior": prior})
    assert Z.shape == (len(X), 2) and Z.dtype == torch.float32
    assert mean_corr_coef(S, Z.numpy()) > 0.9
    pca = np.linalg.svd(X - X.mean(0), full_matrices=False)[0][:, :2]
    assert mean_corr_coef(S, pca) < 0.5  # the choice matters


def test_u_information_is_high_for_modulated_outputs_only():
    X, u, S = make_nonstationary_sources(
        20, 150, 2, n_features=2, n_layers=1, random_state=0
    )
    X = np.hstack([3.0 * np.random.RandomState(1).randn(len(X), 2), X])
    aux, U = _encoded(u)
    flow = fit_short_flow(X, U, aux, seed=0, **FLOW)
    gain = u_information(flow, flow.Z)
    corr = np.abs(np.corrcoef(flow.Z.T, S.T)[:4, 4:]).max(axis=1)
    sources, noise = corr > 0.9, corr < 0.3
    assert sources.sum() == 2 and noise.sum() == 2
    assert gain[sources].min() > 0.1
    assert np.abs(gain[noise]).max() < 0.05


def test_output_reach_is_small_for_thin_directions():
    _, u, X = make_nonstationary_sources(20, 150, 3, random_state=0)
    aux, U = _encoded(u)
    flow = fit_short_flow(X, U, aux, seed=0, **FLOW)
    follows = np.abs(np.corrcoef(flow.Z.T, X.T)[:3, 3:]).argmax(axis=1)
    scale = np.ones(3)
    scale[follows[0]] = 0.01
    reach = output_reach(flow, flow.Z, scale, seed=0)
    assert reach.shape == (3,) and np.all(reach > 0)
    assert reach[0] < 0.2 * np.delete(reach, 0).min()
    assert_array_equal(output_reach(flow, flow.Z, scale, seed=0), reach)


def test_choose_sources_prefers_reach_among_u_informative_outputs():
    gain = np.array([0.10, 0.09, 0.08, 0.001])
    reach = np.array([0.2, 1.0, 0.9, 5.0])
    # output 3 moves x most but ignores u; output 0 is u-informative but thin
    assert_array_equal(choose_sources(gain, reach, 2), [1, 2])
    assert_array_equal(choose_sources(gain, reach, 4), [0, 1, 2, 3])
    assert_array_equal(choose_sources(np.array([0.1, 0.0, 0.0]), [1, 3, 2], 2), [0, 1])
    # no output gains from u: reach alone
    assert_array_equal(
        choose_sources(np.array([-0.01, -0.02, -0.03]), [1, 3, 2], 2), [1, 2]
    )


# ------------------------------------------------------------ starting a model
@pytest.mark.parametrize("angle", [0.0, np.pi / 4])
def test_fit_to_latents_moves_the_ivae_onto_the_given_latents(angle):
    """The regression puts the encoder's mean on the latents it is given:
    the true sources give a model that recovers them; the sources rotated by
    45 degrees give one that follows the rotation instead (MCC near 0.71)."""
    X, u, S = make_nonstationary_sources(12, 50, 2, n_layers=2, random_state=0)
    aux, U = _encoded(u)
    Xt, Ut = _tensors(X, U)
    c, s = np.cos(angle), np.sin(angle)
    Z = ((S - S.mean(0)) / S.std(0)) @ np.array([[c, -s], [s, c]])
    module = _ivae(2, 2, aux)
    fit_to_latents(
        module,
        Xt,
        Ut,
        torch.as_tensor(Z, dtype=torch.float32),
        seed=0,
        epochs=20,
        steps=(200, 2000),
        batch_size=256,
        learning_rate=1e-3,
        prior_learning_rate=1e-2,
        log_var=-4.0,
    )
    assert not module.training
    with torch.inference_mode():
        F = module.features(Xt).numpy()
    assert mean_corr_coef(Z, F) > 0.9
    mcc = mean_corr_coef(S, F)
    assert mcc > 0.9 if angle == 0 else mcc < 0.8


def test_start_ivae_warns_and_leaves_the_model_when_the_flow_diverges():
    """A flow that cannot be fitted (here: infinite inputs make its loss
    infinite) leaves the new model as PyTorch initialised it."""
    X, u, _ = make_nonstationary_sources(10, 60, 2, n_layers=1, random_state=0)
    aux, U = _encoded(u)
    Xt, Ut = _tensors(X, U)
    Xt[0, 0] = float("inf")
    module = _ivae(2, 2, aux)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.warns(UserWarning, match="initial flow diverged.*random init"):
        start_ivae(module, Xt, Ut, aux, 2, seed=0, **FLOW)
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_flow_feature_net_is_a_map_of_x_itself():
    """The short flow's input standardisation is folded into the network:
    applied to the estimator's rows it gives the flow's raw outputs."""
    X, u, _ = make_nonstationary_sources(10, 60, 2, n_layers=1, random_state=0)
    aux, U = _encoded(u)
    Xt, Ut = _tensors(X, U)
    net = flow_feature_net(Xt, Ut, aux, seed=0, depth=2, bins=8, bound=5.0, **FLOW)
    flow = fit_short_flow(
        Xt.numpy().astype(np.float64),
        U,
        aux,
        seed=0,
        depth=2,
        bins=8,
        bound=5.0,
        **FLOW,
    )
    with torch.inference_mode():
        H = net(Xt).double().numpy()
    np.testing.assert_allclose(
        H, flow.raw_outputs(Xt.numpy().astype(np.float64)), atol=1e-4
    )


# ------------------------------------------------------- through the estimators
def test_each_ivae_restart_starts_from_its_own_flow(segment_data):
    """n_init restarts of the flow start differ (each fits its own flow) and
    the kept one has the best final score."""
    X, u, _ = segment_data
    est = IdentifiableVAE(n_init=3, max_iter=2, random_state=0).fit(X, u)
    scores = est.restart_scores_
    assert scores.shape == (3,) and len(np.unique(scores)) == 3
    jac = float(np.sum(np.log(est._x_scale)))
    assert est.score(X, u) + jac == pytest.approx(scores.max(), abs=1e-4)


@pytest.mark.parametrize("method", ["tcl", "gcl"])
def test_contrastive_features_start_as_the_short_flow(segment_data, method):
    """At a negligible learning rate the contrastive features are the short
    flow's sources (fitted with the restart's seed on the same rows)."""
    X, u, _ = segment_data
    est = NonlinearICA(
        method=method, max_iter=1, learning_rate_init=1e-9, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, u)
    seed = int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))
    aux = est.aux_encoder_
    flow = fit_short_flow(
        est._scale_x(X),
        aux.transform(u, len(u)),
        aux,
        seed=seed,
        hidden_layer_sizes=est.hidden_layer_sizes,
        activation=est.activation,
        prior=est.prior,
        device=torch.device("cpu"),
    )
    corr = np.abs(np.corrcoef(est.transform(X).T, flow.Z.T)[:2, 2:])
    assert np.all(np.diag(corr) > 0.9999)
