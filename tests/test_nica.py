"""Behaviour of NonlinearICA: API contract, errors, determinism, recovery."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from skivae import IdentifiabilityWarning, IdentifiableVAE, NonlinearICA
from skivae.datasets import make_continuous_aux_sources, make_nonstationary_sources
from skivae.metrics import mean_corr_coef

METHODS = ["flow", "ivae", "tcl", "gcl"]
CONTRASTIVE = ["tcl", "gcl"]
FAST = dict(max_iter=3, hidden_layer_sizes=(16,), random_state=0)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fit(X, u, **kw):
    return NonlinearICA(**{**FAST, **kw}).fit(X, u)


def _abs_corr(A, B):
    """|Pearson correlation| between the columns of A (rows) and B (columns)."""
    k = A.shape[1]
    return np.abs(np.corrcoef(A.T, B.T)[:k, k:])


def _magnitude_mcc(S, Z):
    """MCC between ``|s|`` and the estimates, whatever way each one is folded.

    With zero-mean sources whose scale depends on ``u``, contrastive methods
    only identify ``|s_i|``: an estimated component may be a folded map of
    its source (correlated with ``|s_i|``) or an unfolded one (then ``|z|``
    is correlated with ``|s_i|``). Each pair is scored by the better of the
    two, then components are matched one to one.
    """
    A = np.abs(S)
    C = np.maximum(_abs_corr(A, Z), _abs_corr(A, np.abs(Z)))
    rows, cols = linear_sum_assignment(C, maximize=True)
    return float(C[rows, cols].mean())


def _mean_modulated_sources(n_segments, n_per_segment, n_sources, random_state):
    """Gaussian sources whose mean and scale change across segments.

    Mixed by a two-layer MLP (leaky ReLU between the layers). A
    ``u``-dependent mean makes ``p(s | u)`` asymmetric, so the sign of each
    source is identified too.
    """
    rng = np.random.RandomState(random_state)
    mean = rng.uniform(-2, 2, (n_segments, n_sources))
    scale = rng.uniform(0.5, 2, (n_segments, n_sources))
    u = np.repeat(np.arange(n_segments), n_per_segment)
    S = mean[u] + scale[u] * rng.standard_normal((len(u), n_sources))
    X = S
    for layer in range(2):
        A = rng.uniform(-1, 1, (n_sources, n_sources))
        X = X @ (A / np.linalg.norm(A, axis=0))
        if layer == 0:
            X = np.where(X > 0, X, 0.2 * X)
    return X, u, S


# --------------------------------------------------------------------- basics
@pytest.mark.parametrize("method", METHODS)
def test_fit_transform_shapes_and_attributes(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    Z = est.transform(X)
    assert Z.shape == (X.shape[0], 2)
    assert Z.dtype == np.float64
    assert est.n_components_ == 2
    assert est.n_features_in_ == 2
    assert est.u_type_ == "categorical"
    assert est.n_aux_ == 12
    assert_array_equal(est.aux_classes_, np.arange(12))
    assert len(est.loss_curve_) == est.n_iter_ == 3
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.device_ == torch.device("cpu")
    assert not est.module_.training


@pytest.mark.parametrize("method", METHODS)
def test_transform_is_standardized_on_training_data(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    Z = est.transform(X)
    assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    assert_allclose(Z.std(axis=0), 1.0, rtol=1e-6)
    # Other data is mapped with the training statistics, not its own.
    Z_half = est.transform(X[: len(X) // 2])
    assert_allclose(Z_half, Z[: len(X) // 2], rtol=1e-6, atol=1e-6)
    assert not np.allclose(Z_half.std(axis=0), 1.0, rtol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_transform_does_not_need_u_and_is_deterministic(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    assert_array_equal(est.transform(X), est.transform(X))
    assert_allclose(est.fit_transform(X, u), est.transform(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["ivae", "tcl", "gcl"])
def test_n_components_defaults_to_n_features_and_may_be_smaller(method):
    X, u, _ = make_nonstationary_sources(
        8, 40, 2, n_features=3, n_layers=1, random_state=0
    )
    est = _fit(X, u, method=method)
    assert est.n_components_ == 3
    assert est.transform(X).shape == (len(X), 3)
    est = _fit(X, u, method=method, n_components=1)
    assert est.n_components_ == 1
    Z = est.transform(X)
    assert Z.shape == (len(X), 1)
    assert list(est.get_feature_names_out()) == ["nica0"]


@pytest.mark.parametrize("method", METHODS)
def test_feature_names_and_pandas_output(segment_data, method):
    pd = pytest.importorskip("pandas")
    X, u, _ = segment_data
    df = pd.DataFrame(X, columns=["a", "b"])
    est = _fit(df, u, method=method)
    assert list(est.get_feature_names_out()) == ["nica0", "nica1"]
    assert_array_equal(est.feature_names_in_, ["a", "b"])
    est.set_output(transform="pandas")
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["nica0", "nica1"]
    assert_allclose(out.to_numpy(), est.set_output(transform="default").transform(df))


@pytest.mark.parametrize("method", METHODS)
def test_float32_is_preserved(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X.astype(np.float32), u, method=method)
    Z = est.transform(X.astype(np.float32))
    assert Z.dtype == np.float32
    assert est.transform(X).dtype == np.float64
    if method == "ivae":
        assert est.inverse_transform(Z).dtype == np.float32


@pytest.mark.parametrize("method", METHODS)
def test_clone_and_pickle(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(clone(est), "module_")
    est2 = pickle.loads(pickle.dumps(est))
    assert_array_equal(est.transform(X), est2.transform(X))
    if method != "ivae":
        assert est.score(X, u) == est2.score(X, u)


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result_other_seed_differs(segment_data, method):
    X, u, _ = segment_data
    Z1 = _fit(X, u, method=method).transform(X)
    Z2 = _fit(X, u, method=method).transform(X)
    Z3 = _fit(X, u, method=method, random_state=1).transform(X)
    assert_array_equal(Z1, Z2)
    assert not np.allclose(Z1, Z3)


@pytest.mark.parametrize("method", METHODS)
def test_fit_leaves_global_torch_rng_alone(segment_data, method):
    X, u, _ = segment_data
    state = torch.get_rng_state()
    _fit(X, u, method=method)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("method", METHODS)
def test_fit_whatever_torchs_default_dtype_and_grad_mode(segment_data, method):
    # A float64 default dtype (a user's choice) and a caller's no_grad or
    # inference_mode block: the fit is the same, and torch's state comes back.
    X, u, _ = segment_data
    Z = _fit(X, u, method=method).transform(X)
    torch.set_default_dtype(torch.float64)
    try:
        assert_array_equal(_fit(X, u, method=method).transform(X), Z)
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    for block in (torch.no_grad, torch.inference_mode):
        with block():
            assert_array_equal(_fit(X, u, method=method).transform(X), Z)
            assert not torch.is_grad_enabled()


@pytest.mark.parametrize("method", METHODS)
def test_string_labels_work_like_integers(segment_data, method):
    X, u, _ = segment_data
    labels = np.array([f"seg{i:02d}" for i in u])
    est = _fit(X, labels, method=method)
    assert_allclose(_fit(X, u, method=method).transform(X), est.transform(X), atol=1e-6)
    assert np.isfinite(est.score(X, labels))


def test_ica_is_fitted_fastica_for_tcl_only(segment_data):
    X, u, _ = segment_data
    tcl = _fit(X, u, method="tcl", features="mlp")
    assert isinstance(tcl.ica_, FastICA)
    check_is_fitted(tcl.ica_)
    assert tcl.ica_.components_.shape == (2, 2)
    assert tcl.ica_.whiten == "unit-variance"
    for method in ("ivae", "gcl"):
        assert _fit(X, u, method=method).ica_ is None
    # The invertible features (the default on square data) need no FastICA.
    assert _fit(X, u, method="tcl").ica_ is None


# ------------------------------------------------------------------ u rules
@pytest.mark.parametrize("method", METHODS)
def test_u_is_required(segment_data, method):
    X, _, _ = segment_data
    est = NonlinearICA(method=method, **FAST)
    with pytest.raises(ValueError, match="not identifiable"):
        est.fit(X)
    with pytest.raises(ValueError, match="not identifiable"):
        est.fit(X, None)
    with pytest.raises(ValueError, match="not identifiable"):
        est.fit_transform(X)
    assert not hasattr(est, "module_")


def test_tags_say_u_is_required():
    assert sklearn.utils.get_tags(NonlinearICA()).target_tags.required is True
    tags = sklearn.utils.get_tags(NonlinearICA(method="gcl"))
    assert tags.transformer_tags.preserves_dtype == ["float64", "float32"]


def test_tcl_rejects_continuous_u(segment_data):
    X, _, _ = segment_data
    u = np.random.RandomState(0).rand(len(X))
    with pytest.raises(ValueError, match="method='tcl' needs a categorical u"):
        _fit(X, u, method="tcl", u_type="continuous")
    # Several covariates: the message points away from TCL, not back to it.
    U = np.random.RandomState(0).rand(len(X), 2)
    with pytest.raises(ValueError, match="method='tcl' takes labels only"):
        _fit(X, U, method="tcl")


def test_tcl_reads_float_labels_as_categories(segment_data):
    X, u, _ = segment_data
    est = _fit(X, u.astype(float), method="tcl")
    assert est.u_type_ == "categorical"
    assert_array_equal(est.aux_classes_, np.arange(12.0))
    # GCL, like IdentifiableVAE, reads whole-number floats as a covariate.
    with pytest.warns(UserWarning, match="whole numbers"):
        est = _fit(X, u.astype(float), method="gcl")
    assert est.u_type_ == "continuous"


@pytest.mark.parametrize("method", METHODS)
def test_single_valued_u_raises(segment_data, method):
    X, _, _ = segment_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        with pytest.raises(ValueError, match="single value"):
            _fit(X, np.zeros(len(X), dtype=int), method=method)
        if method != "tcl":  # a constant covariate (was fitted, as the docs said not)
            with pytest.raises(ValueError, match="single value"):
                _fit(X, np.full((len(X), 2), 0.5), method=method)


def test_tcl_features_without_variance_raise_clearly():
    # Constant X: FastICA's whitening met a zero variance and scipy raised
    # "array must not contain infs or NaNs".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="does not vary over X"):
            NonlinearICA(method="tcl", features="mlp", max_iter=2).fit(
                np.ones((50, 2)), np.repeat(range(5), 10)
            )


@pytest.mark.parametrize("method", ["flow", "ivae", "gcl"])
def test_continuous_u(method):
    X, u, _ = make_continuous_aux_sources(600, 2, n_layers=1, random_state=0)
    est = _fit(X, u, method=method)
    assert est.u_type_ == "continuous" and est.n_aux_ == 1
    assert est.aux_classes_ is None
    Z = est.transform(X)
    assert Z.shape == (600, 2)
    assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    with pytest.raises(ValueError, match="columns"):
        est.score(X, np.c_[u, u])


@pytest.mark.parametrize("method", ["ivae", "gcl"])
def test_score_with_continuous_u_prefers_the_true_u(method):
    """The score of a model fitted with continuous u is higher with each
    row's own u than with the u of other rows (a score that ignored u, or
    read it with the wrong encoding, would not tell them apart), and higher
    after training than before."""
    X, u, _ = make_continuous_aux_sources(600, 2, n_layers=1, random_state=0)
    est = _fit(X, u, method=method, max_iter=10)
    shuffled = np.random.RandomState(0).permutation(u)
    assert est.score(X, u) > est.score(X, shuffled) + 0.01
    untrained = _fit(X, u, method=method, max_iter=1, learning_rate_init=1e-9)
    assert est.score(X, u) > untrained.score(X, u)


# ---------------------------------------------------------- inverse_transform
def test_inverse_transform_reconstructs_for_ivae(segment_data):
    X, u, _ = segment_data
    est = _fit(X, u, method="ivae", max_iter=30, hidden_layer_sizes=(32, 32))
    X_rec = est.inverse_transform(est.transform(X))
    assert X_rec.shape == X.shape
    # Reconstruction beats predicting the mean by a wide margin.
    assert np.mean((X - X_rec) ** 2) < 0.1 * np.mean((X - X.mean(0)) ** 2)
    with pytest.raises(ValueError, match="columns"):
        est.inverse_transform(np.zeros((3, 3)))


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_inverse_transform_and_sample_need_a_generative_model(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    with pytest.raises(ValueError, match=f"method='{method}' does not learn"):
        est.inverse_transform(est.transform(X))
    with pytest.raises(ValueError, match="use method='flow' or method='ivae'"):
        est.sample(3)


# ---------------------------------------------------------------------- score
@pytest.mark.parametrize("method", METHODS)
def test_score_is_finite_and_deterministic(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    score = est.score(X, u)
    assert isinstance(score, float)
    assert np.isfinite(score)
    assert est.score(X, u) == score


@pytest.mark.parametrize("method", METHODS)
def test_score_is_a_mean_over_rows_scored_independently(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    # Scoring the rows in two parts (even a single row) gives the same mean:
    # each row's term depends on that row only (GCL's negatives included).
    k = 1
    parts = k * est.score(X[:k], u[:k]) + (len(X) - k) * est.score(X[k:], u[k:])
    assert parts / len(X) == pytest.approx(est.score(X, u), rel=1e-9)
    order = np.random.RandomState(0).permutation(len(X))
    assert est.score(X[order], u[order]) == pytest.approx(est.score(X, u), rel=1e-9)


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_contrastive_score_needs_u(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    with pytest.raises(ValueError, match="needs u"):
        est.score(X)


def test_ivae_method_random_start_is_the_identifiable_vae_s(segment_data):
    X, u, _ = segment_data
    est = _fit(X, u, method="ivae", init="random")
    ivae = IdentifiableVAE(init="random", **FAST).fit(X, u)
    assert est.init_ == "random"
    Z = ivae.transform(X)
    assert_allclose(est.transform(X), (Z - Z.mean(0)) / Z.std(0), atol=1e-10)
    assert _fit(X, u, method="gcl", features="mlp").init_ == "random"
    assert _fit(X, u, method="flow").init_ is None


def test_ivae_method_is_the_identifiable_vae(segment_data):
    X, u, _ = segment_data
    est = _fit(X, u, method="ivae")
    # The same model, start (the flow) and training as IdentifiableVAE's.
    ivae = IdentifiableVAE(**FAST).fit(X, u)
    assert est.init_ == ivae.init_ == "flow"
    # Same model, same training: the sources are the iVAE's latents,
    # standardised, and the scores are the iVAE's ELBOs.
    Z = ivae.transform(X)
    assert_allclose(est.transform(X), (Z - Z.mean(0)) / Z.std(0), atol=1e-10)
    assert est.score(X, u) == ivae.score(X, u)
    # Without u, the marginal prior.
    assert est.score(X) == ivae.score(X)
    assert est.score(X) < est.score(X, u)


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_score_prefers_true_u_to_shuffled_u(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method, max_iter=15, hidden_layer_sizes=(32, 32))
    u_shuffled = np.random.RandomState(0).permutation(u)
    assert est.score(X, u) > est.score(X, u_shuffled) + 0.05
    # Training raised the objective above the untrained network's.
    untrained = _fit(X, u, method=method, max_iter=1, hidden_layer_sizes=(32, 32))
    assert est.score(X, u) > untrained.score(X, u)


def test_tcl_score_is_mean_log_probability_of_true_segment(segment_data):
    X, u, _ = segment_data
    est = _fit(X, u, method="tcl")
    score = est.score(X, u)
    assert score < 0.0
    # A trained-for-3-epochs classifier is already better than chance.
    assert score > -np.log(12)


def test_gcl_score_is_minus_a_logistic_loss(segment_data):
    X, u, _ = segment_data
    # One epoch from a zero start: near chance, a loss of about 2 log 2.
    est = _fit(X, u, method="gcl", max_iter=1, learning_rate_init=1e-5)
    assert est.score(X, u) == pytest.approx(-2 * np.log(2), abs=0.05)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("method", [m for m in METHODS if m != "ivae"])
def test_nan_in_X_raises(segment_data, method):
    # method="ivae" trains on the observed cells (tests/test_missing.py)
    X, u, _ = segment_data
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN.*method='ivae'"):
        _fit(X, u, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_length_mismatch_raises(segment_data, method):
    X, u, _ = segment_data
    with pytest.raises(ValueError, match="u has .* entries but X has"):
        _fit(X, u[:-1], method=method)


@pytest.mark.parametrize("method", METHODS)
def test_wrong_feature_count_at_transform_and_score(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    with pytest.raises(ValueError, match="features"):
        est.transform(np.c_[X, X])
    with pytest.raises(ValueError, match="features"):
        est.score(np.c_[X, X], u)


@pytest.mark.parametrize("method", METHODS)
def test_unseen_category_at_score(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method)
    bad = u.copy()
    bad[0] = 99
    with pytest.raises(ValueError, match="not seen during fit"):
        est.score(X, bad)


@pytest.mark.parametrize("method", METHODS)
def test_too_many_components_raises(segment_data, method):
    X, u, _ = segment_data
    with pytest.raises(ValueError, match="n_components=3 must be <= n_features=2"):
        _fit(X, u, method=method, n_components=3)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"method": "pca"}, "method"),
        ({"n_components": 0}, "n_components"),
        ({"prior": "cauchy"}, "prior"),
        ({"u_type": "ordinal"}, "u_type"),
        ({"max_iter": 0}, "max_iter"),
        ({"activation": "softsign"}, "activation"),
        ({"hidden_layer_sizes": (8, -1)}, "hidden_layer_sizes"),
        ({"method": "gcl", "hidden_layer_sizes": (8, -1)}, "hidden_layer_sizes"),
        ({"method": "tcl", "validation_fraction": 1.0}, "validation_fraction"),
        ({"flow_depth": True}, "flow_depth must be an integer, not a bool"),
        ({"spline_bound": True}, "spline_bound must be a number, not a bool"),
        ({"method": "tcl", "n_init": True}, "n_init must be an integer, not a bool"),
    ],
)
def test_impossible_parameters_raise(segment_data, params, match):
    X, u, _ = segment_data
    with pytest.raises(ValueError, match=match):
        _fit(X, u, **params)


# -------------------------------------------------------- training machinery
@pytest.mark.parametrize("method", METHODS)
def test_early_stopping_fills_validation_scores(segment_data, method):
    X, u, _ = segment_data
    est = _fit(
        X,
        u,
        method=method,
        early_stopping=True,
        max_iter=40,
        n_iter_no_change=2,
        tol=0.5,
    )
    assert est.n_iter_ < 40
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert np.all(np.isfinite(est.validation_scores_))


@pytest.mark.parametrize("method", ["ivae", *CONTRASTIVE])
def test_early_stopping_still_standardizes_on_all_of_X(segment_data, method):
    X, u, _ = segment_data
    est = _fit(X, u, method=method, early_stopping=True)
    Z = est.transform(X)
    assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    assert_allclose(Z.std(axis=0), 1.0, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_convergence_warning_at_max_iter(segment_data, method):
    X, u, _ = segment_data
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        NonlinearICA(method=method, **FAST).fit(X, u)


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_verbose_shows_progress(segment_data, capsys, method):
    X, u, _ = segment_data
    _fit(X, u, method=method, verbose=1)
    err = capsys.readouterr().err
    assert "NonlinearICA" in err and "loss" in err and "epoch" in err


def test_verbose_shows_progress_for_ivae(segment_data, capsys):
    X, u, _ = segment_data
    _fit(X, u, method="ivae", verbose=1)
    assert "loss" in capsys.readouterr().err


def test_quiet_by_default(segment_data, capsys):
    X, u, _ = segment_data
    _fit(X, u, method="gcl")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_pipeline_and_grid_search_over_method(segment_data):
    X, u, _ = segment_data
    pipe = make_pipeline(StandardScaler(), NonlinearICA(method="gcl", **FAST))
    Z = pipe.fit(X, u).transform(X)
    assert Z.shape == (X.shape[0], 2)
    assert_allclose(Z.mean(axis=0), 0.0, atol=1e-8)
    # Segments are contiguous: folds must be shuffled so each holds every segment.
    search = GridSearchCV(
        NonlinearICA(**FAST),
        {"method": METHODS},
        cv=KFold(2, shuffle=True, random_state=0),
    )
    search.fit(X, u)  # default scoring: each method's own held-out objective
    assert search.best_params_["method"] in METHODS
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.transform(X).shape == (X.shape[0], 2)


# ------------------------------------------------------------------- recovery
def test_tcl_recovers_source_magnitudes():
    """TCL estimates ``|s|`` (its features are ``|h(x)|``), 2-layer mixing.

    Measured MCC(|S|, Z) with data seeds 0-3: 0.909, 0.958, 0.946, 0.952
    (untrained, max_iter=1: 0.49, 0.46, 0.51, 0.61).
    """
    X, u, S = make_nonstationary_sources(
        20, 300, 3, n_layers=2, source="laplace", random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = NonlinearICA(method="tcl", features="mlp", random_state=0).fit_transform(
            X, u
        )
        Z0 = NonlinearICA(
            method="tcl", features="mlp", max_iter=1, random_state=0
        ).fit_transform(X, u)
    mcc = mean_corr_coef(np.abs(S), Z)
    assert mcc >= 0.85
    assert mean_corr_coef(np.abs(S), Z0) < 0.7
    # TCL does not identify the sign: s itself is not recovered.
    assert mean_corr_coef(S, Z) < 0.5


def test_gcl_recovers_source_magnitudes():
    """GCL on zero-mean, variance-modulated sources identifies ``|s|``.

    Measured magnitude MCC with data seeds 0-3: 0.952, 0.949, 0.941, 0.941
    (untrained, max_iter=1: 0.59, 0.69, 0.60, 0.66).
    """
    X, u, S = make_nonstationary_sources(20, 300, 3, n_layers=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = NonlinearICA(
            method="gcl", features="mlp", max_iter=20, random_state=0
        ).fit_transform(X, u)
        Z0 = NonlinearICA(
            method="gcl", features="mlp", max_iter=1, random_state=0
        ).fit_transform(X, u)
    assert _magnitude_mcc(S, Z) >= 0.9
    assert _magnitude_mcc(S, Z0) < 0.7


def test_gcl_recovers_mean_modulated_sources_with_sign():
    """With u-dependent means GCL recovers s itself (strong MCC).

    Measured with data seeds 0-5, one restart: 0.996, 0.996, 0.970, 0.650,
    0.995, 0.579; with three restarts (``n_init=3``, the best GCL score
    kept): 0.996, 0.997, 0.970, 0.995, 0.996, 0.576. Seed 3 is the draw
    where a single restart stops in a poor optimum, so the test fails if the
    restarts are not ranked by the score; seed 5 stays at 0.58 with five
    restarts too (a hard mixing draw, not tested). Seed 0, where one
    restart suffices, is no longer run: the other GCL tests cover plain
    recovery.
    """
    X, u, S = _mean_modulated_sources(20, 300, 2, random_state=3)
    kw = dict(method="gcl", features="mlp", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = NonlinearICA(max_iter=20, n_init=3, **kw).fit_transform(X, u)
        Z0 = NonlinearICA(max_iter=1, **kw).fit_transform(X, u)
    mcc = mean_corr_coef(S, Z)
    assert mcc >= 0.9
    assert mcc > mean_corr_coef(S, Z0) + 0.2  # untrained: 0.75


def test_gcl_recovers_source_magnitudes_with_continuous_u():
    """Continuous u (smooth random log-scales), 2-layer mixing.

    Measured magnitude MCC with data seeds 0-3: 0.942, 0.920, 0.929, 0.929
    (untrained, max_iter=1: 0.70, 0.70, 0.58, 0.59).
    """
    X, u, S = make_continuous_aux_sources(6000, 2, n_layers=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = NonlinearICA(
            method="gcl", features="mlp", max_iter=20, random_state=0
        ).fit_transform(X, u)
        Z0 = NonlinearICA(
            method="gcl", features="mlp", max_iter=1, random_state=0
        ).fit_transform(X, u)
    assert _magnitude_mcc(S, Z) >= 0.85
    assert _magnitude_mcc(S, Z0) < 0.75


# ------------------------------------------------- invertible contrastive features
@pytest.mark.parametrize("method", CONTRASTIVE)
def test_flow_features_are_the_invertible_stack(segment_data, method):
    """features='flow' trains the flow's invertible network as ``h``: transform
    is ``h(x)`` itself (standardised), with no FastICA and no folding."""
    from skivae._core.flow import InvertibleMLP

    X, u, _ = segment_data
    est = _fit(X, u, method=method, features="flow", flow_depth=2)
    assert isinstance(est.module_.feature_net, InvertibleMLP)
    assert est.ica_ is None
    with torch.inference_mode():
        H = est.module_.feature_net.double()(
            torch.as_tensor(est._scale_x(X), dtype=torch.float64)
        ).numpy()
    assert_allclose(est.transform(X), (H - H.mean(0)) / H.std(0), atol=1e-6)
    # Not folded: some features take both signs around their median.
    assert np.all((H < np.median(H, axis=0)).mean(0) > 0.2)


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_flow_features_need_square_data(segment_data, method):
    X, u, _ = segment_data
    with pytest.raises(ValueError, match="features='flow' is invertible"):
        _fit(X, u, method=method, features="flow", n_components=1)


def test_tcl_with_flow_features_recovers_signed_sources():
    """TCL's MLP folds the signs (MCC against s is low, see above); with the
    invertible features the same objective gives s back, signed.

    Linear mixing of 2 Laplace sources. Measured with data seeds 0-2: 0.995,
    0.996, 0.513 (the MLP features: 0.03, 0.02, 0.07).
    """
    X, u, S = make_nonstationary_sources(
        20, 300, 2, n_layers=1, source="laplace", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = NonlinearICA(
            method="tcl",
            features="flow",
            init="random",  # the objective alone, not the flow's start
            flow_depth=2,
            max_iter=20,
            random_state=0,
        ).fit_transform(X, u)
    assert mean_corr_coef(S, Z) >= 0.9


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_auto_features_are_the_flow_on_square_data_and_the_mlp_otherwise(method):
    from skivae._core.flow import InvertibleMLP

    X, u, _ = make_nonstationary_sources(8, 40, 2, n_features=3, random_state=0)
    square = _fit(X, u, method=method)
    assert square.features_ == "flow"
    assert isinstance(square.module_.feature_net, InvertibleMLP)
    under = _fit(X, u, method=method, n_components=2)
    assert under.features_ == "mlp"
    assert not isinstance(under.module_.feature_net, InvertibleMLP)
    assert _fit(X, u, method=method, features="mlp").features_ == "mlp"
    assert _fit(X, u, method="flow").features_ is None


# ------------------------------------------- contrastive features from the flow
@pytest.mark.parametrize("method", CONTRASTIVE)
def test_contrastive_init_resolution_and_learning_rate(segment_data, method):
    X, u, _ = segment_data
    auto = _fit(X, u, method=method, learning_rate_init="auto")
    assert auto.features_ == "flow" and auto.init_ == "flow"
    assert auto.training_settings_["learning_rate_init"] == 1e-3
    rand = _fit(X, u, method=method, init="random", learning_rate_init="auto")
    assert rand.init_ == "random"
    assert rand.training_settings_["learning_rate_init"] == 1e-2
    # An explicit learning rate is kept after the flow start.
    kept = _fit(X, u, method=method, learning_rate_init=0.02)
    assert kept.init_ == "flow"
    assert kept.training_settings_["learning_rate_init"] == 0.02
    mlp = _fit(X, u, method=method, features="mlp")
    assert mlp.init_ == "random"
    with pytest.raises(ValueError, match="init='flow'.*features='flow'"):
        _fit(X, u, method=method, features="mlp", init="flow")


def test_tcl_classifier_starts_at_zero_after_the_flow():
    """zero_classifier: the first gradient leaves a started feature net alone
    (a random classifier would push it along random directions)."""
    from skivae._core.contrastive import TCLModule

    torch.manual_seed(0)
    x, u = torch.randn(64, 3), torch.randint(0, 4, (64,))
    for zero in (True, False):
        m = TCLModule(3, 3, 4, zero_classifier=zero)
        m.loss(x, u).mean().backward()
        grads = [p.grad.abs().max().item() for p in m.feature_net.parameters()]
        assert (max(grads) == 0) is zero


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_contrastive_flow_start_divergence_falls_back(
    segment_data, monkeypatch, method
):
    # The start module's seam: its short flow raises as a diverged one does.
    import skivae._start

    def diverge(*args, **kwargs):
        raise FloatingPointError("loss is nan")

    monkeypatch.setattr(skivae._start, "fit_short_flow", diverge)
    X, u, _ = segment_data
    with pytest.warns(UserWarning, match="initial flow diverged"):
        est = _fit(X, u, method=method)
    assert np.all(np.isfinite(est.transform(X)))


@pytest.mark.parametrize("method", CONTRASTIVE)
def test_contrastive_flow_start_recovers_signed_sources(method):
    """2-layer leaky-ReLU mixing of Laplace sources, square: the default (the
    invertible features started from a short flow) gives the signed s back;
    the same objective from a random start falls short.

    Measured with data seeds 0-3 (default / init='random', 15 epochs): TCL
    0.969, 0.963, 0.960, 0.961 / 0.768, 0.746, 0.648, 0.617; GCL 0.951,
    0.954, 0.952, 0.949 / 0.902, 0.900, 0.918, 0.914. The thresholds (0.9
    for TCL, 0.93 for GCL) lie between the two starts, so a start that did
    not help fails them without fitting the random start here.
    """
    X, u, S = make_nonstationary_sources(
        20,
        300,
        3,
        n_layers=2,
        activation="leaky_relu",
        source="laplace",
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = dict(method=method, max_iter=15, random_state=0)
        Z = NonlinearICA(**kw).fit_transform(X, u)
    assert mean_corr_coef(S, Z) >= {"tcl": 0.9, "gcl": 0.93}[method]


def test_set_params_method_after_fit_changes_the_next_fit_only(segment_data):
    # What inference offers and accepts is the fitted method's: score_samples
    # (available_if), missing cells, the errors' wording. Before, these read
    # the attribute, so set_params(method="tcl") hid score_samples of a
    # fitted flow and set_params(method="flow") refused the NaN a fitted
    # method="ivae" model transforms.
    X, u, _ = segment_data
    Xn = X.copy()
    Xn[0, 0] = np.nan
    kw = dict(max_iter=2, n_init=1, random_state=0)
    flow = NonlinearICA(method="flow", **kw).fit(X, u)
    scores = flow.score_samples(X, u)
    flow.set_params(method="tcl")
    assert hasattr(flow, "score_samples")
    assert_array_equal(flow.score_samples(X, u), scores)
    ivae = NonlinearICA(method="ivae", **kw).fit(Xn, u)
    Z = ivae.transform(Xn)
    ivae.set_params(method="flow")
    assert_array_equal(ivae.transform(Xn), Z)
    tcl = NonlinearICA(method="tcl", **kw).fit(X, u)
    tcl.set_params(method="flow")
    assert not hasattr(tcl, "score_samples")
    with pytest.raises(ValueError, match="method='tcl' does not learn"):
        tcl.inverse_transform(tcl.transform(X))
    with pytest.raises(
        ValueError, match=r"NonlinearICA\(method='tcl'\) needs complete"
    ):
        tcl.transform(Xn)
    # and the next fit is the new method's
    tcl.fit(X, u)
    assert hasattr(tcl, "score_samples")


@pytest.mark.parametrize("Estimator", [NonlinearICA, IdentifiableVAE])
def test_a_constant_column_counts_as_constant_whatever_its_value(Estimator):
    # The standard deviation of 0.3 repeated is about 6e-15, not 0: it was
    # used as the column's scale, which added ~33 nats per column to score
    # and sent transform to 1e13 when the column moved by 0.01.
    X, u, _ = make_nonstationary_sources(6, 60, 2, n_layers=1, random_state=0)
    kw = dict(max_iter=2, n_init=1, random_state=0)
    if Estimator is NonlinearICA:
        kw["method"] = "ivae"
    fits = []
    for value in (0.3, 5.0):
        Xc = np.column_stack([X, np.full(len(X), value)])
        assert np.std(Xc[:, 2]) > 0 or value == 5.0  # 360 rows of 0.3: ~6e-15
        est = Estimator(**kw).fit(Xc, u)
        assert est._x_scale[2] == 1.0
        moved = Xc.copy()
        moved[:, 2] += 0.01
        assert np.abs(est.transform(moved)).max() < 100
        fits.append(est.score(Xc, u))
    assert abs(fits[0] - fits[1]) < 1.0


def test_flow_warns_of_a_constant_column_where_the_ivae_does_not():
    # A square flow makes one source per column: a constant column fitted
    # without a word and spent a source on nothing.
    X, u, _ = make_nonstationary_sources(6, 60, 2, n_layers=1, random_state=0)
    Xc = np.column_stack([X, np.full(len(X), 3.7)])
    kw = dict(max_iter=2, n_init=1, random_state=0)
    with pytest.warns(UserWarning, match=r"X column\(s\) \[2\] are constant") as rec:
        NonlinearICA(**kw).fit(Xc, u)
    # it points at the caller's fit, not at skivae's internals
    assert any(w.filename == __file__ for w in rec if "constant" in str(w.message))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "X column", UserWarning)
        NonlinearICA(method="ivae", n_components=2, **kw).fit(Xc, u)
        NonlinearICA(**kw).fit(X, u)  # no constant column, no warning


def test_float32_x_is_standardised_in_float64():
    # float32 X scaled by 1e-25 has a float32 variance of 0: every column
    # was taken for constant and transform was constant.
    X, u, _ = make_nonstationary_sources(6, 50, 2, n_layers=1, random_state=0)
    kw = dict(method="ivae", max_iter=2, n_init=1, random_state=0)
    ref = NonlinearICA(**kw).fit(X, u)
    for c in (1e-25, 1e20):
        est = NonlinearICA(**kw).fit((c * X).astype(np.float32), u)
        assert_allclose(est._x_scale, c * ref._x_scale, rtol=1e-5)
        Z = est.transform((c * X).astype(np.float32))
        assert_allclose(Z.std(axis=0), 1.0, rtol=1e-3)


def test_tcl_with_mlp_features_needs_n_components_rows():
    # FastICA cut its components to the rows: transform returned fewer
    # columns than n_components_ and get_feature_names_out named.
    rng = np.random.RandomState(0)
    X, u = rng.normal(size=(8, 10)), np.repeat([0, 1], 4)
    est = NonlinearICA(method="tcl", features="mlp", **FAST)
    with pytest.raises(ValueError, match="more than n_components=10 rows; X has 8"):
        est.fit(X, u)
    with pytest.raises(ValueError, match="more than n_components=8 rows; X has 8"):
        est.set_params(n_components=8).fit(X, u)  # centred: rank 7
    est.set_params(n_components=4).fit(X, u)
    assert est.transform(X).shape == (8, 4)


def test_tcl_warns_when_fastica_does_not_converge(monkeypatch):
    # FastICA's ConvergenceWarning was silenced, so an arbitrary rotation
    # of the sources came back without a word.
    X, u, _ = make_nonstationary_sources(6, 50, 2, n_layers=1, random_state=0)
    est = NonlinearICA(method="tcl", features="mlp", **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.filterwarnings("ignore", "NonlinearICA did not converge")
        est.fit(X, u)  # converges
    original = FastICA.fit_transform

    def one_iteration(self, X, y=None):
        self.set_params(max_iter=1)
        return original(self, X, y)

    monkeypatch.setattr(FastICA, "fit_transform", one_iteration)
    with pytest.warns(ConvergenceWarning, match="FastICA did not converge in 1 ") as w:
        est.fit(X, u)
    # reported at the caller's fit, not inside scikit-learn's wrapper
    assert {r.filename for r in w if "FastICA" in str(r.message)} == {__file__}
