"""Reading the auxiliary variable ``u``: one fitted encoder per estimator."""

import warnings

import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.utils import check_array

from skivae._inference import standardise
from skivae.preprocessing import _is_missing_label

_MAX_SUPPORT = 256  # rows of continuous u kept to score and sample without u


class IdentifiabilityWarning(UserWarning):
    """Warning raised when ``u`` cannot satisfy the identifiability conditions."""


def resolve_u_type(u_type, u, transformer=None):
    """How an estimator with parameter ``u_type`` (and ``aux_transformer``)
    reads ``u`` (None: no ``u``), before fitting its encoder; warns nothing
    (the fit does)."""
    if u is None:
        return None
    return _AuxEncoder(u_type, transformer)._resolve_u_type(u, warn=False)


class _AuxEncoder:
    """Validates and encodes ``u``; fitted once in ``fit``, reused afterwards.

    A categorical ``u`` becomes int64 codes ``0 .. n_aux_ - 1`` (indices into
    ``classes_``); a continuous one becomes float64 columns standardised with
    the training mean and standard deviation.

    Parameters
    ----------
    u_type : {"auto", "categorical", "continuous"}
        The estimator's ``u_type`` parameter.
    transformer : scikit-learn transformer or None
        The estimator's ``aux_transformer``: a clone of it is fitted on the
        training ``u`` and applied to every ``u`` before the encoding above
        (its output is then read as continuous unless ``u_type`` says
        otherwise).

    Attributes
    ----------
    u_type_ : {"categorical", "continuous"}
    transformer_ : scikit-learn transformer or None
        The fitted clone of ``transformer``.
    classes_ : ndarray or None
        Sorted categories of a categorical ``u``.
    n_aux_ : int
        Number of categories, or of continuous covariates.
    n_distinct_ : int
        Number of distinct values (rows) of ``u`` at fit.
    support_ : ndarray
        Encoded training values of ``u``: every category code, or up to 256
        rows of continuous ``u`` drawn at random.
    log_weights_ : ndarray
        Log-probability of each ``support_`` entry under the training
        distribution of ``u`` (category frequencies, or uniform over rows).
    """

    #: the model takes labels only (TCL): advice for other kinds of u names
    #: the methods that take covariates (a class default: encoders saved
    #: before 0.6 lack the attribute)
    labels_only = False
    #: column names of a continuous ``u`` fitted as a DataFrame (see above)
    column_names_ = None

    def __init__(self, u_type="auto", transformer=None, labels_only=False):
        self.u_type = u_type
        self.transformer = transformer
        self.labels_only = labels_only

    def fit(self, u, n_samples, random_state):
        """Learn how to encode ``u``; returns the encoded training values.

        ``random_state`` (a ``RandomState``) draws the rows of continuous
        ``u`` kept in ``support_``.
        """
        self.transformer_ = None
        if self.transformer is not None:
            self.transformer_ = clone(self.transformer)
            u = self._apply_transformer(u, n_samples, fit=True)
        self.u_type_ = self._resolve_u_type(u)
        if self.u_type_ == "categorical":
            return self._fit_categorical(u, n_samples)
        return self._fit_continuous(u, n_samples, random_state)

    def transform(self, u, n_samples, name="u"):
        """Encode ``u`` of ``n_samples`` rows for a fitted model (score, sample).

        ``name`` is the argument that holds ``u`` (``"u_past"``), for errors.
        """
        if getattr(self, "transformer_", None) is not None:  # (absent: files of 0.5)
            u = self._apply_transformer(u, n_samples, fit=False, name=name)
        if self.u_type_ == "categorical":
            return self._encode_categorical(u, n_samples, name)
        given, fitted = _column_names(u), self.column_names_
        if given is not None and fitted is not None and list(given) != list(fitted):
            raise ValueError(
                f"{name} has the columns {list(given)}, but the model was fitted "
                f"with {list(fitted)}: pass the same covariates in the same order, "
                f"e.g. {name}[{list(fitted)}]."
            )
        U = _check_continuous(u, n_samples, name)
        if U.shape[1] != self.n_aux_:
            hint = ""
            if np.ndim(u) == 1 and len(u) == self.n_aux_:
                hint = (
                    f" (one row of {self.n_aux_} covariates is np.reshape(u, (1, -1)))"
                )
            raise ValueError(
                f"{name} has {U.shape[1]} columns but the model was fitted with "
                f"{self.n_aux_}; pass the same covariates as at fit{hint}."
            )
        return (U - self.mean_) / self.scale_

    def warn_if_too_few(self, needed, stacklevel=5):
        """Warn when ``u`` took fewer than ``needed`` distinct values at fit."""
        if self.n_distinct_ < needed:
            warnings.warn(
                f"u takes {self.n_distinct_} distinct value(s), but "
                "identifiability (condition (iv) of Khemakhem et al. 2020) needs at "
                f"least n_statistics * n_components + 1 = {needed} distinct values "
                "that really change the prior. The latents may not be identifiable: "
                "collect more distinct values of u (more segments) or lower "
                "n_components.",
                IdentifiabilityWarning,
                stacklevel=stacklevel,
            )

    # ------------------------------------------------------------------ fit
    def _apply_transformer(self, u, n_samples, fit, name="u"):
        """``u`` through the (fitted, or fitted here) ``transformer_``, as a
        dense 2-D array of ``n_samples`` rows."""
        arr = u
        if not (_is_frame(u) or sparse.issparse(u)):  # DataFrames keep their names
            arr = np.asarray(u)  # a Series, like a 1-D array, is one column
            if arr.ndim == 0:
                raise ValueError(_not_per_row(u, name))
            if arr.ndim == 1:
                arr = arr.reshape(-1, 1)
        if arr.shape[0] != n_samples:
            raise ValueError(
                f"{name} has {arr.shape[0]} rows but X has {n_samples} samples; give "
                f"one value of {name} per row of X."
            )
        tname = type(self.transformer_).__name__
        try:
            if fit:
                out = self.transformer_.fit_transform(arr)
            else:
                out = self.transformer_.transform(arr)
        except ValueError as exc:
            raise ValueError(
                f"aux_transformer ({tname}) could not transform {name}: {exc}"
            ) from exc
        if sparse.issparse(out):
            out = out.toarray()
        out = np.asarray(out)
        if out.ndim == 1:
            out = out.reshape(-1, 1)
        if out.ndim != 2 or out.shape[0] != n_samples:
            raise ValueError(
                f"aux_transformer ({tname}) returned shape {out.shape} for "
                f"{n_samples} rows of {name}; it must return one row per row of u."
            )
        if out.dtype.kind in "fc" and not np.all(np.isfinite(out)):
            raise ValueError(
                f"aux_transformer ({tname}) returned NaN or infinity for {name}: "
                f"check that {name} is finite and inside the domain of its "
                "function (and that it has no missing values)."
            )
        return out

    def _resolve_u_type(self, u, warn=True):
        """How ``u`` is read: ``"categorical"`` or ``"continuous"``."""
        if self.u_type != "auto":
            return self.u_type
        if self.transformer is not None:
            return "continuous"  # the transformer's output: covariates
        arr = _as_array(u)
        if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "biuf":
            return "continuous"  # several numeric columns, e.g. one-hot codes
        if arr.dtype.kind in "biuOUS":
            return "categorical"
        if arr.dtype.kind == "f":
            if warn:
                _warn_if_whole_numbers(arr)
            return "continuous"
        raise ValueError(
            f"u has dtype {arr.dtype}, which is neither labels nor numbers; pass "
            "integer or string labels (categorical u) or floats (continuous u)."
        )

    def _fit_categorical(self, u, n_samples):
        labels = _check_categorical(u, n_samples, labels_only=self.labels_only)
        try:
            classes, codes = np.unique(labels, return_inverse=True)
        except TypeError as exc:
            raise ValueError(
                "u contains labels of mixed types that cannot be sorted; give "
                "u as one type (all strings or all numbers)."
            ) from exc
        self.classes_ = classes
        self.n_aux_ = self.n_distinct_ = len(classes)
        self.mean_ = self.scale_ = None
        counts = np.bincount(codes.ravel(), minlength=len(classes))
        self.support_ = np.arange(len(classes))
        self.log_weights_ = np.log(counts / counts.sum())
        if len(classes) > 0.5 * n_samples and len(classes) > 1:
            advice = (
                "bin it into segments (e.g. with KBinsDiscretizer), or use "
                "method='gcl' or 'ivae', which take a continuous u"
                if self.labels_only
                else "pass it as floats or set u_type='continuous'"
            )
            warnings.warn(
                f"u has {len(classes)} distinct values for {n_samples} samples, so "
                "most categories hold a single sample. If u is a continuous "
                f"covariate (a time, a measurement), {advice}.",
                UserWarning,
                stacklevel=4,
            )
        return codes.reshape(-1).astype(np.int64)

    def _fit_continuous(self, u, n_samples, random_state):
        U = _check_continuous(u, n_samples)
        self.column_names_ = _column_names(u)
        self.classes_ = None
        self.n_aux_ = U.shape[1]
        self.n_distinct_ = len(np.unique(U, axis=0))
        self.mean_, self.scale_ = standardise(U, name="u")
        encoded = (U - self.mean_) / self.scale_
        keep = random_state.choice(
            n_samples, min(n_samples, _MAX_SUPPORT), replace=False
        )
        self.support_ = encoded[np.sort(keep)]
        self.log_weights_ = np.full(len(keep), -np.log(len(keep)))
        return encoded

    # ------------------------------------------------------------ transform
    def _encode_categorical(self, u, n_samples, name="u"):
        labels = _check_categorical(u, n_samples, name, self.labels_only)
        classes = self.classes_
        try:
            idx = np.searchsorted(classes, labels)
        except TypeError as exc:
            raise ValueError(
                f"{name} has labels of another type than at fit "
                f"(the training labels are of type {type(classes[0]).__name__})."
            ) from exc
        idx = np.clip(idx, 0, len(classes) - 1)
        with warnings.catch_warnings():
            # numpy < 2 compares labels of another type (str vs int) to a
            # scalar False, with a FutureWarning: then every label is unseen.
            warnings.simplefilter("ignore", FutureWarning)
            seen = classes[idx] == labels
        unseen = ~np.broadcast_to(seen, labels.shape)
        if np.any(unseen):
            bad = np.unique(labels[unseen])[:5].tolist()
            raise ValueError(
                f"{name} contains categories not seen during fit: {bad}. The "
                "model knows only the training categories "
                f"({len(classes)} of them); drop those rows or refit with them."
            )
        return idx.astype(np.int64)


