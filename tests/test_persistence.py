"""save / load without pickle, and pickle / joblib round trips."""

import io
import json
import pickle
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.kernel_approximation import Nystroem
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PowerTransformer,
    QuantileTransformer,
    SplineTransformer,
    StandardScaler,
)

import skivae
from skivae import IdentifiableVAE, NonlinearICA
from skivae.datasets import make_nonstationary_sources

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore::skivae.IdentifiabilityWarning"),
    pytest.mark.filterwarnings("ignore:IdentifiableVAE.fit got u=None"),
]

FAST = dict(max_iter=2, hidden_layer_sizes=(8,), batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, u, _ = make_nonstationary_sources(6, 30, 2, n_layers=2, random_state=0)
    rng = np.random.RandomState(1)
    return {
        "X": X,
        "int": u,
        "str": np.array([f"seg{k}" for k in u]),  # dtype <U4
        "object": np.array([f"s{k}" for k in u], dtype=object),
        "bytes": np.array([f"b{k}".encode() for k in u]),  # dtype |S2
        "continuous": np.column_stack([u / 5.0, rng.uniform(size=len(u))]),
        "none": None,
    }


CASES = [
    *[(IdentifiableVAE, dict(prior=p), "int") for p in ("gaussian", "laplace")],
    (IdentifiableVAE, dict(prior="gaussian_var"), "str"),
    (IdentifiableVAE, dict(prior="laplace"), "object"),
    (IdentifiableVAE, dict(), "bytes"),
    (IdentifiableVAE, dict(prior="gaussian", decoder_var="learn"), "continuous"),
    (IdentifiableVAE, dict(n_components=1, posterior="diag"), "int"),
    (IdentifiableVAE, dict(), "none"),
    *[
        (NonlinearICA, dict(method="flow", prior=p), "int")
        for p in ("gaussian", "gaussian_var", "laplace")
    ],
    (NonlinearICA, dict(method="flow"), "str"),
    (NonlinearICA, dict(method="flow", n_init=1), "continuous"),
    (NonlinearICA, dict(method="ivae", prior="laplace"), "int"),
    (NonlinearICA, dict(method="ivae"), "continuous"),
    (NonlinearICA, dict(method="tcl"), "int"),
    (NonlinearICA, dict(method="tcl", features="mlp"), "int"),
    (NonlinearICA, dict(method="gcl", features="mlp"), "int"),
    (NonlinearICA, dict(method="tcl"), "str"),
    (NonlinearICA, dict(method="gcl"), "object"),
    (NonlinearICA, dict(method="gcl"), "continuous"),
    # aux_transformer: SplineTransformer's fitted state holds scipy BSplines
    (IdentifiableVAE, dict(aux_transformer=SplineTransformer(n_knots=3)), "continuous"),
    (
        NonlinearICA,
        dict(
            aux_transformer=make_pipeline(
                StandardScaler(), SplineTransformer(n_knots=4, extrapolation="periodic")
            )
        ),
        "continuous",
    ),
    (NonlinearICA, dict(aux_transformer=OneHotEncoder()), "str"),  # sparse output
    (
        NonlinearICA,
        dict(method="ivae", aux_transformer=Nystroem(n_components=5, random_state=0)),
        "continuous",
    ),
    (
        IdentifiableVAE,
        dict(
            aux_transformer=make_pipeline(
                QuantileTransformer(n_quantiles=20), PowerTransformer()
            )
        ),
        "continuous",
    ),
]


def _id(case):
    cls, params, u_kind = case
    items = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{cls.__name__}({items})-u={u_kind}"


def _outputs(est, X, u):
    """Everything a fitted estimator computes, as a dict of arrays."""
    out = {"transform": est.transform(X), "names": est.get_feature_names_out()}
    has_decoder = hasattr(est.module_, "inverse")
    if u is not None:
        out["score_u"] = est.score(X, u)
    if isinstance(est, IdentifiableVAE) or est.method in ("flow", "ivae"):
        out["score"] = est.score(X)
        out["score_samples"] = est.score_samples(X)
        out["sample"] = est.sample(7, random_state=3)
        out["sample_default_seed"] = est.sample(4)
        if u is not None:
            out["sample_u"] = est.sample(u=u[:5], random_state=4)
            out["predict_latent"] = est.predict_latent(u[:6], return_std=True)
    if has_decoder:
        out["inverse"] = est.inverse_transform(out["transform"][:10])
    return out


def _assert_same_outputs(a, b):
    assert a.keys() == b.keys()
    for key in a:
        va, vb = a[key], b[key]
        if isinstance(va, tuple):
            for xa, xb in zip(va, vb):
                assert xa.dtype == xb.dtype, key
                assert_array_equal(xa, xb, err_msg=key)
        else:
            assert np.asarray(va).dtype == np.asarray(vb).dtype, key
            assert_array_equal(va, vb, err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_save_load_identical_outputs(case, data, tmp_path):
    cls, params, u_kind = case
    X, u = data["X"], data[u_kind]
    est = cls(**FAST, **params).fit(X, u)
    expected = _outputs(est, X, u)
    path = tmp_path / "model.skivae"
    est.save(path)

    rng_before = torch.get_rng_state()
    loaded = skivae.load(path)
    assert torch.equal(torch.get_rng_state(), rng_before)  # load leaves the RNG alone
    assert type(loaded) is cls
    assert repr(loaded.get_params()) == repr(est.get_params())
    _assert_same_outputs(expected, _outputs(loaded, X, u))
    assert loaded.loss_curve_ == est.loss_curve_
    assert loaded.n_iter_ == est.n_iter_ and loaded.best_loss_ == est.best_loss_
    if u is None:
        assert loaded.aux_encoder_ is None
    else:
        assert loaded.u_type_ == est.u_type_
        if est.aux_classes_ is not None:
            assert loaded.aux_classes_.dtype == est.aux_classes_.dtype
            assert_array_equal(loaded.aux_classes_, est.aux_classes_)
    for name, tensor in est.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[name], tensor), name
    assert not loaded.module_.training
    # The classmethod agrees and the loaded estimator can be refitted.
    _assert_same_outputs(expected, _outputs(cls.load(path), X, u))
    loaded.fit(X, u)
    _assert_same_outputs(expected, _outputs(loaded, X, u))


@pytest.mark.parametrize(
    "cls, later",
    [
        # each made a file that did not load (weights of another shape) ...
        (IdentifiableVAE, {"n_importance": 4, "hidden_layer_sizes": (5,)}),
        (IdentifiableVAE, {"prior": "laplace", "ar_order": 1}),
        (NonlinearICA, {"method": "tcl", "flow_depth": 1}),
        # ... or loaded as another model (a Laplace decoder on Gaussian weights)
        (IdentifiableVAE, {"likelihood": "laplace"}),
    ],
)
def test_params_set_after_fit_are_saved_apart(cls, later, data, tmp_path):
    # set_params after fit leaves the fitted model as it is: the file rebuilds
    # the model the weights belong to, then sets the later parameters, so the
    # loaded estimator is the one that was saved.
    X, u = data["X"], data["int"]
    est = cls(**FAST).fit(X, u)
    expected = _outputs(est, X, u)
    est.set_params(**later)
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert repr(loaded.get_params()) == repr(est.get_params())
    for name, tensor in est.module_.state_dict().items():
        assert torch.equal(loaded.module_.state_dict()[name], tensor), name
    a = est.transform(X)
    assert_array_equal(loaded.transform(X), a)
    assert_array_equal(a, expected["transform"])
    if "likelihood" in later:
        assert loaded.score(X, u) == est.score(X, u)
    # Saved again, the loaded estimator gives the same file contents.
    loaded.save(tmp_path / "again.skivae")
    again = skivae.load(tmp_path / "again.skivae")
    assert repr(again.get_params()) == repr(est.get_params())
    assert_array_equal(again.transform(X), a)


def test_state_is_fully_stored(data, tmp_path):
    """Every fitted attribute, private ones included, comes back (TCL: FastICA)."""
    est = NonlinearICA(method="tcl", features="mlp", **FAST).fit(data["X"], data["int"])
    est.save(tmp_path / "m.skivae")
    loaded = NonlinearICA.load(tmp_path / "m.skivae")
    assert vars(loaded).keys() == vars(est).keys()
    assert type(loaded.ica_) is type(est.ica_)
    for name in ("components_", "mixing_", "mean_", "whitening_"):
        assert_array_equal(getattr(loaded.ica_, name), getattr(est.ica_, name))
    assert_array_equal(loaded._s_scale, est._s_scale)
    assert loaded._fit_dtype == est._fit_dtype


def test_feature_names_and_float32(data, tmp_path):
    X = pd.DataFrame(data["X"].astype(np.float32), columns=["a", "b"])
    est = IdentifiableVAE(**FAST).fit(X, data["int"])
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert_array_equal(loaded.feature_names_in_, ["a", "b"])
    Z = loaded.transform(X)  # no feature-name warning, float32 kept
    assert Z.dtype == np.float32
    assert_array_equal(Z, est.transform(X))
    assert loaded.sample(3, random_state=0)[0].dtype == np.float32
    with pytest.raises(ValueError, match="feature names"):
        loaded.transform(X.rename(columns={"a": "c"}))


def test_random_state_instance_round_trip(data, tmp_path):
    rs = np.random.RandomState(5)
    est = IdentifiableVAE(**{**FAST, "random_state": rs}).fit(data["X"], data["int"])
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert loaded.random_state.randint(1000) == rs.randint(1000)


def test_file_objects(data):
    est = NonlinearICA(method="gcl", **FAST).fit(data["X"], data["int"])
    buffer = io.BytesIO()
    est.save(buffer)
    loaded = NonlinearICA.load(io.BytesIO(buffer.getvalue()))
    assert_array_equal(loaded.transform(data["X"]), est.transform(data["X"]))
    with pytest.raises(ValueError, match="opened in text mode.*'rb'"):
        NonlinearICA.load(io.StringIO("PK not really"))


def test_gpu_fitted_model_loads_on_cpu(data, tmp_path):
    """A model fitted on CUDA keeps device_=cuda but runs on CPU where it is absent."""
    est = IdentifiableVAE(**FAST).fit(data["X"], data["int"])
    est.device_ = torch.device("cuda:0")  # what a GPU fit records; module_ is on CPU
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert loaded.device_ == torch.device("cuda:0")
    assert all(t.device.type == "cpu" for t in loaded.module_.state_dict().values())
    if not torch.cuda.is_available():
        assert_array_equal(loaded.transform(data["X"]), est.transform(data["X"]))


@pytest.mark.gpu
def test_cuda_fit_save_load(data, tmp_path):
    est = IdentifiableVAE(**FAST, device="cuda").fit(data["X"], data["int"])
    est.save(tmp_path / "m.skivae")
    weights = zipfile.ZipFile(tmp_path / "m.skivae").read("weights.pt")
    state = torch.load(io.BytesIO(weights), weights_only=True)  # no map_location
    assert all(t.device.type == "cpu" for t in state.values())
    loaded = skivae.load(tmp_path / "m.skivae")
    np.testing.assert_allclose(
        loaded.transform(data["X"]), est.transform(data["X"]), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("dumps", ["pickle", "joblib"])
@pytest.mark.parametrize(
    "cls, params",
    [
        (IdentifiableVAE, {}),
        (NonlinearICA, {"method": "flow"}),
        (NonlinearICA, {"method": "tcl"}),
    ],
)
def test_pickle_and_joblib_round_trip(dumps, cls, params, data, tmp_path):
    X, u = data["X"], data["int"]
    est = cls(**FAST, **params).fit(X, u)
    if dumps == "pickle":
        loaded = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
    _assert_same_outputs(_outputs(est, X, u), _outputs(loaded, X, u))


# --------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    """Bytes of a saved IdentifiableVAE."""
    est = IdentifiableVAE(**FAST).fit(data["X"], data["int"])
    path = tmp_path_factory.mktemp("saved") / "m.skivae"
    est.save(path)
    return path.read_bytes()


def _members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def _with_fixed_checksums(members):
    import hashlib

    manifest = json.loads(members["manifest.json"])
    for name in ("estimator.json", "weights.pt"):
        manifest["files"][name] = hashlib.sha256(members[name]).hexdigest()
    return {**members, "manifest.json": json.dumps(manifest).encode()}


def _load_bytes(raw, tmp_path, loader=skivae.load):
    path = tmp_path / "bad.skivae"
    path.write_bytes(raw)
    return loader(path)


def test_save_unfitted_raises(tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet.*Call fit") as info:
        IdentifiableVAE().save(tmp_path / "m.skivae")
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "m.skivae").exists()


def test_save_unstorable_state_raises(data, tmp_path):
    est = IdentifiableVAE(**FAST).fit(data["X"], data["int"])
    est.extra_ = object()
    with pytest.raises(ValueError, match=r"Cannot save.*state\['extra_'\]"):
        est.save(tmp_path / "m.skivae")


def test_save_unstorable_aux_transformer_raises(data, tmp_path):
    est = IdentifiableVAE(aux_transformer=FunctionTransformer(np.sin), **FAST)
    est.fit(data["X"], data["continuous"])
    with pytest.raises(ValueError, match="FunctionTransformer.*aux_transformer may be"):
        est.save(tmp_path / "m.skivae")
    assert not (tmp_path / "m.skivae").exists()


def test_every_storable_transformer_round_trips():
    # Each class the format lists is fitted, encoded to JSON and decoded: the
    # copy is of the same class and transforms identically.
    from skivae._persistence import _TRANSFORMER_CLASSES, _decode, _encode

    rng = np.random.RandomState(0)
    u = rng.uniform(0.1, 1.0, size=(60, 2))
    for name, cls in _TRANSFORMER_CLASSES.items():
        if name == "Pipeline":
            t = make_pipeline(StandardScaler(), SplineTransformer(n_knots=3))
        elif name == "FeatureUnion":
            from sklearn.pipeline import make_union

            t = make_union(StandardScaler(), QuantileTransformer(n_quantiles=10))
        elif name in ("QuantileTransformer",):
            t = cls(n_quantiles=10)
        else:
            t = cls()
        if "random_state" in t.get_params():
            t.set_params(random_state=0)
        if "n_components" in t.get_params():
            t.set_params(n_components=4)
        t.fit(u)
        copy = _decode(json.loads(json.dumps(_encode(t, "t"))))
        assert type(copy) is cls, name
        a, b = t.transform(u), copy.transform(u)
        a, b = (x.toarray() if hasattr(x, "toarray") else x for x in (a, b))
        assert_array_equal(a, b, err_msg=name)


def test_save_refuses_a_function_with_one_clear_message(data, tmp_path):
    est = IdentifiableVAE(
        aux_transformer=Nystroem(kernel=lambda a, b: float(a @ b), n_components=3),
        **FAST,
    ).fit(data["X"], data["continuous"])
    with pytest.raises(ValueError, match="is a function") as info:
        est.save(tmp_path / "m.skivae")
    assert "random_state" not in str(info.value)  # advice about another case


def test_round_trip_of_helper_bytes(saved, tmp_path):
    """The test helpers themselves produce a loadable file (controls below)."""
    est = _load_bytes(_rezip(_with_fixed_checksums(_members(saved))), tmp_path)
    assert isinstance(est, IdentifiableVAE)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_file(saved, tmp_path, keep):
    with pytest.raises(ValueError, match="is a truncated or corrupted skivae file"):
        _load_bytes(saved[: int(len(saved) * keep)], tmp_path)


def test_corrupted_bytes(saved, tmp_path):
    raw = bytearray(saved)
    start = saved.index(b"weights.pt") + 200  # inside the compressed weights
    for i in range(start, start + 16):
        raw[i] ^= 0xFF
    with pytest.raises(ValueError, match="corrupted|checksum"):
        _load_bytes(bytes(raw), tmp_path)


def test_wrong_things_to_load_or_save_to(saved, tmp_path, data):
    # Each was an OSError, a TypeError or numpy's "negative seek value".
    with pytest.raises(ValueError, match="is a directory"):
        skivae.load(tmp_path)
    with pytest.raises(ValueError, match=r"got the bytes of a file.*BytesIO"):
        skivae.load(saved)
    partly_read = io.BytesIO(saved)
    partly_read.read(10)
    with pytest.raises(ValueError, match=r"seek\(0\) first"):
        skivae.load(partly_read)
    est = IdentifiableVAE(**FAST).fit(data["X"], data["int"])
    with open(tmp_path / "t.skivae", "w") as fh:
        with pytest.raises(ValueError, match="opened in text mode.*'wb'"):
            est.save(fh)


def _edit_json(raw, edit):
    """A file whose estimator.json is ``edit(document)``, checksums redone."""
    members = _members(raw)
    doc = json.loads(members["estimator.json"])
    edit(doc)
    members["estimator.json"] = json.dumps(doc).encode()
    return _rezip(_with_fixed_checksums(members))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.__setitem__("estimator", ["IdentifiableVAE"]),
        lambda d: d.__setitem__("state", None),
        lambda d: d["state"]["dict"].__setitem__("x", {"npscalar": ["<f8"]}),
        lambda d: d["state"]["dict"].__setitem__("x", {"device": "nonsense"}),
    ],
)
def test_edited_document_is_a_value_error(saved, tmp_path, edit):
    # Checksums are no signature: a document edited by hand, with its
    # checksums redone, must still fail as a ValueError naming the file.
    with pytest.raises(ValueError, match="bad.skivae is corrupted"):
        _load_bytes(_edit_json(saved, edit), tmp_path)


