"""Saving and loading fitted estimators without pickle.

A skivae file is a zip archive with three members:

``manifest.json``
    ``{"format": "skivae-estimator", "format_version": 1, "files": {name:
    sha256}}``: what the file is and the SHA-256 checksum of each other member.
``estimator.json``
    The estimator's class name, the skivae/scikit-learn/torch versions that
    wrote it, the parameters of the fit (``"params"``; those changed by
    ``set_params`` since are in ``"params_set_after_fit"``) and every fitted
    attribute except the torch model (``n_features_in_``, ``loss_curve_``,
    the standardisation arrays, the auxiliary encoder, TCL's FastICA, ...),
    in a tagged JSON encoding
    (see :func:`_encode`) that rebuilds numpy arrays, tuples and dtypes
    exactly.
``weights.pt``
    ``module_.state_dict()`` written by :func:`torch.save` and read back with
    ``torch.load(weights_only=True)``, which refuses anything but tensors and
    plain containers.

Loading executes no code from the file: the JSON decoder only builds the
types listed in :func:`_decode` (allow-listed classes among them: the
auxiliary encoder, FastICA, a few scikit-learn transformers), the
estimator class comes from the table of public estimator classes
(:data:`skivae._registry.ESTIMATORS`, filled as they are defined), and the
torch model is rebuilt by the estimator's own ``_build_module`` before the
weights are copied into it with a strict ``load_state_dict``.
"""

import hashlib
import io
import json
import math
import os
import zipfile
import zlib

import numpy as np
import sklearn
import torch
from scipy.interpolate import BSpline
from sklearn import kernel_approximation, pipeline, preprocessing
from sklearn.base import BaseEstimator
from sklearn.decomposition import FastICA

from skivae._aux import _AuxEncoder
from skivae._compat import check_is_fitted
from skivae._core._torch_utils import torch_seed
from skivae._inference import snapshot_params
from skivae._registry import ESTIMATORS
from skivae._version import __version__

FORMAT = "skivae-estimator"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_STATE = "estimator.json"
_WEIGHTS = "weights.pt"

#: The scikit-learn transformers an ``aux_transformer`` may be (alone or as
#: the steps of a Pipeline or FeatureUnion): their state is plain values,
#: arrays and (SplineTransformer) scipy BSplines.
_TRANSFORMER_CLASSES = {
    cls.__name__: cls
    for cls in (
        preprocessing.SplineTransformer,
        preprocessing.StandardScaler,
        preprocessing.MinMaxScaler,
        preprocessing.MaxAbsScaler,
        preprocessing.RobustScaler,
        preprocessing.PolynomialFeatures,
        preprocessing.OneHotEncoder,
        preprocessing.OrdinalEncoder,
        preprocessing.KBinsDiscretizer,
        preprocessing.Normalizer,
        preprocessing.Binarizer,
        preprocessing.QuantileTransformer,
        preprocessing.PowerTransformer,
        kernel_approximation.RBFSampler,
        kernel_approximation.Nystroem,
        kernel_approximation.SkewedChi2Sampler,
        kernel_approximation.AdditiveChi2Sampler,
        kernel_approximation.PolynomialCountSketch,
        pipeline.Pipeline,
        pipeline.FeatureUnion,
    )
}

#: Classes other than the estimators that may appear in the fitted state,
#: rebuilt from their constructor parameters and attribute dict.
_OBJECT_CLASSES = {
    "_AuxEncoder": _AuxEncoder,
    "FastICA": FastICA,
    **_TRANSFORMER_CLASSES,
}


# ------------------------------------------------------------------- encoding
class _Unstorable(TypeError):
    """A value the format does not store, with a message that says why."""


