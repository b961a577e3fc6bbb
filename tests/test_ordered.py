"""Time-ordered rows: the autoregressive prior (ar_order), groups, sequences."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from skivae import IdentifiabilityWarning, IdentifiableVAE, NonlinearICA
from skivae._builders import make_ar_model, make_flow
from skivae._core.ar import pack_rows
from skivae.datasets import make_time_sources
from skivae.metrics import mean_corr_coef

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::skivae.IdentifiabilityWarning"),
]


def _ar_flow(n_features=2, order=1, seed=0):
    """A 1-restart flow with an AR prior and no u, with random parameters."""
    torch.manual_seed(seed)
    flow = make_flow(
        n_features,
        None,
        prior="laplace",
        hidden_layer_sizes=(8,),
        activation="leaky_relu",
    )
    model = make_ar_model(
        flow, order, None, hidden_layer_sizes=(8,), activation="leaky_relu"
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def test_ar_prior_is_the_base_prior_without_a_past():
    # With no previous row (exists = 0) or zero coefficients the shift is 0:
    # exactly the memoryless model's likelihood.
    model = _ar_flow(order=2)
    x = torch.randn(50, 2, dtype=torch.float64)
    past = torch.randn(50, 4, dtype=torch.float64)
    none = torch.zeros(50, 2, dtype=torch.float64)
    packed = torch.cat([x, past, none], dim=1)
    expected = model.inner.score_samples(x, None)
    assert torch.equal(model.score_samples(packed, None), expected)
    with torch.no_grad():
        model.prior.gamma_raw.zero_()
    packed[:, -2:] = 1.0
    assert torch.equal(model.score_samples(packed, None), expected)
    with torch.no_grad():
        model.prior.gamma_raw.fill_(0.5)
    assert not torch.allclose(model.score_samples(packed, None), expected)


def test_ar_flow_likelihood_integrates_to_one_in_1d():
    # p(x_t | x_{t-1}) of the exact flow likelihood, on a fine grid, for two
    # values of the past: each integrates to 1 (a wrong Jacobian, or a past
    # that entered the change of variables, would not).
    model = _ar_flow(n_features=1, order=1, seed=1)
    with torch.no_grad():
        model.prior.gamma_raw.fill_(1.0)  # gamma = tanh(1) = 0.76
    grid = torch.linspace(-40, 40, 40001, dtype=torch.float64)[:, None]
    for x_prev in (-1.5, 2.0):
        packed = torch.cat(
            [grid, torch.full_like(grid, x_prev), torch.ones_like(grid)], dim=1
        )
        with torch.no_grad():
            density = model.score_samples(packed, None).exp()
        mass = torch.trapezoid(density, grid[:, 0]).item()
        assert mass == pytest.approx(1.0, abs=2e-3)


def test_sampled_sequences_have_the_learned_autocorrelation():
    model = _ar_flow(n_features=2, order=1, seed=2)
    with torch.no_grad():
        model.prior.gamma_raw.copy_(torch.tensor([1.0, -0.5], dtype=torch.float64))
    torch.manual_seed(0)
    with torch.no_grad():
        _, z = model.sample_sequence(None, 20000)
    z = z.numpy()
    lag1 = [np.corrcoef(z[1:, j], z[:-1, j])[0, 1] for j in range(2)]
    assert_allclose(lag1, np.tanh([1.0, -0.5]), atol=0.03)


def test_sample_rows_draws_each_sequence_from_its_own_past():
    # Two interleaved sequences of the same model: each follows its own
    # autocorrelation (a row conditioned on the other sequence's previous
    # row would not), and one sequence drawn alone is sample_sequence.
    model = _ar_flow(n_features=2, order=1, seed=2)
    with torch.no_grad():
        model.prior.gamma_raw.copy_(torch.tensor([1.0, -0.5], dtype=torch.float64))
    from skivae.preprocessing import _previous_rows

    groups = np.tile([0, 1], 10000)
    previous = torch.as_tensor(_previous_rows(groups, len(groups), 1))
    torch.manual_seed(0)
    with torch.no_grad():
        _, z = model.sample_rows(None, previous)
    z = z.numpy()
    for g in (0, 1):
        zg = z[groups == g]
        lag1 = [np.corrcoef(zg[1:, j], zg[:-1, j])[0, 1] for j in range(2)]
        assert_allclose(lag1, np.tanh([1.0, -0.5]), atol=0.04)
    across = [np.corrcoef(z[1:, j], z[:-1, j])[0, 1] for j in range(2)]
    assert np.abs(across).max() < 0.05  # consecutive rows: other sequences
    torch.manual_seed(0)
    with torch.no_grad():
        one = model.sample_sequence(None, 50)[1]
    torch.manual_seed(0)
    with torch.no_grad():
        rows = model.sample_rows(None, torch.as_tensor(_previous_rows(None, 50, 1)))
    assert torch.equal(one, rows[1])


def test_estimator_samples_sequences_by_groups():
    X, u, _, groups = make_time_sources(3, 100, 2, n_segments=4, random_state=1)
    est = NonlinearICA(ar_order=1, max_iter=2, n_init=1, random_state=0)
    est.fit(X, u, groups=groups)
    useq = np.tile(u[:30], 2)
    gseq = np.repeat([0, 1], 30)
    Xs, S = est.sample(u=useq, groups=gseq, random_state=0)
    assert Xs.shape == (60, 2) and S.shape == (60, 2)
    assert_array_equal(est.sample(u=useq, groups=gseq, random_state=0)[0], Xs)
    # without groups the 60 rows are one sequence: row 30 then has a past
    one = est.sample(u=useq, random_state=0)[0]
    assert not np.array_equal(one, Xs)
    with pytest.raises(ValueError, match="groups must have one label per sampled"):
        est.sample(u=useq, groups=gseq[:10])
    # without u: n_samples is len(groups)
    plain = NonlinearICA(ar_order=1, prior="laplace", max_iter=1, n_init=1)
    plain.set_params(random_state=0).fit(X, groups=groups)
    assert plain.sample(groups=gseq, random_state=0)[0].shape == (60, 2)


def test_rows_never_borrow_from_another_group():
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    groups = np.array(["a", "b", "a", "b", "b", "a"])
    est = NonlinearICA(ar_order=2)
    packed, _ = est._pack(X, None, groups, 2)
    # columns: x_t (2), x_{t-1} (2), x_{t-2} (2), exists_1, exists_2
    assert_array_equal(packed[:, 6:], [[0, 0], [0, 0], [1, 0], [1, 0], [1, 1], [1, 1]])
    assert_array_equal(packed[2, 2:4], X[0])  # a's previous row
    assert_array_equal(packed[4, 2:4], X[3])  # b: rows 1, 3, 4
    assert_array_equal(packed[4, 4:6], X[1])
    assert_array_equal(packed[5, 2:6], np.r_[X[2], X[0]])


def test_scores_of_a_sequence_ignore_the_other_sequences():
    X, u, _, groups = make_time_sources(2, 150, 2, n_segments=3, random_state=0)
    est = NonlinearICA(ar_order=1, max_iter=2, n_init=1, random_state=0)
    est.fit(X, u, groups=groups)
    before = est.score_samples(X, u, groups=groups)
    X2 = X.copy()
    X2[groups == 1] += 3.0
    after = est.score_samples(X2, u, groups=groups)
    assert_array_equal(before[groups == 0], after[groups == 0])
    assert not np.allclose(before[groups == 1], after[groups == 1])
    # Without groups the rows form one sequence: the first row of sequence 1
    # then has a past, and its score changes.
    first = np.flatnonzero(groups == 1)[0]
    assert est.score_samples(X, u)[first] != before[first]


def test_flow_recovers_sources_told_apart_by_their_dynamics():
    # Every segment's marginal is N(0, 1): segment labels alone say little
    # (0.79 here), the AR prior recovers the sources.
    X, u, S, groups = make_time_sources(10, 300, 2, n_segments=5, random_state=0)
    est = NonlinearICA(ar_order=1, max_iter=10, n_init=1, random_state=0)
    est.fit(X, u, groups=groups)
    assert mean_corr_coef(S, est.transform(X)) > 0.95


def test_flow_recovers_stationary_laplace_sources_without_u():
    X, u, S, groups = make_time_sources(
        10, 300, 2, kind="stationary_ar", innovation="laplace", random_state=0
    )
    assert u is None
    est = NonlinearICA(
        ar_order=1, prior="laplace", max_iter=10, n_init=1, random_state=0
    )
    est.fit(X, None, groups=groups)
    assert mean_corr_coef(S, est.transform(X)) > 0.95


def test_ivae_recovers_stationary_laplace_sources_without_u():
    X, _, S, groups = make_time_sources(
        10, 300, 2, kind="stationary_ar", innovation="laplace", random_state=0
    )
    est = IdentifiableVAE(2, ar_order=1, prior="laplace", random_state=0)
    est.fit(X, groups=groups)
    assert mean_corr_coef(S, est.transform(X)) > 0.9


def test_ar_estimators_sample_score_and_round_trip(tmp_path):
    import skivae

    X, u, _, groups = make_time_sources(3, 100, 2, n_segments=4, random_state=1)
    est = IdentifiableVAE(2, ar_order=2, max_iter=2, random_state=0)
    est.fit(X, u, groups=groups)
    Xs, Z = est.sample(u=u[:40], random_state=0)
    assert Xs.shape == (40, 2) and Z.shape == (40, 2)
    assert_array_equal(est.sample(u=u[:40], random_state=0)[0], Xs)
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert loaded.ar_order == 2
    assert_array_equal(loaded.transform(X), est.transform(X))
    assert loaded.score(X, u, groups=groups) == est.score(X, u, groups=groups)
    assert_array_equal(loaded.sample(u=u[:40], random_state=0)[0], Xs)


def test_ar_errors():
    X, u, _, groups = make_time_sources(2, 60, 2, n_segments=3, random_state=0)
    with pytest.raises(ValueError, match="ar_order=1 needs a model with a prior"):
        NonlinearICA(method="tcl", ar_order=1).fit(X, u)
    with pytest.raises(ValueError, match="groups must have one label per row"):
        NonlinearICA(ar_order=1, max_iter=1).fit(X, u, groups=groups[:5])
    with pytest.raises(ValueError, match="requires y"):
        NonlinearICA(method="tcl").fit(X)
    est = NonlinearICA(ar_order=1, max_iter=1, n_init=1, random_state=0)
    est.fit(X, u, groups=groups)
    with pytest.raises(ValueError, match="pass u for every row"):
        est.score(X)
    with pytest.raises(ValueError, match="pass u, one value per time step"):
        est.sample(10)
    with pytest.warns(IdentifiabilityWarning, match="Gaussian innovations"):
        NonlinearICA(ar_order=1, max_iter=1, n_init=1).fit(X, groups=groups)
    # An order no sequence is long enough for (each has 60 rows) is refused
    # before anything is allocated; 59 previous rows still exist.
    with pytest.raises(ValueError, match="ar_order=60 needs sequences longer"):
        NonlinearICA(ar_order=60, max_iter=1).fit(X, u, groups=groups)
    with pytest.raises(ValueError, match="longest sequence .X, one group. has 120"):
        IdentifiableVAE(ar_order=120, max_iter=1).fit(X, u)
    with pytest.raises(ValueError, match="ar_order must be an integer >= 0"):
        IdentifiableVAE(ar_order=True, max_iter=1).fit(X, u, groups=groups)


def test_pack_rows_keeps_the_aux_of_the_past():
    X = np.arange(8, dtype=np.float64).reshape(4, 2)
    codes = np.array([3, 1, 2, 0])
    previous = np.array([[-1], [0], [1], [-1]])
    Xp, Up = pack_rows(X, codes, previous, 1)
    assert_array_equal(Up, [[3, 3], [1, 3], [2, 1], [0, 0]])
    cov = np.arange(4.0)[:, None]
    _, Uc = pack_rows(X, cov, previous, 1)
    assert_array_equal(Uc, [[0, 0], [1, 0], [2, 1], [3, 3]])
    assert_array_equal(Xp[:, -1], [0, 1, 1, 0])


def test_groups_are_routed_as_metadata_through_a_search():
    import sklearn
    from sklearn.model_selection import GridSearchCV, GroupKFold

    X, u, _, groups = make_time_sources(4, 80, 2, n_segments=3, random_state=0)
    params = dict(
        ar_order=1, max_iter=1, n_init=1, learning_rate_init=1e-2, random_state=0
    )
    with sklearn.config_context(enable_metadata_routing=True):
        est = NonlinearICA(**params).set_fit_request(groups=True)
        est.set_score_request(groups=True)
        search = GridSearchCV(est, {"learning_rate_init": [1e-2]}, cv=GroupKFold(2))
        search.fit(X, u, groups=groups)
    with_groups = NonlinearICA(**params).fit(X, u, groups=groups).transform(X)
    one_sequence = NonlinearICA(**params).fit(X, u).transform(X)
    assert_array_equal(search.best_estimator_.transform(X), with_groups)
    assert not np.array_equal(with_groups, one_sequence)


def test_one_step_forecast_from_the_last_rows():
    X, _, S, groups = make_time_sources(
        4, 200, 2, kind="stationary_ar", innovation="laplace", random_state=3
    )
    est = NonlinearICA(ar_order=1, prior="laplace", max_iter=3, n_init=1)
    est.set_params(random_state=0).fit(X, groups=groups)
    gamma = np.tanh(est.module_.prior.gamma_raw.detach().double().numpy())
    raw_last = est.transform(X[9:10]) * est._s_scale + est._s_mean
    expected = (gamma * raw_last - est._s_mean) / est._s_scale
    mean, std = est.predict_latent(past=X[:10], return_std=True)
    assert_allclose(mean, expected, rtol=1e-6, atol=1e-9)
    # only the last ar_order rows count; the scale is the innovation's
    assert_allclose(est.predict_latent(past=X[5:10]), mean)
    b = np.exp(0.5 * 7.0 * np.tanh(0.0))  # fixed Laplace(0, 1) innovations
    assert_allclose(std, np.sqrt(2.0) * b / est._s_scale[None])
    with pytest.raises(ValueError, match="fitted without u"):
        est.predict_latent()


def test_forecast_needs_the_past_aux_and_memory():
    X, u, _, groups = make_time_sources(2, 60, 2, n_segments=3, random_state=0)
    est = IdentifiableVAE(2, ar_order=1, max_iter=1, random_state=0)
    est.fit(X, u, groups=groups)
    with pytest.raises(ValueError, match="u_past is needed"):
        est.predict_latent(u[:1], past=X[:3])
    with pytest.raises(ValueError, match="u_past has 2 value.*past has 3 row"):
        est.predict_latent(u[:1], past=X[:3], u_past=u[:2])
    mean = est.predict_latent(u[3:4], past=X[:3], u_past=u[:3])
    assert mean.shape == (1, 2)
    assert not np.allclose(mean, est.predict_latent(u[3:4]))
    est.set_params(ar_order=2).fit(X, u, groups=groups)
    with pytest.raises(ValueError, match="needs the last 2 rows"):
        est.predict_latent(u[:1], past=X[:1], u_past=u[:1])
    plain = IdentifiableVAE(2, max_iter=1, random_state=0).fit(X, u)
    with pytest.raises(ValueError, match="ar_order=0"):
        plain.predict_latent(u[:1], past=X[:3], u_past=u[:3])
    with pytest.raises(ValueError, match="past, the previous rows of X: X has 1 feat"):
        est.predict_latent(u[:1], past=X[:3, :1], u_past=u[:3])
    no_u = IdentifiableVAE(2, ar_order=1, max_iter=1, random_state=0)
    no_u.fit(X, groups=groups)
    with pytest.warns(UserWarning, match="u_past given here is ignored"):
        no_u.predict_latent(past=X[:3], u_past=u[:3])


def test_warm_start_continues_an_ar_model():
    X, u, _, groups = make_time_sources(2, 80, 2, n_segments=3, random_state=0)
    est = IdentifiableVAE(2, ar_order=1, max_iter=1, warm_start=True, random_state=0)
    est.fit(X, u, groups=groups)
    est.set_params(n_importance=4).fit(X, u, groups=groups)  # redraws its draws
    assert est.n_iter_ == 2
    with pytest.raises(ValueError, match="another shape"):
        est.set_params(ar_order=2).fit(X, u, groups=groups)


def test_an_ar_ivae_starts_from_the_ar_flow_where_that_identifies():
    from skivae._defaults import ivae_init

    auto = dict(likelihood="gaussian")
    assert ivae_init("auto", u_type=None, ar_order=1, **auto) == "flow"
    assert ivae_init("auto", u_type=None, ar_order=0, **auto) == "random"
    assert ivae_init("auto", u_type=None, ar_order=1, undercomplete=True, **auto) == (
        "random"
    )
    with pytest.raises(ValueError, match="ar_order > 0"):
        ivae_init("flow", u_type=None, ar_order=0, **auto)
    X, _, _, groups = make_time_sources(
        2, 100, 2, kind="stationary_ar", innovation="laplace", random_state=0
    )
    est = IdentifiableVAE(2, ar_order=1, prior="laplace", max_iter=1, random_state=0)
    assert est.fit(X, groups=groups).init_ == "flow"


def test_flow_recovers_sources_with_the_previous_rows_as_u():
    from skivae.preprocessing import lagged_rows

    X, u, S, groups = make_time_sources(10, 300, 2, n_segments=5, random_state=0)
    U, keep = lagged_rows(X, groups)
    est = NonlinearICA(max_iter=10, n_init=1, random_state=0).fit(X[keep], U[keep])
    assert mean_corr_coef(S[keep], est.transform(X[keep])) > 0.85  # 0.91


def test_flow_recovers_spatial_sources_with_a_spline_basis_of_the_coordinates():
    from sklearn.preprocessing import SplineTransformer

    from skivae.datasets import make_spatial_sources

    X, coords, S = make_spatial_sources(3000, 2, random_state=0)
    est = NonlinearICA(
        aux_transformer=SplineTransformer(n_knots=6),
        max_iter=10,
        n_init=1,
        random_state=0,
    )
    est.fit(X, coords)
    assert mean_corr_coef(S, est.transform(X)) > 0.95  # 0.995


def test_masked_ivae_with_memory():
    # Missing cells and ar_order together: the masked iVAE trains, transforms
    # and scores rows whose past has missing cells (the encoder reads the
    # past rows' masks), and the past still counts; the flow names the remedy.
    X, u, _, groups = make_time_sources(3, 100, 2, n_segments=4, random_state=1)
    Xm = X.copy()
    Xm[np.arange(0, 300, 7), 0] = np.nan
    est = IdentifiableVAE(2, ar_order=1, max_iter=2, random_state=0)
    est.fit(Xm, u, groups=groups)
    assert est.masked_
    assert np.isfinite(est.transform(Xm)).all()
    before = est.score_samples(Xm, u, groups=groups)
    assert np.isfinite(before).all()
    t = 8  # row 7 (its past) has a missing cell; row 8 is complete
    assert np.isnan(Xm[t - 1, 0]) and not np.isnan(Xm[t]).any()
    X2 = Xm.copy()
    X2[t - 1, 1] += 1.0  # an observed cell of the past
    after = est.score_samples(X2, u, groups=groups)
    assert after[t] != before[t]
    with pytest.raises(ValueError, match="method=\"ivae\"|method='ivae'"):
        NonlinearICA(ar_order=1, max_iter=1).fit(Xm, u, groups=groups)


def test_sampling_an_ar_model_without_u_warns_once_about_a_given_u():
    X, u, _, groups = make_time_sources(2, 60, 2, n_segments=3, random_state=0)
    est = IdentifiableVAE(2, ar_order=1, max_iter=1, random_state=0)
    est.fit(X, groups=groups)
    with pytest.warns(UserWarning, match="fitted without u") as record:
        Xs, _ = est.sample(u=u[:5], random_state=0)
    assert Xs.shape == (5, 2)
    assert sum("fitted without u" in str(w.message) for w in record) == 1


@pytest.mark.parametrize("Estimator", [IdentifiableVAE, NonlinearICA])
def test_set_params_after_fit_leaves_the_fitted_memory(Estimator):
    # Inference reads ar_order from the fitted model, not the attribute: a
    # set_params(ar_order=...) after fit once packed rows for another order
    # (a torch shape error in score_samples) or looked for sample_rows on a
    # model without memory. It changes the next fit only.
    X, u, _, groups = make_time_sources(3, 80, 2, n_segments=4, random_state=1)
    plain = Estimator(max_iter=2, n_init=1, random_state=0).fit(X, u)
    ar = Estimator(ar_order=1, max_iter=2, n_init=1, random_state=0)
    ar.fit(X, u, groups=groups)
    before = [
        (est.transform(X), est.score_samples(X, u, groups=groups))
        for est in (plain, ar)
    ]
    draws = [est.sample(u=u[:30], random_state=0)[0] for est in (plain, ar)]
    plain.set_params(ar_order=2)
    ar.set_params(ar_order=0)
    for est, (Z, scores), Xs in zip((plain, ar), before, draws):
        assert_array_equal(est.transform(X), Z)
        assert_array_equal(est.score_samples(X, u, groups=groups), scores)
        assert_array_equal(est.sample(u=u[:30], random_state=0)[0], Xs)
    # ar_order=1 forecasts from the last row; the later ar_order=0 does not
    # turn that off
    assert ar.predict_latent(u[-1:], past=X[-3:], u_past=u[-3:]).shape == (1, 2)
    # the next fit uses the new value
    ar.fit(X, u)
    with pytest.raises(ValueError, match="ar_order=0"):
        ar.predict_latent(u[-1:], past=X[-3:], u_past=u[-3:])
