"""Missing cells in X (the masked iVAE) and the Laplace reconstruction likelihood."""

import copy
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline

from skivae import IdentifiableVAE, NonlinearICA, load
from skivae._builders import make_ivae
from skivae._core.missing import conditional_fill, gaussian_stats
from skivae.datasets import make_nonstationary_sources

FAST = dict(max_iter=3, hidden_layer_sizes=(16,), random_state=0)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _remove_cells(X, rate, seed=0):
    """``X`` with a fraction ``rate`` of its cells set to NaN (never a whole row)."""
    rng = np.random.RandomState(seed)
    missing = rng.rand(*X.shape) < rate
    missing[missing.all(axis=1), 0] = False
    Xm = X.copy()
    Xm[missing] = np.nan
    return Xm, missing


@pytest.fixture
def wide_data():
    """2 sources in 6 noisy features: a missing cell is predictable from the others."""
    return make_nonstationary_sources(
        20, 80, 2, n_features=6, n_layers=2, noise=0.05, random_state=0
    )


def _modules(likelihood, n_features=5, n_components=2):
    """A masked and an unmasked iVAE module sharing their decoder."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        kw = dict(
            prior="gaussian",
            hidden_layer_sizes=(8,),
            activation="leaky_relu",
            likelihood=likelihood,
            decoder_var=0.3,
            posterior="full",
            input_noise_std=0.0,
            n_importance=1,
            n_importance_train=1,
            score_seed=0,
        )
        plain = make_ivae(n_features, n_components, None, **kw)
        masked = make_ivae(n_features, n_components, None, masked=True, **kw)
    masked.decoder.load_state_dict(plain.decoder.state_dict())
    return plain.double(), masked.double()


# ------------------------------------------------------------- the likelihood
@pytest.mark.parametrize("likelihood", ["gaussian", "laplace", "bernoulli"])
def test_masked_likelihood_equals_complete_likelihood_without_missing_cells(
    likelihood,
):
    plain, masked = _modules(likelihood)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(7, 5, generator=gen, dtype=torch.float64)
    if likelihood == "bernoulli":
        x = (x > 0.5).to(x.dtype)
    z = torch.randn(3, 7, 2, generator=gen, dtype=torch.float64)
    assert torch.equal(masked.log_likelihood(x, z), plain.log_likelihood(x, z))


@pytest.mark.parametrize("likelihood", ["gaussian", "laplace"])
def test_a_missing_cell_adds_nothing_and_passes_no_gradient(likelihood):
    plain, masked = _modules(likelihood)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    z = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    xm = x.clone()
    xm[1, 3] = xm[2, 0] = float("nan")
    ll = masked.log_likelihood(xm, z)
    # the complete rows are unchanged; the partial ones lose exactly their
    # missing cells' terms, whatever value those cells held
    out = plain.decoder(z)
    log_var = plain.decoder_log_var()
    if likelihood == "gaussian":
        cells = -0.5 * (
            math.log(2 * math.pi) + log_var + (x - out) ** 2 / log_var.exp()
        )
    else:
        dist = torch.distributions.Laplace(out, torch.exp(0.5 * log_var) / math.sqrt(2))
        cells = dist.log_prob(x)
    expected = cells.sum(1)
    expected[1] -= cells[1, 3]
    expected[2] -= cells[2, 0]
    assert_allclose(ll.detach().numpy(), expected.detach().numpy(), rtol=1e-12)
    # a different value in a missing cell is impossible to pass: NaN is the
    # mark, so the loss and every gradient stay finite
    loss = -masked.elbo(xm, None).sum()
    loss.backward()
    grads = [p.grad for p in masked.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_laplace_likelihood_matches_torch_distribution():
    plain, _ = _modules("laplace")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    z = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    scale = torch.exp(0.5 * plain.decoder_log_var()) / math.sqrt(2)
    expected = torch.distributions.Laplace(plain.decoder(z), scale).log_prob(x).sum(1)
    assert_allclose(plain.log_likelihood(x, z).detach(), expected.detach(), rtol=1e-12)
    # its draws have the decoder's variance (var = 2 b^2 = 0.3)
    torch.manual_seed(0)
    draws = plain.sample_x(torch.zeros(20000, 2, dtype=torch.float64))
    resid = draws - plain.decode(torch.zeros(1, 2, dtype=torch.float64))
    assert_allclose(resid.var(0).detach().numpy(), 0.3, rtol=0.05)


def test_encoder_reads_the_mask():
    _, masked = _modules("gaussian")
    x = torch.zeros(1, 5, dtype=torch.float64)
    xm = x.clone()
    xm[0, 2] = float("nan")
    # a missing cell and an observed 0 (the mean) are not the same input
    assert not torch.equal(masked.encode(x)[0], masked.encode(xm)[0])
    assert masked.encoder.net[0].in_features == 10


def test_conditional_fill_is_the_gaussian_conditional_mean():
    rng = np.random.RandomState(0)
    A = rng.randn(4, 4)
    cov, mean = A @ A.T + np.eye(4), rng.randn(4)
    X = rng.randn(6, 4)
    X[0, [1, 3]] = X[1, [1, 3]] = X[2, 0] = np.nan  # rows 3-5 complete
    filled, _ = conditional_fill(
        torch.as_tensor(X), torch.as_tensor(mean), torch.as_tensor(np.linalg.inv(cov))
    )
    filled = filled.numpy()
    for row in range(6):
        m = np.isnan(X[row])
        o = ~m
        expect = X[row].copy()
        # E[x_m | x_o] = mean_m + cov_mo cov_oo^-1 (x_o - mean_o)
        expect[m] = mean[m] + cov[np.ix_(m, o)] @ np.linalg.solve(
            cov[np.ix_(o, o)], X[row, o] - mean[o]
        )
        assert_allclose(filled[row], expect, rtol=1e-10)
    # observed cells come back exactly, not through mean + (x - mean)
    observed = ~np.isnan(X)
    assert_array_equal(filled[observed], X[observed])
    # with the identity precision, missing cells get the mean
    plain, _ = conditional_fill(
        torch.as_tensor(X), torch.as_tensor(mean), torch.eye(4, dtype=torch.float64)
    )
    assert_allclose(plain.numpy(), np.where(np.isnan(X), mean, X))


def test_conditional_draws_follow_the_conditional_law():
    rng = np.random.RandomState(1)
    A = rng.randn(4, 4)
    cov, mean = A @ A.T + np.eye(4), rng.randn(4)
    X = rng.multivariate_normal(mean, cov, size=20000)
    m, o = np.array([False, True, False, True]), np.array([True, False, True, False])
    Xm = X.copy()
    Xm[:, m] = np.nan
    Xm[:5, 0] = np.nan  # a second pattern
    prec = np.linalg.inv(cov)
    args = torch.as_tensor(Xm), torch.as_tensor(mean), torch.as_tensor(prec)
    means, _ = conditional_fill(*args)
    gen = torch.Generator().manual_seed(0)
    draws, _ = conditional_fill(*args, generator=gen)
    means, draws = means.numpy(), draws.numpy()
    assert_array_equal(draws[~np.isnan(Xm)], Xm[~np.isnan(Xm)])
    assert not np.isnan(draws).any()
    # draws minus conditional means: centred, with the conditional covariance
    # cov_mm - cov_mo cov_oo^-1 cov_om (the means alone have none)
    resid = (draws - means)[5:][:, m]
    cond_cov = cov[np.ix_(m, m)] - cov[np.ix_(m, o)] @ np.linalg.solve(
        cov[np.ix_(o, o)], cov[np.ix_(o, m)]
    )
    assert_allclose(resid.mean(0), 0.0, atol=0.05)
    assert_allclose(np.cov(resid.T), cond_cov, rtol=0.05, atol=0.02)
    # so the filled columns keep the data's spread
    assert_allclose(draws[:, m].var(0), np.diag(cov)[m], rtol=0.05)
    # the same generator state, the same draws
    again, _ = conditional_fill(*args, generator=torch.Generator().manual_seed(0))
    assert_array_equal(again.numpy(), draws)


def test_the_flow_start_reads_conditional_draws(wide_data, monkeypatch):
    import skivae._start as start

    X, u, _ = wide_data
    Xm, missing = _remove_cells(X, 0.3)
    seen = []
    real = start.flow_sources

    def spy(filled, *args, **kwargs):
        seen.append(filled.clone())
        return real(filled, *args, **kwargs)

    monkeypatch.setattr(start, "flow_sources", spy)
    est = IdentifiableVAE(2, init="flow", **FAST).fit(Xm, u)
    assert len(seen) == 1
    filled = seen[0].double().numpy()
    assert not np.isnan(filled).any()
    # the flow's rows: standardised X, observed cells as they are
    Z = (Xm - np.nanmean(Xm, 0)) / np.nanstd(Xm, 0)
    assert_allclose(filled[~missing], Z[~missing], rtol=1e-5, atol=1e-6)
    # missing cells drawn, not the encoder's conditional means: the spread of
    # the standardised data is kept (means would shrink it)
    with torch.no_grad():
        means = est.module_.fill_missing(torch.as_tensor(Z, dtype=torch.float32))
    gap = np.abs(filled[missing] - means.double().numpy()[missing])
    assert np.median(gap) > 0.05
    assert_allclose(filled.var(0), 1.0, atol=0.15)
    means = means.double().numpy()
    for j in range(X.shape[1]):
        rows = missing[:, j]
        assert filled[rows, j].var() > means[rows, j].var()


def test_gaussian_stats_recover_the_covariance_under_missing_cells():
    rng = np.random.RandomState(0)
    A = rng.randn(3, 3)
    cov = A @ A.T + 0.5 * np.eye(3)
    X = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=20000)
    Xm, _ = _remove_cells(X, 0.3)
    mean, prec = gaussian_stats(torch.as_tensor(Xm))
    assert_allclose(mean.numpy(), [1.0, -2.0, 0.5], atol=0.05)
    assert_allclose(np.linalg.inv(prec.numpy()), cov, atol=0.1 * np.abs(cov).max())
    # filling with the observed means and their covariance alone shrinks it
    naive = np.cov(np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm).T)
    assert np.abs(naive - cov).max() > 0.2 * np.abs(cov).max()


# ---------------------------------------------------------------- estimators
def test_masked_fit_transform_score_and_imputation(wide_data):
    X, u, _ = wide_data
    Xm, missing = _remove_cells(X, 0.2)
    est = IdentifiableVAE(
        2, max_iter=10, hidden_layer_sizes=(32, 32), random_state=0
    ).fit(Xm, u)
    assert est.masked_ and est.__sklearn_tags__().input_tags.allow_nan
    # the encoder fills missing cells from a Gaussian fitted to the training X
    mean, prec = gaussian_stats(torch.as_tensor(est._scale_x(Xm)))
    assert_allclose(est.module_.fill_prec.double().numpy(), prec.numpy(), rtol=1e-5)
    assert_allclose(est.module_.fill_mean.double().numpy(), mean.numpy(), atol=1e-6)
    # standardisation over the observed cells
    assert_allclose(est._x_mean, np.nanmean(Xm, axis=0))
    Z = est.transform(Xm)
    assert np.isfinite(Z).all()
    scores = est.score_samples(Xm, u)
    assert np.isfinite(scores).all()
    # a row's latents do not depend on the other rows of the batch
    assert_allclose(est.transform(Xm[5:9]), Z[5:9], rtol=1e-10, atol=1e-12)
    Xhat = est.inverse_transform(Z)
    assert np.isfinite(Xhat).all()
    Ximp = np.where(np.isnan(Xm), Xhat, Xm)
    assert_array_equal(Ximp[~missing], X[~missing])
    sd = X.std(axis=0)
    rmse = np.sqrt(np.mean(((Ximp - X) / sd)[missing] ** 2))
    mean_rmse = np.sqrt(np.mean(((np.nanmean(Xm, axis=0) - X) / sd)[missing] ** 2))
    # 2 sources behind 6 features: the other cells predict a missing one
    assert rmse < 0.7 * mean_rmse


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_constant_column_is_imputed_and_sampled_as_its_value(
    wide_data, likelihood, tmp_path
):
    # A column constant in training carries no information; its decoder mean
    # is only near the constant (3.63-3.76 for 3.7 before 0.7.1), so imputing
    # or sampling it must give the training value itself.
    X, u, _ = wide_data
    X, u = X[:400], u[:400]
    value = 3.7
    if likelihood == "bernoulli":
        X, value = (X > 0).astype(float), 1.0
    X = np.column_stack([X, np.full(len(X), value)])
    Xm, missing = _remove_cells(X, 0.2)
    Xm[:, 0] = X[:, 0]  # (no row entirely missing)
    est = IdentifiableVAE(2, likelihood=likelihood, **FAST).fit(Xm, u)
    Xhat = est.inverse_transform(est.transform(Xm))
    assert_array_equal(Xhat[:, -1], value)
    assert not np.allclose(Xhat[:, 0], Xhat[0, 0])  # the others still vary
    Xs, _ = est.sample(50, u=u[0], random_state=0)
    assert_array_equal(Xs[:, -1], value)
    est.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert_array_equal(again.inverse_transform(est.transform(Xm))[:, -1], value)


def test_score_counts_the_observed_cells_only(wide_data):
    X, u, _ = wide_data
    Xm, _ = _remove_cells(X[:400], 0.3)
    est = IdentifiableVAE(2, **FAST).fit(Xm, u[:400])
    full = est.score_samples(X[:400], u[:400])
    part = est.score_samples(Xm, u[:400])
    complete = ~np.isnan(Xm).any(axis=1)
    assert_allclose(part[complete], full[complete])
    assert np.isfinite(part).all() and not np.allclose(part, full)
    # the change of scale counts each row's observed cells only: the same
    # fit on 2 X (identical once standardised) scores log 2 lower per cell
    twice = IdentifiableVAE(2, **FAST).fit(2 * Xm, u[:400])
    n_observed = (~np.isnan(Xm)).sum(axis=1)
    assert_allclose(twice.score_samples(2 * Xm, u[:400]), part - np.log(2) * n_observed)


def test_nonlinear_ica_ivae_takes_missing_cells(segment_data):
    X, u, _ = segment_data
    Xm, _ = _remove_cells(X, 0.1)
    est = NonlinearICA(method="ivae", **FAST).fit(Xm, u)
    assert est.masked_ and est.__sklearn_tags__().input_tags.allow_nan
    # the encoder fills missing cells from a Gaussian fitted to the training X
    mean, prec = gaussian_stats(torch.as_tensor(est._scale_x(Xm)))
    assert_allclose(est.module_.fill_prec.double().numpy(), prec.numpy(), rtol=1e-5)
    assert_allclose(est.module_.fill_mean.double().numpy(), mean.numpy(), atol=1e-6)
    assert np.isfinite(est.transform(Xm)).all()


@pytest.mark.parametrize("method", ["flow", "tcl", "gcl"])
def test_methods_that_need_complete_rows_name_the_remedy(segment_data, method):
    X, u, _ = segment_data
    Xm, _ = _remove_cells(X, 0.1)
    est = NonlinearICA(method=method, **FAST)
    assert not est.__sklearn_tags__().input_tags.allow_nan
    with pytest.raises(ValueError, match=r"NaN.*method='ivae'.*imputer"):
        est.fit(Xm, u)
    est.fit(X, u)
    with pytest.raises(ValueError, match="NaN"):
        est.transform(Xm)
    # an imputer in a Pipeline is the documented way
    pipe = make_pipeline(SimpleImputer(), NonlinearICA(method=method, **FAST))
    assert pipe.fit_transform(Xm, u).shape == (X.shape[0], 2)


def test_rows_and_columns_without_observed_cells_are_refused(segment_data):
    X, u, _ = segment_data
    Xm = X.copy()
    Xm[3] = np.nan
    with pytest.raises(ValueError, match="row.*all missing.*row 3"):
        IdentifiableVAE(**FAST).fit(Xm, u)
    Xm = X.copy()
    Xm[:, 1] = np.nan
    with pytest.raises(ValueError, match="column.*no observed value"):
        IdentifiableVAE(**FAST).fit(Xm, u)
    Xm, _ = _remove_cells(X, 0.2)
    est = IdentifiableVAE(**FAST).fit(Xm, u)
    Xt = X[:4].copy()
    Xt[2] = np.nan
    with pytest.raises(ValueError, match="all missing"):
        est.transform(Xt)
    # A warm start knows every column from its first fit (its scale too): a
    # batch in which one column is never observed continues the model.
    Xc = Xm.copy()
    Xc[:, 1] = np.nan
    keep = ~np.isnan(Xc).all(axis=1)
    est.set_params(warm_start=True).fit(Xc[keep], u[keep])
    assert len(est.loss_curve_) == 2 * FAST["max_iter"]


def test_a_model_fitted_on_complete_data_refuses_partial_rows(segment_data):
    X, u, _ = segment_data
    Xm, _ = _remove_cells(X, 0.1)
    est = IdentifiableVAE(**FAST).fit(X, u)
    assert not est.masked_
    with pytest.raises(ValueError, match="fitted on complete X.*Refit"):
        est.transform(Xm)
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="warm_start=True.*complete X"):
        est.fit(Xm, u)
    assert not est.masked_


def test_infinity_and_missing_u_stay_errors(segment_data):
    X, u, _ = segment_data
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        IdentifiableVAE(**FAST).fit(Xi, u)
    un = u.astype(float)
    un[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        IdentifiableVAE(**FAST).fit(X, un)


def test_masked_model_survives_save_and_load(segment_data, tmp_path):
    X, u, _ = segment_data
    Xm, _ = _remove_cells(X, 0.2)
    est = IdentifiableVAE(likelihood="laplace", **FAST).fit(Xm, u)
    est.save(tmp_path / "m.skivae")
    back = load(tmp_path / "m.skivae")
    assert back.masked_
    assert_array_equal(back.transform(Xm), est.transform(Xm))
    assert_array_equal(back.score_samples(Xm, u), est.score_samples(Xm, u))
    twin = copy.deepcopy(est)
    assert_array_equal(twin.transform(Xm), est.transform(Xm))


def test_laplace_estimator_fits_scores_and_samples(segment_data):
    X, u, _ = segment_data
    est = IdentifiableVAE(likelihood="laplace", **FAST).fit(X, u)
    assert est.init_ == "flow"
    assert np.isfinite(est.score(X, u))
    Xs, Zs = est.sample(50, random_state=0)
    assert Xs.shape == (50, 2) and np.isfinite(Xs).all()
    with pytest.raises(ValueError, match="binary"):
        IdentifiableVAE(likelihood="bernoulli", input_noise=0.1, **FAST).fit(
            (X > 0).astype(float), u
        )