@pytest.mark.parametrize("name", ["_x_mean", "n_components_", "aux_encoder_"])
def test_a_document_lacking_fitted_state_is_a_value_error(saved, tmp_path, name):
    # It loaded (or failed as "the stored weights do not match"), then
    # transform raised AttributeError: '_x_mean'.
    edited = _edit_json(saved, lambda d: d["state"]["dict"].pop(name))
    with pytest.raises(ValueError, match=f"corrupted: its fitted state lacks {name}"):
        _load_bytes(edited, tmp_path)


def test_format_version_must_be_an_integer(saved, tmp_path):
    members = _members(saved)
    manifest = json.loads(members["manifest.json"])
    manifest["format_version"] = True
    members["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(ValueError, match="invalid format_version True"):
        _load_bytes(_rezip(members), tmp_path)


def test_checksum_mismatch_weights(saved, data, tmp_path):
    other = IdentifiableVAE(**{**FAST, "random_state": 1}).fit(data["X"], data["int"])
    buffer = io.BytesIO()
    other.save(buffer)
    members = _members(saved)
    members["weights.pt"] = _members(buffer.getvalue())["weights.pt"]
    with pytest.raises(ValueError, match="checksum mismatch for weights.pt"):
        _load_bytes(_rezip(members), tmp_path)


def test_checksum_mismatch_json(saved, tmp_path):
    members = _members(saved)
    members["estimator.json"] = members["estimator.json"].replace(
        b'"max_iter": 2', b'"max_iter": 3'
    )
    with pytest.raises(ValueError, match="checksum mismatch for estimator.json"):
        _load_bytes(_rezip(members), tmp_path)


def test_newer_format_version(saved, tmp_path):
    members = _members(saved)
    manifest = json.loads(members["manifest.json"])
    manifest["format_version"] += 1
    members["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(ValueError, match="format version 2, newer.*upgrade skivae"):
        _load_bytes(_rezip(members), tmp_path)


@pytest.mark.parametrize(
    "raw",
    [
        b"just some text\n",
        b"",
        pickle.dumps({"a": 1}),
        _rezip({"something.json": b"{}"}),
        _rezip({"manifest.json": b'{"format": "other"}'}),
    ],
    ids=["text", "empty", "pickle", "zip-without-manifest", "other-format"],
)
def test_not_a_skivae_file(raw, tmp_path):
    with pytest.raises(ValueError, match="not a skivae file"):
        _load_bytes(raw, tmp_path)


def test_pickle_file_is_refused_not_executed(data, tmp_path):
    est = IdentifiableVAE(**FAST).fit(data["X"], data["int"])
    joblib.dump(est, tmp_path / "m.joblib")
    with pytest.raises(ValueError, match="not a skivae file"):
        skivae.load(tmp_path / "m.joblib")


_EXECUTED = []


def _side_effect():
    _EXECUTED.append(True)
    return {}


class _Payload:
    def __reduce__(self):
        return (_side_effect, ())


def test_weights_with_code_are_refused(saved, tmp_path):
    """A pickle payload in weights.pt, with valid checksums, is never run."""
    members = _members(saved)
    buffer = io.BytesIO()
    torch.save({"x": _Payload()}, buffer)
    members["weights.pt"] = buffer.getvalue()
    with pytest.raises(ValueError, match="not a plain torch state dict"):
        _load_bytes(_rezip(_with_fixed_checksums(members)), tmp_path)
    assert _EXECUTED == []


def test_unknown_class_in_state_is_refused(saved, tmp_path):
    members = _members(saved)
    members["estimator.json"] = members["estimator.json"].replace(
        b'"_AuxEncoder"', b'"Popen"'
    )
    with pytest.raises(ValueError, match="unknown object class 'Popen'"):
        _load_bytes(_rezip(_with_fixed_checksums(members)), tmp_path)


def test_weights_of_another_shape_are_refused(saved, data, tmp_path):
    other = IdentifiableVAE(**{**FAST, "hidden_layer_sizes": (4,)})
    other.fit(data["X"], data["int"])
    buffer = io.BytesIO()
    other.save(buffer)
    members = _members(saved)
    members["weights.pt"] = _members(buffer.getvalue())["weights.pt"]
    with pytest.raises(ValueError, match="weights do not match"):
        _load_bytes(_rezip(_with_fixed_checksums(members)), tmp_path)


def test_subclasses_are_refused_and_cannot_take_a_class_name(saved, data, tmp_path):
    # A user's subclass is not one of the classes a file may hold: saving it
    # is refused, and one that reuses skivae's class name changes nothing.
    class MyVAE(IdentifiableVAE):
        pass

    with pytest.raises(ValueError, match="subclasses are not supported"):
        MyVAE(**FAST).fit(data["X"], data["int"]).save(tmp_path / "m.skivae")
    shadow = type("IdentifiableVAE", (IdentifiableVAE,), {})
    assert isinstance(_load_bytes(saved, tmp_path), IdentifiableVAE)
    assert type(_load_bytes(saved, tmp_path)) is not shadow
    IdentifiableVAE(**FAST).fit(data["X"], data["int"]).save(tmp_path / "n.skivae")


def test_classmethod_checks_the_class(saved, tmp_path):
    with pytest.raises(ValueError, match="class IdentifiableVAE, not NonlinearICA"):
        _load_bytes(saved, tmp_path, loader=NonlinearICA.load)
    assert isinstance(
        _load_bytes(saved, tmp_path, IdentifiableVAE.load), IdentifiableVAE
    )


def test_convergence_warning_not_raised_by_load(saved, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        _load_bytes(saved, tmp_path)


def test_a_list_parameter_changed_in_place_after_fit_is_saved_apart(data, tmp_path):
    # The fitted parameters were the get_params() objects themselves: a list
    # appended to after fit changed them too, and the file did not load.
    X, u = data["X"], data["int"]
    est = IdentifiableVAE(hidden_layer_sizes=[8, 8], max_iter=2, random_state=0)
    est.fit(X, u)
    est.hidden_layer_sizes.append(4)
    est.save(tmp_path / "m.skivae")
    loaded = skivae.load(tmp_path / "m.skivae")
    assert loaded.hidden_layer_sizes == [8, 8, 4]
    assert_array_equal(loaded.transform(X), est.transform(X))


def _doc(path):
    return json.loads(_members(path.read_bytes())["estimator.json"])


def test_a_nested_aux_transformer_change_after_fit_is_saved_apart(data, tmp_path):
    # The fitted parameters held the aux_transformer object itself: a nested
    # set_params after fit changed the "fitted" one too, so the file claimed
    # the model was fitted with n_knots=5 and stored no later change.
    X, u = data["X"], data["continuous"]
    est = IdentifiableVAE(aux_transformer=SplineTransformer(n_knots=3), **FAST)
    est.fit(X, u)
    expected = est.transform(X)
    est.save(tmp_path / "same.skivae")
    doc = _doc(tmp_path / "same.skivae")
    assert "params_set_after_fit" not in doc  # an unchanged copy is unchanged
    est.set_params(aux_transformer__n_knots=5)
    est.save(tmp_path / "m.skivae")
    doc = _doc(tmp_path / "m.skivae")
    later = json.dumps(doc["params_set_after_fit"])
    assert "aux_transformer" in later and "max_iter" not in later
    loaded = skivae.load(tmp_path / "m.skivae")
    assert loaded.get_params()["aux_transformer__n_knots"] == 5
    assert loaded._fitted_params["aux_transformer"].n_knots == 3
    assert_array_equal(loaded.transform(X), expected)
    assert_array_equal(loaded.score_samples(X, u), est.score_samples(X, u))


@pytest.mark.parametrize(
    "transformer, kind",
    [
        # a RandomState and a NaN category compare unequal to their copies
        (Nystroem(n_components=5, random_state=np.random.RandomState(0)), "continuous"),
        (OneHotEncoder(categories=[np.array([0.0, 1, 2, 3, 4, 5, np.nan])]), "int"),
    ],
)
def test_an_unchanged_aux_transformer_is_not_saved_apart(
    transformer, kind, data, tmp_path
):
    u = data[kind] if kind != "int" else data["int"].astype(float)[:, None]
    est = IdentifiableVAE(aux_transformer=transformer, **FAST).fit(data["X"], u)
    est.save(tmp_path / "m.skivae")
    assert "params_set_after_fit" not in _doc(tmp_path / "m.skivae")


def test_a_list_changed_in_place_after_loading_is_saved_apart(data, tmp_path):
    # load() recorded the fitted parameters as the get_params() objects: a
    # list appended to after loading changed them too, and the next file did
    # not load (weights of another shape).
    X, u = data["X"], data["int"]
    est = IdentifiableVAE(hidden_layer_sizes=[8], max_iter=2, random_state=0)
    est.fit(X, u).save(tmp_path / "a.skivae")
    loaded = skivae.load(tmp_path / "a.skivae")
    loaded.hidden_layer_sizes.append(4)
    loaded.save(tmp_path / "b.skivae")
    again = skivae.load(tmp_path / "b.skivae")
    assert again.hidden_layer_sizes == [8, 4]
    assert_array_equal(again.transform(X), est.transform(X))