def _warn_if_whole_numbers(arr):
    flat = arr.reshape(-1) if arr.ndim <= 1 or arr.shape[1] == 1 else None
    if flat is None or len(flat) == 0 or not np.all(np.isfinite(flat)):
        return
    if np.all(flat == np.round(flat)) and len(np.unique(flat)) <= 0.5 * len(flat):
        warnings.warn(
            "u is a float array whose values are all whole numbers; with "
            "u_type='auto' it is treated as a continuous covariate. If these "
            "are segment or class labels, pass them as integers or set "
            "u_type='categorical'.",
            UserWarning,
            stacklevel=5,
        )


def _check_finite(arr, name="u"):
    """Refuse a numeric ``u`` with NaN or infinity, naming the remedy."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinity; remove or impute those rows."
        )


def _is_frame(u):
    """Whether ``u`` is a pandas DataFrame (2-D, with columns)."""
    return hasattr(u, "iloc") and hasattr(u, "columns")


def _column_names(u):
    """A DataFrame's column names when all are strings (as scikit-learn
    records ``feature_names_in_``), else None."""
    if not _is_frame(u):
        return None
    names = list(u.columns)
    if not names or not all(isinstance(c, str) for c in names):
        return None
    return np.asarray(names, dtype=object)


def _as_array(u):
    """``u`` as a numpy array: a sparse matrix densified, and a DataFrame of
    several numeric or boolean columns (numpy, nullable or pyarrow dtypes;
    ``np.asarray`` would give objects) as float64 with NaN for missing cells."""
    if sparse.issparse(u):
        return u.toarray()
    if _is_frame(u) and u.shape[1] > 1:
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        if all(is_numeric_dtype(t) or is_bool_dtype(t) for t in u.dtypes):
            return u.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(u)


def _not_per_row(u, name):
    return (
        f"{name} must hold one value per row of X (an array-like), got "
        f"{type(u).__name__} {u!r:.60}."
    )


def _check_categorical(u, n_samples, name="u", labels_only=False):
    arr = _as_array(u)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim == 0:
        raise ValueError(_not_per_row(u, name))
    if arr.ndim != 1:
        advice = (
            "method='tcl' takes labels only; use method='gcl' or 'ivae' for "
            "continuous covariates."
            if labels_only
            else "Several numeric columns are continuous covariates: pass them "
            "as floats, or set u_type='continuous'."
        )
        raise ValueError(
            f"categorical {name} must be 1-D (one label per sample), got shape "
            f"{arr.shape}. {advice}"
        )
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but X has {n_samples} samples; give "
            f"one value of {name} per row of X."
        )
    if arr.dtype.kind == "f":
        _check_finite(arr, name)
    if arr.dtype.kind == "O":
        for v in arr:
            if _is_missing_label(v):
                raise ValueError(
                    f"{name} contains missing labels (None, NaN or pandas NA); "
                    "remove those rows."
                )
    return arr


def _check_continuous(u, n_samples, name="u"):
    arr = _as_array(u)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"continuous {name} must be numeric, got dtype {arr.dtype}. Use "
            "u_type='categorical' for labels."
        )
    if arr.ndim == 0:
        raise ValueError(_not_per_row(u, name))
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(
            f"continuous {name} must be 1-D or 2-D, got shape {arr.shape}."
        )
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {arr.shape[0]} rows but X has {n_samples} samples; give "
            f"one value of {name} per row of X."
        )
    _check_finite(arr, name)
    return check_array(arr, dtype=np.float64, input_name=name)
