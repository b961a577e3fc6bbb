"""Reading the auxiliary variable ``u``: one fitted encoder per estimator."""

import warnings

import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.utils import check_array

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

    def __init__(self, u_type="auto", transformer=None):
        self.u_type = u_type
        self.transformer = transformer

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

    def transform(self, u, n_samples):
        """Encode ``u`` of ``n_samples`` rows for a fitted model (score, sample)."""
        if getattr(self, "transformer_", None) is not None:  # (absent: files of 0.5)
            u = self._apply_transformer(u, n_samples, fit=False)
        if self.u_type_ == "categorical":
            return self._encode_categorical(u, n_samples)
        U = _check_continuous(u, n_samples)
        if U.shape[1] != self.n_aux_:
            raise ValueError(
                f"u has {U.shape[1]} columns but the model was fitted with "
                f"{self.n_aux_}; pass the same covariates as at fit."
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
    def _apply_transformer(self, u, n_samples, fit):
        """``u`` through the (fitted, or fitted here) ``transformer_``, as a
        dense 2-D array of ``n_samples`` rows."""
        arr = u
        if not hasattr(u, "iloc"):  # keep DataFrames (column names) as given
            arr = np.asarray(u)
            if arr.ndim == 1:
                arr = arr.reshape(-1, 1)
        if len(arr) != n_samples:
            raise ValueError(
                f"u has {len(arr)} rows but X has {n_samples} samples; give one "
                "value of u per row of X."
            )
        name = type(self.transformer_).__name__
        try:
            if fit:
                out = self.transformer_.fit_transform(arr)
            else:
                out = self.transformer_.transform(arr)
        except ValueError as exc:
            raise ValueError(
                f"aux_transformer ({name}) could not transform u: {exc}"
            ) from exc
        if sparse.issparse(out):
            out = out.toarray()
        out = np.asarray(out)
        if out.ndim == 1:
            out = out.reshape(-1, 1)
        if out.ndim != 2 or out.shape[0] != n_samples:
            raise ValueError(
                f"aux_transformer ({name}) returned shape {out.shape} for {n_samples} "
                "rows of u; it must return one row per row of u."
            )
        return out

    def _resolve_u_type(self, u, warn=True):
        """How ``u`` is read: ``"categorical"`` or ``"continuous"``."""
        if self.u_type != "auto":
            return self.u_type
        if self.transformer is not None:
            return "continuous"  # the transformer's output: covariates
        arr = np.asarray(u)
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
        labels = _check_categorical(u, n_samples)
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
            warnings.warn(
                f"u has {len(classes)} distinct values for {n_samples} samples, so "
                "most categories hold a single sample. If u is a continuous "
                "covariate (a time, a measurement), pass it as floats or set "
                "u_type='continuous'.",
                UserWarning,
                stacklevel=4,
            )
        return codes.reshape(-1).astype(np.int64)

    def _fit_continuous(self, u, n_samples, random_state):
        U = _check_continuous(u, n_samples)
        self.classes_ = None
        self.n_aux_ = U.shape[1]
        self.n_distinct_ = len(np.unique(U, axis=0))
        self.mean_ = U.mean(axis=0)
        scale = U.std(axis=0)
        scale[scale == 0] = 1.0
        self.scale_ = scale
        encoded = (U - self.mean_) / self.scale_
        keep = random_state.choice(
            n_samples, min(n_samples, _MAX_SUPPORT), replace=False
        )
        self.support_ = encoded[np.sort(keep)]
        self.log_weights_ = np.full(len(keep), -np.log(len(keep)))
        return encoded

    # ------------------------------------------------------------ transform
    def _encode_categorical(self, u, n_samples):
        labels = _check_categorical(u, n_samples)
        classes = self.classes_
        try:
            idx = np.searchsorted(classes, labels)
        except TypeError as exc:
            raise ValueError("u has labels of another type than at fit.") from exc
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
                f"u contains categories not seen during fit: {bad}. The "
                "prior p(z|u) is only learned for the training categories "
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


def _check_finite(arr):
    """Refuse a numeric ``u`` with NaN or infinity, naming the remedy."""
    if not np.all(np.isfinite(arr)):
        raise ValueError("u contains NaN or infinity; remove or impute those rows.")


def _check_categorical(u, n_samples):
    arr = np.asarray(u)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(
            f"categorical u must be 1-D (one label per sample), got shape "
            f"{arr.shape}. Continuous covariates need a model that takes them: "
            "pass them as floats with u_type='continuous' (method='tcl' takes "
            "labels only; use method='gcl' or 'ivae')."
        )
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"u has {arr.shape[0]} entries but X has {n_samples} samples; give "
            "one value of u per row of X."
        )
    if arr.dtype.kind == "f":
        _check_finite(arr)
    if arr.dtype.kind == "O":
        for v in arr:
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                raise ValueError(
                    "u contains missing labels (None or NaN); remove those rows."
                )
    return arr


def _check_continuous(u, n_samples):
    arr = np.asarray(u)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"continuous u must be numeric, got dtype {arr.dtype}. Use "
            "u_type='categorical' for labels."
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"continuous u must be 1-D or 2-D, got shape {arr.shape}.")
    if arr.shape[0] != n_samples:
        raise ValueError(
            f"u has {arr.shape[0]} rows but X has {n_samples} samples; give "
            "one value of u per row of X."
        )
    _check_finite(arr)
    return check_array(arr, dtype=np.float64, input_name="u")
