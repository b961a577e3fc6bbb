"""The auxiliary-variable encoder: one fitted object reads u for fit, score, sample."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skivae import IdentifiableVAE, NonlinearICA
from skivae._aux import _AuxEncoder

pytestmark = [
    pytest.mark.filterwarnings("ignore:u has .* distinct values:UserWarning"),
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
    with pytest.raises(ValueError, match="Input u contains NaN"):
        enc.transform(np.array([[0.0, np.nan]]), 1)
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