def _encode(value, where):
    """A JSON-compatible tagged form of ``value``; ``where`` names it in errors.

    Every JSON object in the output is a tag: ``{"dict": ...}``,
    ``{"tuple": ...}``, ``{"float": "nan"}``, ``{"ndarray": ...}``, ... so
    decoding is unambiguous. Non-finite floats are written as strings, which
    keeps the document strict JSON.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return {"npscalar": [value.dtype.str, _encode(value.item(), where)]}
    if isinstance(value, bytes):  # byte-string labels of u, one char per byte
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where} is a dict with non-string keys")
        return {"dict": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if isinstance(value, np.ndarray):
        return {"ndarray": _encode_array(value, where)}
    if isinstance(value, np.dtype):
        return {"dtype": _encode_dtype(value, where)}
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"sctype": _encode_dtype(np.dtype(value), where)}  # np.float64 itself
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, np.random.RandomState):
        return {"random_state": _encode(value.get_state(legacy=True), where)}
    if type(value) is BSpline:  # SplineTransformer's fitted splines
        parts = (value.t, value.c, value.k, value.extrapolate, value.axis)
        return {"bspline": _encode(parts, where)}
    name = type(value).__name__
    if _OBJECT_CLASSES.get(name) is type(value):
        return {"object": [name, _encode(vars(value), f"{where}.__dict__")]}
    if isinstance(value, BaseEstimator):
        kinds = ", ".join(sorted(_TRANSFORMER_CLASSES))
        raise _Unstorable(
            f"{where} is a {name}, which the skivae file format does not store; "
            f"an aux_transformer may be one of {kinds} (pickle or joblib the "
            "estimator to keep another transformer)"
        )
    if callable(value):  # e.g. Nystroem(kernel=<a function>)
        raise _Unstorable(
            f"{where} is a function ({getattr(value, '__name__', name)}), which "
            "the skivae file format does not store (it would be code); pickle "
            "or joblib the estimator instead"
        )
    raise TypeError(f"{where} has type {type(value).__name__}")


#: numpy dtype kinds a file stores: bool, integers, floats, str, bytes, object
_DTYPE_KINDS = "biufUSO"


def _encode_dtype(dtype, where):
    if dtype.kind not in _DTYPE_KINDS:
        raise TypeError(f"{where} has unsupported dtype {dtype}")
    return dtype.str


def _encode_array(arr, where):
    dtype = _encode_dtype(arr.dtype, where)
    flat = arr.ravel()
    if arr.dtype.kind == "O":
        data = [_encode(v, f"{where}[{i}]") for i, v in enumerate(flat)]
    elif arr.dtype.kind == "f":
        data = [v if math.isfinite(v) else repr(v) for v in flat.tolist()]
    elif arr.dtype.kind == "S":
        data = [v.decode("latin-1") for v in flat.tolist()]
    else:
        data = flat.tolist()
    return {"dtype": dtype, "shape": list(arr.shape), "data": data}


def _decode(value):
    """Inverse of :func:`_encode`; raises ValueError on anything unexpected."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(f"unexpected JSON value {str(value)[:80]}")
    ((tag, body),) = value.items()
    if tag == "dict":
        return {k: _decode(v) for k, v in body.items()}
    if tag == "tuple":
        return tuple(_decode(v) for v in body)
    if tag == "float":
        return float(body)
    if tag == "bytes":
        return str(body).encode("latin-1")
    if tag == "npscalar":
        return np.dtype(_decode_dtype(body[0])).type(_decode(body[1]))
    if tag == "ndarray":
        return _decode_array(body)
    if tag == "dtype":
        return np.dtype(_decode_dtype(body))
    if tag == "sctype":
        return np.dtype(_decode_dtype(body)).type
    if tag == "device":
        return torch.device(body)
    if tag == "random_state":
        rs = np.random.RandomState()
        rs.set_state(_decode(body))
        return rs
    if tag == "bspline":
        t, c, k, extrapolate, axis = _decode(body)
        if not isinstance(extrapolate, (bool, str)) or extrapolate not in (
            True,
            False,
            "periodic",
        ):
            raise ValueError(f"unexpected B-spline extrapolation {extrapolate!r}")
        return BSpline.construct_fast(t, c, int(k), extrapolate=extrapolate, axis=axis)
    if tag == "object":
        name, attrs = body
        if name not in _OBJECT_CLASSES:
            raise ValueError(f"unknown object class {name!r}")
        obj = _OBJECT_CLASSES[name].__new__(_OBJECT_CLASSES[name])
        obj.__dict__.update(_decode(attrs))
        return obj
    raise ValueError(f"unknown tag {tag!r}")


def _decode_dtype(text):
    dtype = np.dtype(str(text))
    if dtype.kind not in _DTYPE_KINDS:
        raise ValueError(f"unsupported dtype {text!r}")
    return dtype


def _decode_array(body):
    dtype = _decode_dtype(body["dtype"])
    shape = tuple(int(n) for n in body["shape"])
    data = body["data"]
    if dtype.kind == "O":
        flat = np.empty(len(data), dtype=object)
        flat[:] = [_decode(v) for v in data]
    elif dtype.kind == "f":
        flat = np.array([float(v) for v in data], dtype=dtype)
    elif dtype.kind == "S":
        flat = np.array([str(v).encode("latin-1") for v in data], dtype=dtype)
    else:
        flat = np.array(data, dtype=dtype)
    return flat.reshape(shape)


