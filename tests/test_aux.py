"""The auxiliary-variable encoder: one fitted object reads u for fit, score, sample."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skivae import IdentifiableVAE, NonlinearICA
from skivae._aux import _AuxEncoder

pytestmark = [
    pytest.mark.filterwarnings("ignore:u has .* distinct values:UserWarning"),
    pytest.mark.filterwarnings("ignore::skivae.IdentifiabilityWarning"),
    pytest.mark.filterwarnings("ignore:.*got u=None:UserWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


def _rng(seed=0):
    return np.random.RandomState(seed)


def test_categorical_codes_classes_and_weights():
    u = np.array(["b", "a", "b", "c", "b", "a"])
    enc = _AuxEncoder()
    codes = enc.fit(u, 6, _rng())
    assert enc.u_type_ == "categorical"
    assert_array_equal(enc.classes_, ["a", "b", "c"])
    assert_array_equal(codes, [1, 0, 1, 2, 1, 0])
    assert codes.dtype == np.int64
    assert enc.n_aux_ == enc.n_distinct_ == 3
    assert_array_equal(enc.support_, [0, 1, 2])
    assert_allclose(np.exp(enc.log_weights_), [2 / 6, 3 / 6, 1 / 6])
    assert_array_equal(enc.transform(np.array(["c", "a"]), 2), [2, 0])


def test_a_constant_continuous_column_gets_scale_one():
    # 360 rows of 0.3 have a standard deviation of about 6e-15, not 0: it
    # was the column's scale, and a u that moved by 0.01 became 1e12.
    U = np.column_stack([_rng(1).normal(size=360), np.full(360, 0.3)])
    enc = _AuxEncoder(u_type="continuous")
    encoded = enc.fit(U, 360, _rng(0))
    assert enc.scale_[1] == 1.0 and np.abs(encoded[:, 1]).max() < 1e-12
    moved = U.copy()
    moved[:, 1] += 0.01
    assert_allclose(enc.transform(moved, 360)[:, 1], 0.01)


def test_continuous_u_too_large_to_standardise_raises():
    # its variance overflows: the scale was inf and the column encoded as 0
    U = np.column_stack([_rng(1).normal(size=50), np.r_[1e200, np.zeros(49)]])
    with pytest.raises(ValueError, match="u column 1 has values too large"):
        _AuxEncoder(u_type="continuous").fit(U, 50, _rng(0))


def test_categorical_transform_errors():
    enc = _AuxEncoder()
    enc.fit(np.array([0, 1, 2, 1]), 4, _rng())
    with pytest.raises(ValueError, match=r"not seen during fit: \[7\]"):
        enc.transform(np.array([0, 7]), 2)
    with pytest.raises(ValueError, match="u has 3 entries but X has 2 samples"):
        enc.transform(np.array([0, 1, 2]), 2)
    with pytest.raises(ValueError, match="must be 1-D"):
        enc.transform(np.zeros((2, 2), dtype=int), 2)
    with pytest.raises(ValueError, match=r"not seen during fit: \['a', 'b'\]"):
        enc.transform(np.array(["a", "b"]), 2)
    with pytest.raises(ValueError, match="u contains NaN"):
        enc.transform(np.array([0.0, np.nan]), 2)


def test_continuous_standardises_and_keeps_a_support():
    rng = _rng(1)
    U = rng.normal(3.0, 2.0, size=(1000, 2))
    enc = _AuxEncoder()
    encoded = enc.fit(U, 1000, _rng(0))
    assert enc.u_type_ == "continuous" and enc.classes_ is None
    assert enc.n_aux_ == 2 and enc.n_distinct_ == 1000
    assert_allclose(encoded.mean(0), 0, atol=1e-12)
    assert_allclose(encoded.std(0), 1)
    assert_allclose(enc.transform(U[:5], 5), encoded[:5])
    # 256 training rows, drawn with the fit's random state, uniform weights.
    assert enc.support_.shape == (256, 2)
    assert all((row == encoded).all(1).any() for row in enc.support_)
    assert_allclose(np.exp(enc.log_weights_).sum(), 1)
    again = _AuxEncoder()
    again.fit(U, 1000, _rng(0))
    assert_array_equal(again.support_, enc.support_)
    other = _AuxEncoder()
    other.fit(U, 1000, _rng(5))
    assert not np.array_equal(other.support_, enc.support_)


def test_continuous_transform_errors():
    enc = _AuxEncoder()
    enc.fit(np.random.RandomState(0).rand(10, 2), 10, _rng())
    with pytest.raises(ValueError, match="u has 1 columns but the model was fitted"):
        enc.transform(np.zeros((3, 1)), 3)
    with pytest.raises(ValueError, match="u has 4 rows but X has 3 samples"):
        enc.transform(np.zeros((4, 2)), 3)
    with pytest.raises(ValueError, match="u contains NaN or infinity; remove or"):
        enc.transform(np.array([[0.0, np.nan]]), 1)
    with pytest.raises(ValueError, match="u contains NaN or infinity; remove or"):
        enc.transform(np.array([[0.0, -np.inf]]), 1)
    with pytest.raises(ValueError, match="must be numeric"):
        enc.transform(np.array([["a", "b"]]), 1)


def test_u_type_rules():
    def read(u, u_type="auto"):
        enc = _AuxEncoder(u_type)
        enc.fit(u, len(u), _rng())
        return enc.u_type_

    assert read(np.array([1, 2, 1])) == "categorical"
    assert read(np.array([True, False, True])) == "categorical"
    assert read(np.array([0.3, 0.1, 0.2])) == "continuous"
    assert read(np.eye(3, dtype=int)[[0, 1, 2, 0]]) == "continuous"  # one-hot
    assert read(np.array([0.0, 1.0, 0.0]), "categorical") == "categorical"
    with pytest.warns(UserWarning, match="whole numbers"):
        assert read(np.array([0.0, 1.0, 0.0, 1.0])) == "continuous"
    with pytest.raises(ValueError, match="neither labels nor numbers"):
        read(np.array(["2020-01-01"], dtype="datetime64[D]"))


def test_estimators_use_one_fitted_encoder(segment_data):
    X, u, _ = segment_data
    est = IdentifiableVAE(max_iter=1, hidden_layer_sizes=(8,), random_state=0)
    est.fit(X, u)
    enc = est.aux_encoder_
    assert isinstance(enc, _AuxEncoder)
    assert est.u_type_ == enc.u_type_ == "categorical"
    assert est.aux_classes_ is enc.classes_ and est.n_aux_ == enc.n_aux_ == 12
    # The model scores without u against the encoder's support and weights.
    assert_array_equal(est.module_.aux_support.numpy(), enc.support_)
    assert_allclose(est.module_.aux_log_weights.numpy(), enc.log_weights_, rtol=1e-6)
    plain = IdentifiableVAE(max_iter=1, hidden_layer_sizes=(8,), random_state=0)
    with pytest.warns(UserWarning, match="NOT identifiable"):
        plain.fit(X)
    assert plain.aux_encoder_ is None
    assert (plain.u_type_, plain.aux_classes_, plain.n_aux_) == (None, None, 0)
    with pytest.warns(UserWarning, match="fitted without u"):
        plain.score(X, u)


def test_tcl_encoder_reads_labels():
    X = np.random.RandomState(0).randn(40, 2)
    u = np.repeat([0.0, 1.0, 2.0, 3.0], 10)
    est = NonlinearICA(method="tcl", max_iter=1, hidden_layer_sizes=(8,))
    est.fit(X, u)
    assert est.aux_encoder_.u_type == "categorical"
    assert est.u_type_ == "categorical"


# ------------------------------------------------------------ aux_transformer
def _coords_data(n=600, seed=0):
    rng = _rng(seed)
    coords = rng.uniform(size=(n, 2))
    log_std = np.c_[np.sin(3 * coords[:, 0]), np.cos(4 * coords[:, 1])]
    S = rng.standard_normal((n, 2)) * np.exp(log_std)
    X = np.c_[S[:, 0] + 0.5 * np.tanh(S[:, 1]), S[:, 1] - 0.3 * S[:, 0]]
    return X, coords


@pytest.mark.parametrize("Est", [IdentifiableVAE, NonlinearICA])
def test_aux_transformer_is_fitted_on_u_and_applied_wherever_u_is_given(Est):
    # The same model as one fitted by hand on the transformed u: a transformer
    # skipped in fit, score or sample would break one of the equalities.
    from sklearn.preprocessing import SplineTransformer

    X, coords = _coords_data()
    spline = SplineTransformer(n_knots=4)
    est = Est(aux_transformer=spline, max_iter=2, random_state=0).fit(X, coords)
    T = SplineTransformer(n_knots=4).fit_transform(coords)
    by_hand = Est(u_type="continuous", max_iter=2, random_state=0).fit(X, T)
    assert not hasattr(spline, "bsplines_")  # a clone was fitted, not the parameter
    assert est.u_type_ == "continuous" and est.n_aux_ == T.shape[1]
    assert_allclose(est.transform(X), by_hand.transform(X))
    assert est.score(X, coords) == pytest.approx(by_hand.score(X, T))
    Xs, _ = est.sample(u=coords[:7], random_state=3)
    Xh, _ = by_hand.sample(u=T[:7], random_state=3)
    assert_allclose(Xs, Xh)
    mean, std = est.predict_latent(coords[:7], return_std=True)
    mean_h, std_h = by_hand.predict_latent(T[:7], return_std=True)
    assert_allclose(mean, mean_h)
    assert_allclose(std, std_h)


def test_aux_transformer_parameters_are_searchable():
    from sklearn.base import clone
    from sklearn.preprocessing import SplineTransformer

    est = NonlinearICA(aux_transformer=SplineTransformer(n_knots=4))
    assert est.get_params()["aux_transformer__n_knots"] == 4
    est.set_params(aux_transformer__n_knots=6)
    assert clone(est).aux_transformer.n_knots == 6
    X, coords = _coords_data(300)
    est.set_params(max_iter=1, random_state=0).fit(X, coords)
    assert est.n_aux_ == SplineTransformer(n_knots=6).fit_transform(coords).shape[1]


def test_aux_transformer_errors_name_the_transformer():
    from sklearn.preprocessing import OneHotEncoder

    X, coords = _coords_data(200)
    labels = np.repeat(np.arange(4), 50)
    est = IdentifiableVAE(
        aux_transformer=OneHotEncoder(sparse_output=False), max_iter=1, random_state=0
    ).fit(X, labels)
    assert est.n_aux_ == 4  # one-hot codes, read as continuous covariates
    with pytest.raises(ValueError, match=r"aux_transformer \(OneHotEncoder\)"):
        est.score(X[:2], np.array([0, 9]))  # a category OneHotEncoder never saw
    with pytest.raises(ValueError, match="u has 3 rows but X has 200"):
        IdentifiableVAE(aux_transformer=OneHotEncoder(), max_iter=1).fit(X, labels[:3])
    with pytest.raises(ValueError, match="aux_transformer"):
        IdentifiableVAE(aux_transformer="spline").fit(X, labels)


# -------------------------------------------------------------- predict_latent
def test_predict_latent_reads_the_prior_of_each_category():
    X, coords = _coords_data(400)
    u = np.repeat(np.arange(4), 100)
    est = IdentifiableVAE(max_iter=2, random_state=0).fit(X, u)
    table = est.module_.prior.table.detach().double().numpy()
    k = est.n_components_
    mean, std = est.predict_latent(np.array([2, 0]), return_std=True)
    assert_allclose(mean, table[[2, 0], :k], rtol=1e-6)
    log_s2 = 7.0 * np.tanh(table[[2, 0], k:] / 7.0)
    assert_allclose(std, np.exp(0.5 * log_s2), rtol=1e-6)
    assert_allclose(est.predict_latent([2, 0]), mean)

    lap = IdentifiableVAE(prior="laplace", max_iter=2, random_state=0).fit(X, u)
    raw = lap.module_.prior.table.detach().double().numpy()[[1]]
    _, std = lap.predict_latent([1], return_std=True)
    assert_allclose(std, np.sqrt(2.0) * np.exp(0.5 * 7.0 * np.tanh(raw / 7.0)))


def test_predict_latent_scale_matches_the_sources_per_segment(segment_data):
    # The flow's prior scale, standardised like transform(X), against the
    # spread of transform(X) within each segment: a missing or doubled
    # standardisation, or a wrong scale parameterisation, moves the ratio.
    X, u, _ = segment_data
    est = NonlinearICA(max_iter=15, random_state=0).fit(X, u)
    S = est.transform(X)
    classes = np.unique(u)
    mean, std = est.predict_latent(classes, return_std=True)
    empirical = np.array([S[u == c].std(axis=0) for c in classes])
    ratio = empirical / std
    assert 0.9 < np.median(ratio) < 1.1  # 0.86 without the standardisation
    assert (
        np.abs(np.array([S[u == c].mean(axis=0) for c in classes]) - mean).max() < 0.2
    )
    assert np.corrcoef(np.log(empirical).ravel(), np.log(std).ravel())[0, 1] > 0.8


def test_predict_latent_errors(segment_data):
    X, u, _ = segment_data
    tcl = NonlinearICA(method="tcl", max_iter=1, random_state=0).fit(X, u)
    with pytest.raises(ValueError, match="method='tcl' does not have"):
        tcl.predict_latent(u[:3])
    vae = IdentifiableVAE(max_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="fitted without u"):
        vae.predict_latent(u[:3])
    est = IdentifiableVAE(max_iter=1, random_state=0).fit(X, u)
    with pytest.raises(ValueError, match="not seen during fit"):
        est.predict_latent([999])
    for empty in ([], np.array([], dtype=int)):
        with pytest.raises(ValueError, match="at least one row, got 0"):
            est.predict_latent(empty)


# ----------------------------------------- u in the containers users pass it in
pd = pytest.importorskip("pandas")


def _covariates(n=300, seed=0):
    rng = _rng(seed)
    return pd.DataFrame({"temp": rng.randn(n), "age": 50 + 10 * rng.randn(n)})


def test_continuous_frame_columns_are_checked_by_name():
    # Reordered covariates used to be read by position: silently wrong scores.
    U = _covariates()
    enc = _AuxEncoder()
    encoded = enc.fit(U, 300, _rng())
    assert_array_equal(enc.column_names_, ["temp", "age"])
    assert_allclose(enc.transform(U[:4], 4), encoded[:4])
    assert_allclose(enc.transform(U.to_numpy()[:4], 4), encoded[:4])  # no names
    with pytest.raises(ValueError, match=r"columns \['age', 'temp'\].*same order"):
        enc.transform(U[["age", "temp"]][:4], 4)
    with pytest.raises(ValueError, match=r"u_past has the columns \['x', 'y'\]"):
        enc.transform(U[:1].set_axis(["x", "y"], axis=1), 1, name="u_past")
    # unnamed at fit: any names later
    enc2 = _AuxEncoder()
    enc2.fit(U.to_numpy(), 300, _rng())
    assert enc2.column_names_ is None
    assert_allclose(
        enc2.transform(U[["age", "temp"]][:2], 2),
        enc2.transform(U[["age", "temp"]].to_numpy()[:2], 2),
    )


@pytest.mark.parametrize(
    "convert",
    [
        lambda U: U.astype("Float64"),
        lambda U: U.convert_dtypes(),
        lambda U: U.assign(temp=U["temp"] > 0),
    ],
    ids=["Float64", "convert_dtypes", "bool-and-float"],
)
def test_frames_of_nullable_or_mixed_numeric_columns_are_covariates(convert):
    # np.asarray made objects of them, read as (2-D) labels: always refused.
    U = _covariates()
    enc, ref = _AuxEncoder(), _AuxEncoder()
    encoded = enc.fit(convert(U), 300, _rng())
    expected = ref.fit(convert(U).to_numpy(dtype=float), 300, _rng())
    assert enc.u_type_ == "continuous"
    assert_allclose(encoded, expected)
    assert_allclose(enc.transform(convert(U)[:3], 3), expected[:3])
    missing = convert(U).astype("Float64")
    missing.iloc[2, 0] = pd.NA
    with pytest.raises(ValueError, match="u contains NaN"):
        _AuxEncoder().fit(missing, 300, _rng())


def test_sparse_u_is_read_like_the_dense_array():
    from scipy import sparse

    labels = np.repeat(np.arange(6), 50)
    onehot = np.eye(6)[labels]
    enc, ref = _AuxEncoder(), _AuxEncoder()
    assert_allclose(
        enc.fit(sparse.csr_matrix(onehot), 300, _rng()), ref.fit(onehot, 300, _rng())
    )
    assert enc.u_type_ == "continuous"
    col = _AuxEncoder()
    assert_array_equal(col.fit(sparse.csr_matrix(labels[:, None]), 300, _rng()), labels)


@pytest.mark.parametrize(
    "labels",
    [
        pd.Series(list("abcdef") * 50, dtype="string"),
        pd.Series([True, False] * 150, dtype="boolean"),
    ],
    ids=["string", "boolean"],
)
def test_pandas_na_labels_are_missing_labels(labels):
    labels = labels.copy()
    labels[7] = pd.NA
    with pytest.raises(ValueError, match="missing labels"):
        _AuxEncoder().fit(labels, 300, _rng())
    enc = _AuxEncoder()
    enc.fit(labels.fillna(labels[0]), 300, _rng())
    with pytest.raises(ValueError, match="u_past contains missing labels"):
        enc.transform(labels[5:9], 4, name="u_past")


def test_u_that_is_not_one_value_per_row_is_named():
    enc = _AuxEncoder()
    with pytest.raises(ValueError, match="u must hold one value per row of X"):
        enc.fit({0: 1, 1: 2}.values(), 2, _rng())
    enc.fit(np.array([0, 1, 0, 1]), 4, _rng())
    with pytest.raises(ValueError, match="u must hold one value per row of X"):
        enc.transform(1, 1)


def test_one_row_of_covariates_hint():
    enc = _AuxEncoder()
    enc.fit(_covariates().to_numpy(), 300, _rng())
    with pytest.raises(ValueError, match=r"np.reshape\(u, \(1, -1\)\)"):
        enc.transform([0.1, 50.0], 2)


def test_advice_for_labels_only_models():
    # TCL reads any u as labels: the advice must not be to pass floats.
    floats = _rng().randn(300)
    with pytest.warns(UserWarning, match="KBinsDiscretizer"):
        _AuxEncoder("categorical", labels_only=True).fit(floats, 300, _rng())
    with pytest.warns(UserWarning, match="pass it as floats"):
        _AuxEncoder("categorical").fit(floats, 300, _rng())
    two = np.zeros((4, 2), dtype=int)
    with pytest.raises(ValueError, match="method='tcl' takes labels only"):
        _AuxEncoder("categorical", labels_only=True).fit(two, 4, _rng())
    with pytest.raises(ValueError, match="u_type='continuous'") as info:
        _AuxEncoder("categorical").fit(two, 4, _rng())
    assert "tcl" not in str(info.value)
    X = _rng(1).randn(300, 3)
    tcl = NonlinearICA(method="tcl", max_iter=1, random_state=0)
    with pytest.warns(UserWarning, match="KBinsDiscretizer"):
        tcl.fit(X, floats)


@pytest.mark.parametrize("Est", [IdentifiableVAE, NonlinearICA])
def test_aux_transformer_takes_a_series(Est):
    from sklearn.preprocessing import SplineTransformer

    X = _rng(2).randn(300, 3)
    t = pd.Series(np.linspace(0, 1, 300), name="time")
    kw = dict(max_iter=1, random_state=0, aux_transformer=SplineTransformer(n_knots=4))
    if Est is IdentifiableVAE:
        kw["hidden_layer_sizes"] = (8,)
    est = Est(**kw).fit(X, t)
    ref = Est(**kw).fit(X, t.to_numpy())
    assert_allclose(est.transform(X), ref.transform(X))
    assert_allclose(est.predict_latent(t[:5]), ref.predict_latent(t.to_numpy()[:5]))
    assert_allclose(
        est.score_samples(X[:5], t[:5]), ref.score_samples(X[:5], t.to_numpy()[:5])
    )


def test_sample_with_empty_u_names_u():
    X = _rng(3).randn(200, 3)
    est = IdentifiableVAE(max_iter=1, hidden_layer_sizes=(8,), random_state=0)
    est.fit(X, np.repeat(np.arange(4), 50))
    with pytest.raises(ValueError, match="u is empty"):
        est.sample(3, u=[])


def test_nan_out_of_aux_transformer_is_blamed_on_the_transformer():
    from sklearn.preprocessing import FunctionTransformer

    u = np.linspace(0.0, 1.0, 50)  # finite; its log(u - 0.5) is not
    enc = _AuxEncoder(transformer=FunctionTransformer(lambda a: np.log(a - 0.5)))
    with np.errstate(invalid="ignore"):
        with pytest.raises(
            ValueError, match=r"aux_transformer \(FunctionTransformer\) returned NaN"
        ):
            enc.fit(u, 50, _rng())