# ----------------------------------------------------------------------- save
def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _same(a, b):
    """Whether a parameter is unchanged: the same object, an equal plain
    value, or an estimator (``aux_transformer``) of the same class whose
    parameters are unchanged."""
    if a is b:
        return True
    if hasattr(a, "get_params") and hasattr(b, "get_params"):
        if type(a) is not type(b):
            return False
        pa, pb = a.get_params(deep=False), b.get_params(deep=False)
        return pa.keys() == pb.keys() and all(_same(pa[k], pb[k]) for k in pa)
    if isinstance(a, (list, tuple)) and type(a) is type(b):  # Pipeline steps
        return len(a) == len(b) and all(map(_same, a, b))
    try:
        if isinstance(a, np.random.RandomState) and type(b) is type(a):
            sa, sb = a.get_state(legacy=True), b.get_state(legacy=True)
            return np.array_equal(sa[1], sb[1]) and sa[:1] + sa[2:] == sb[:1] + sb[2:]
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return (
                a.dtype == b.dtype
                and a.shape == b.shape
                and _encode(a, "params") == _encode(b, "params")
            )
        return type(a) is type(b) and bool(a == b)
    except Exception:  # estimators without equality, unstorable arrays
        return False


def _save(estimator, path):
    """Write a fitted estimator to ``path`` (see :meth:`_BaseLatentEstimator.save`)."""
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise ValueError(
            f"save supports IdentifiableVAE and NonlinearICA, not {name}; subclasses "
            "are not supported: save the base class or pickle the object."
        )
    check_is_fitted(
        estimator,
        msg=(
            f"This {name} instance is not fitted yet, so there is nothing to save. "
            "Call fit(X, u) before save(path)."
        ),
    )
    params = estimator.get_params(deep=False)
    state = {k: v for k, v in vars(estimator).items() if k not in params}
    module = state.pop("module_")
    # The model is rebuilt from the parameters it was fitted with; parameters
    # set since (set_params after fit) are stored apart and set after loading.
    fitted = state.pop("_fitted_params", params)
    try:
        doc = {
            "estimator": name,
            "skivae_version": __version__,
            "sklearn_version": sklearn.__version__,
            "torch_version": torch.__version__,
            "params": _encode(fitted, "params"),
            "state": _encode(state, "state"),
        }
        changed = {k: v for k, v in params.items() if not _same(v, fitted[k])}
        if changed:
            doc["params_set_after_fit"] = _encode(changed, "params")
    except _Unstorable as exc:
        raise ValueError(f"Cannot save this {name}: {exc}.") from exc
    except TypeError as exc:
        raise ValueError(
            f"Cannot save this {name}: {exc}, which the skivae file format does not "
            "store (parameters must be plain values, e.g. random_state an int, None "
            "or a RandomState)."
        ) from exc
    doc_bytes = json.dumps(doc, allow_nan=False, indent=1).encode("utf-8")
    weights = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, weights)
    weights_bytes = weights.getvalue()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "files": {_STATE: _sha256(doc_bytes), _WEIGHTS: _sha256(weights_bytes)},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_MANIFEST, json.dumps(manifest, indent=1))
        zf.writestr(_STATE, doc_bytes)
        zf.writestr(_WEIGHTS, weights_bytes)
    if hasattr(path, "write"):
        if isinstance(path, io.TextIOBase):
            raise ValueError(
                f"{getattr(path, 'name', 'the file object')} was opened in text "
                "mode; a skivae file is binary: open it with open(path, 'wb')."
            )
        path.write(buffer.getvalue())
    else:
        with open(os.fspath(path), "wb") as fh:
            fh.write(buffer.getvalue())


# ----------------------------------------------------------------------- load
def _seek_hint(path):
    """For a file object: where its reading started."""
    if hasattr(path, "read"):
        return " (a file object is read from its current position: seek(0) first)"
    return ""


def _read_members(path):
    """The three members of a skivae file, checked against the manifest."""
    label = getattr(path, "name", None) or (
        "<file object>" if hasattr(path, "read") else os.fspath(path)
    )
    if hasattr(path, "read"):
        raw = path.read()
        if not isinstance(raw, (bytes, bytearray)):
            raise ValueError(
                f"{label} was opened in text mode; a skivae file is binary: open "
                "it with open(path, 'rb')."
            )
    elif isinstance(path, (bytes, bytearray)) and b"\0" in path:
        raise ValueError(
            "load takes a path or a binary file object, and got the bytes of a "
            "file: pass io.BytesIO(data)."
        )
    else:
        try:
            with open(os.fspath(path), "rb") as fh:
                raw = fh.read()
        except IsADirectoryError:
            raise ValueError(
                f"{label} is a directory, not a skivae file (written by "
                "est.save(path))."
            ) from None
    try:
        readable = zipfile.is_zipfile(io.BytesIO(raw))
    except ValueError:  # offsets that point before the data
        readable = False
    if not readable:
        what = (
            "a truncated or corrupted skivae file"
            if raw[:4] == b"PK\x03\x04"
            else "not a skivae file"
        )
        raise ValueError(
            f"{label} is {what}: it is not a readable zip archive "
            f"(skivae files are written by est.save(path)){_seek_hint(path)}."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = set(zf.namelist())
            if _MANIFEST not in names:
                raise ValueError(
                    f"{label} is not a skivae file: the zip archive has no "
                    f"{_MANIFEST} (skivae files are written by est.save(path))."
                )
            manifest = json.loads(zf.read(_MANIFEST))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ValueError(
                    f"{label} is not a skivae file: its manifest does not declare "
                    f"format {FORMAT!r}."
                )
            version = manifest.get("format_version")
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ValueError(f"{label}: invalid format_version {version!r}.")
            if version > FORMAT_VERSION:
                raise ValueError(
                    f"{label} uses skivae file format version {version}, newer than "
                    f"the version {FORMAT_VERSION} this skivae reads; upgrade skivae "
                    "to load it."
                )
            members = {}
            for member in (_STATE, _WEIGHTS):
                if member not in names:
                    raise ValueError(f"{label} is truncated: {member} is missing.")
                members[member] = zf.read(member)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{label} is corrupted: its manifest is not JSON.") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError) as exc:
        if str(exc).startswith(label):  # one of ours, above
            raise
        raise ValueError(
            f"{label} is corrupted or truncated and cannot be read: {exc}"
            f"{_seek_hint(path)}"
        ) from exc
    sums = manifest.get("files", {})
    for member, data in members.items():
        if not isinstance(sums, dict) or sums.get(member) != _sha256(data):
            raise ValueError(
                f"{label}: checksum mismatch for {member}; the file is corrupted or "
                "was modified after it was saved. Refusing to load it."
            )
    return label, members


def _load(path, expected=None):
    """Read an estimator written by ``save``; ``expected``: the class it must be."""
    label, members = _read_members(path)
    try:
        doc = json.loads(members[_STATE])
        name = doc["estimator"]
        params = _decode(doc["params"])
        state = _decode(doc["state"])
        later = doc.get("params_set_after_fit")
        later = {} if later is None else _decode(later)
        if not isinstance(name, str):
            raise TypeError(f"the estimator's name is {name!r}")
        for part, value in (("params", params), ("state", state), ("later", later)):
            if not isinstance(value, dict):
                raise TypeError(f"{part} is not a mapping")
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RuntimeError,  # torch.device("nonsense")
    ) as exc:
        raise ValueError(
            f"{label} is corrupted: cannot decode {_STATE} ({exc})."
        ) from exc
    if name not in ESTIMATORS:
        raise ValueError(f"{label} holds an unknown estimator class {name!r}.")
    cls = ESTIMATORS[name]
    if expected is not None and cls is not expected:
        raise ValueError(
            f"{label} holds an estimator of class {name}, not "
            f"{expected.__name__}; load it with "
            f"{name}.load(path) or skivae.load(path)."
        )
    try:
        est = cls(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{label}: the stored parameters do not fit this skivae's {name} "
            f"(saved by skivae {doc.get('skivae_version')}): {exc}"
        ) from exc
    lacking = [k for k in cls._required_state if k not in state]
    if lacking:
        raise ValueError(
            f"{label} is corrupted: its fitted state lacks {', '.join(lacking)}, "
            f"which every saved {name} holds (was {_STATE} edited?); save the "
            "model again from the fitted estimator."
        )
    est.__dict__.update(state)
    try:
        weights = torch.load(
            io.BytesIO(members[_WEIGHTS]), map_location="cpu", weights_only=True
        )
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise ValueError(
            f"{label}: {_WEIGHTS} is not a plain torch state dict ({exc})."
        ) from exc
    try:
        # _build_module draws a random initialisation: keep the caller's RNG.
        with torch_seed(0, torch.device("cpu")):
            module = est._build_module(est.n_features_in_, 0)
        module.load_state_dict(weights, strict=True)
    except (RuntimeError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{label}: the stored weights do not match the model this skivae builds "
            f"for the stored {name} (saved by skivae {doc.get('skivae_version')}): "
            f"{exc}"
        ) from exc
    est.module_ = module.cpu().eval()
    est._fitted_params = snapshot_params(est.get_params(deep=False))
    if later:
        try:
            est.set_params(**later)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{label}: the parameters set after fit do not fit this skivae's "
                f"{name}: {exc}"
            ) from exc
    return est


def load(path):
    """Load a fitted skivae estimator saved with ``est.save(path)``.

    The file is checked before anything is built from it: it must be a skivae
    zip archive of a format version this skivae reads, whose members match
    their SHA-256 checksums. The JSON state is decoded into plain values,
    numpy arrays and allow-listed classes (the auxiliary encoder, FastICA,
    the scikit-learn transformers an ``aux_transformer`` may be); the torch model is
    rebuilt with the estimator's own code and receives the weights through
    ``torch.load(weights_only=True)`` and a strict ``load_state_dict``. No
    code stored in the file is executed (unlike :func:`pickle.load`).

    Parameters
    ----------
    path : str, path-like or binary file object
        A file written by :meth:`IdentifiableVAE.save` or
        :meth:`NonlinearICA.save`.

    Returns
    -------
    estimator : IdentifiableVAE or NonlinearICA
        The fitted estimator (``module_`` on CPU). ``transform``, ``score``,
        ``sample(random_state=...)`` and ``inverse_transform`` give the same
        results as the estimator that was saved.

    Raises
    ------
    ValueError
        If the file is not a skivae file, is truncated or corrupted, fails its
        checksums, was written in a newer format version, or its contents do
        not fit this version of skivae.

    See Also
    --------
    IdentifiableVAE.load, NonlinearICA.load : The same, checking the class.

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> import skivae
    >>> from skivae import NonlinearICA
    >>> from skivae.datasets import make_nonstationary_sources
    >>> X, u, S = make_nonstationary_sources(6, 40, 2, random_state=0)
    >>> ica = NonlinearICA(method="gcl", max_iter=2, random_state=0).fit(X, u)
    >>> buffer = io.BytesIO()
    >>> ica.save(buffer)
    >>> _ = buffer.seek(0)
    >>> loaded = skivae.load(buffer)
    >>> type(loaded).__name__
    'NonlinearICA'
    >>> bool(np.array_equal(loaded.transform(X), ica.transform(X)))
    True
    """
    return _load(path)


class _PersistenceMixin:
    """``save`` and ``load`` of the estimators (see :func:`load`)."""

    def save(self, path):
        """Save the fitted estimator to one file, without pickle.

        The file is a zip archive holding a JSON document (the class, the
        versions that wrote it, :meth:`get_params` and the fitted state) and
        the torch weights (``module_.state_dict()``), with SHA-256 checksums
        of both. :func:`skivae.load` (or ``type(est).load``) reads it back
        without executing code from the file. A model fitted on a GPU is
        saved from its CPU copy and loads on machines without one.

        Parameters
        ----------
        path : str, path-like or binary file object
            Where to write; the suffix ``.skivae`` is customary.

        Raises
        ------
        ValueError
            If the estimator is not fitted (``NotFittedError``, a
            ``ValueError``), or a parameter cannot be stored (for example a
            ``random_state`` that is not an int, None or a ``RandomState``).

        See Also
        --------
        skivae.load : Read an estimator saved with this method.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import skivae
        >>> from skivae import IdentifiableVAE
        >>> from skivae.datasets import make_nonstationary_sources
        >>> X, u, S = make_nonstationary_sources(6, 40, 2, random_state=0)
        >>> est = IdentifiableVAE(2, max_iter=2, random_state=0).fit(X, u)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.skivae")
        >>> est.save(path)
        >>> same = IdentifiableVAE.load(path)
        >>> bool(np.array_equal(same.transform(X), est.transform(X)))
        True
        """
        _save(self, path)

    @classmethod
    def load(cls, path):
        """Load an estimator of this class saved with :meth:`save`.

        Like :func:`skivae.load`, and also checks that the file holds an
        estimator of this class.

        Parameters
        ----------
        path : str, path-like or binary file object

        Returns
        -------
        estimator : object
            The fitted estimator, with ``module_`` on CPU.

        Raises
        ------
        ValueError
            If the file holds another estimator class, or for any reason
            :func:`skivae.load` raises.
        """
        return _load(path, expected=cls)
