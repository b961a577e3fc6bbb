"""Batched inference of a trained model on numpy arrays.

Shared by the estimators (``transform``, ``score``, ``sample``, ...) and the
flow start, so both compute a model's outputs the same way.
"""

import contextlib
import copy
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_array, check_random_state

from skivae._compat import check_is_fitted
from skivae._core._torch_utils import (
    device_available,
    to_numpy,
    to_tensor,
    torch_seed,
    torch_threads,
)
from skivae._missing import validate_X
from skivae.datasets import _is_int
from skivae.preprocessing import _previous_rows


def as_tensor(A, device, dtype=torch.float32):
    """Codes (integer arrays) become LongTensors, anything else ``dtype``."""
    if A.dtype.kind in "iu":
        return to_tensor(A, device, dtype=torch.long)
    return to_tensor(A, device, dtype=dtype)


def inference_copy(module, device):
    """A copy of ``module`` for inference on ``device``, in eval mode.

    On CPU the copy runs in float64: results then do not depend on how rows
    are batched (float32 matrix kernels round differently for different
    batch shapes), so transforming a subset gives the same rows. A device
    that is not available here (a GPU-trained model loaded on a laptop)
    falls back to the CPU.
    """
    if not device_available(device):
        device = torch.device("cpu")
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    return copy.deepcopy(module).to(device=device, dtype=dtype).eval()


def apply_batched(
    module, fn, X, U=None, *, device, seed=None, n_threads=None, batch_size=1024
):
    """Apply ``fn(model, xb, ub)`` to row batches of numpy ``X`` and ``U``.

    ``batch_size`` None: about 64 000 cells of ``X`` per batch, between
    1 024 and 8 192 rows: the flow's ``transform`` (its module's
    ``transform_batch_size``), where 8 192 rows of 5 features go about 1.8
    times as fast as 1 024 on one thread. The iVAE's encoder is faster in
    batches of 1 024, and scores draw importance samples per row.

    Runs on :func:`inference_copy` of ``module`` in inference mode, inside
    ``torch_seed(seed)`` when a seed is given, with ``n_threads`` torch
    threads (None: unchanged). Returns a numpy array, or a tuple of them
    when ``fn`` returns a tuple.
    """
    model = inference_copy(module, device)
    param = next(model.parameters())
    dev, dtype = param.device, param.dtype
    if batch_size is None:
        batch_size = min(8192, max(1024, 65536 // max(1, X.shape[1])))
    outs = []
    ctx = torch_seed(seed, dev) if seed is not None else contextlib.nullcontext()
    with ctx, torch.inference_mode(), torch_threads(n_threads):
        for start in range(0, X.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            xb = as_tensor(X[rows], dev, dtype)
            ub = None if U is None else as_tensor(U[rows], dev, dtype)
            outs.append(fn(model, xb, ub))
    if isinstance(outs[0], tuple):
        return tuple(
            np.concatenate([to_numpy(o[i]) for o in outs]) for i in range(len(outs[0]))
        )
    return np.concatenate([to_numpy(o) for o in outs])


def standardise(A, name=None, return_constant=False):
    """``(mean, scale)`` per column of ``A`` over its observed (non-NaN)
    cells, in float64; a constant column gets scale 1 (``return_constant``:
    also the boolean mask of constant columns, third).

    With ``name`` (how the error calls ``A``, e.g. ``"X"``), a column whose
    mean or variance overflows float64 raises a ValueError naming the
    column and the remedy.

    A column counts as constant when its spread is within the rounding of
    its mean (the test of scikit-learn's ``StandardScaler``): the standard
    deviation of a column of n equal values is not always 0 in floating
    point (0.3 repeated gives about 6e-15), and dividing by it would turn
    rounding noise into a unit-variance feature and add about 33 nats per
    column to the log-likelihood. Columns of float32 ``X`` are summed in
    float64, so their variance neither underflows nor overflows.
    """
    A = np.asarray(A, dtype=np.float64)
    # (named: an overflow is the ValueError below, not a RuntimeWarning)
    quiet = np.errstate(over="ignore", invalid="ignore")
    with quiet if name is not None else contextlib.nullcontext():
        if np.isnan(A).any():
            n = np.sum(~np.isnan(A), axis=0)
            mean, scale = np.nanmean(A, axis=0), np.nanstd(A, axis=0)
        else:
            n = A.shape[0]
            mean, scale = A.mean(axis=0), A.std(axis=0)
    if name is not None:
        bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))
        if bad.size:
            col = int(bad[0])
            raise ValueError(
                f"{name} column {col} has values too large to standardise in "
                f"float64 (its variance overflows; largest magnitude "
                f"{np.nanmax(np.abs(A[:, col])):.3g}); divide it by a constant "
                "or take a log before fitting."
            )
    # var <= n eps var + (n mean eps)^2, taken in standard deviations so that
    # neither side overflows; an infinite scale is left for the caller
    eps = np.finfo(np.float64).eps
    with np.errstate(over="ignore", invalid="ignore"):
        spread = scale * np.sqrt(np.maximum(0.0, 1.0 - n * eps))
        constant = np.isfinite(scale) & (spread <= n * np.abs(mean) * eps)
    scale[constant] = 1.0
    if return_constant:
        return mean, scale, constant
    return mean, scale


def fixed_values(A, constant):
    """Per column of ``A``: its value where ``constant`` (the observed
    cells' median, exactly the value of a column of equal values, where
    the mean may be off by rounding), NaN elsewhere."""
    fixed = np.full(A.shape[1], np.nan)
    if constant.any():
        fixed[constant] = np.nanmedian(np.asarray(A, np.float64)[:, constant], axis=0)
    return fixed


def snapshot_params(params):
    """A copy of ``get_params(deep=False)`` that later changes leave alone:
    lists are copied (one may be changed in place), estimator parameters
    (``aux_transformer``) are cloned (a nested ``set_params`` changes the
    user's object; only the parameters matter, the encoder fits its own
    clone). Other values are kept as they are: ``random_state`` stays the
    user's object."""
    return {k: _snapshot_value(v) for k, v in params.items()}


def _snapshot_value(value):
    if isinstance(value, list):
        return copy.deepcopy(value)
    if hasattr(value, "get_params") and not isinstance(value, type):
        try:
            return clone(value)
        except Exception:  # not clonable: fitting u's encoder says why
            return value
    return value


def check_latents(Z, n_components, name):
    """Validate latents given to ``inverse_transform``."""
    Z = check_array(Z, dtype=[np.float64, np.float32], input_name=name)
    if Z.shape[1] != n_components:
        raise ValueError(
            f"{name} has {Z.shape[1]} columns but the model has "
            f"n_components_={n_components}."
        )
    return Z


def weighted_mean_score(scores, sample_weight):
    """The mean of per-row ``scores``, weighted by ``sample_weight`` if given.

    ``score``'s ``sample_weight`` (as scikit-learn's regressors' ``score``):
    non-negative finite weights, one per row, not all zero.
    """
    if sample_weight is None:
        return float(np.mean(scores))
    w = check_array(
        sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
    )
    if w.shape != scores.shape:
        raise ValueError(
            f"sample_weight must hold one weight per row of X ({scores.shape[0]}), "
            f"got shape {w.shape}."
        )
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(
            "sample_weight must be non-negative with a positive sum (the mean "
            "score is a weighted mean over the rows)."
        )
    return float(np.average(scores, weights=w))


def _check_n_samples(n_samples):
    if not _is_int(n_samples) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")


class _InferenceMixin:
    """Inference of a fitted estimator: the standardisation of ``X``, ``u``'s
    encoding, and batched calls of ``module_``'s methods (``features``,
    ``score_samples``, ``inverse``, ``sample``)."""

    @property
    def u_type_(self):
        return None if self.aux_encoder_ is None else self.aux_encoder_.u_type_

    @property
    def aux_classes_(self):
        return None if self.aux_encoder_ is None else self.aux_encoder_.classes_

    @property
    def n_aux_(self):
        return 0 if self.aux_encoder_ is None else self.aux_encoder_.n_aux_

    def _fitted_param(self, name, default=None, fitted=True):
        """The value of parameter ``name`` that the fitted model was built
        with: ``set_params`` after ``fit`` changes ``get_params()`` (and the
        next fit), never the fitted weights' meaning. Inference reads the
        parameters that shape the model (``ar_order``, ``likelihood``,
        ``method``) here, not from the attribute. ``fitted=False``: the
        current attribute (what the next ``fit`` will use)."""
        snapshot = getattr(self, "_fitted_params", None) if fitted else None
        if snapshot is not None and name in snapshot:
            return snapshot[name]
        return getattr(self, name, default)

    def _scale_x(self, X):
        return (X - self._x_mean) / self._x_scale

    def _unscale_x(self, X):
        """Standardised ``X`` back on the original scale; a column that was
        constant in training is that constant (a decoder's mean or draw is
        only near it), so imputing or sampling it gives the training value."""
        X = X * self._x_scale + self._x_mean
        # (models fitted before 0.7.1 have no _x_fixed: unchanged output)
        fixed = getattr(self, "_x_fixed", None)
        if fixed is not None and not np.isnan(fixed).all():
            X = np.where(np.isnan(fixed), X, fixed)
        return X

    def _log_jacobian(self, X=None):
        """log |det| of the map from the original X to the standardised one;
        given ``X`` with missing cells, per row over its observed cells."""
        log_scale = np.log(self._x_scale)
        if X is not None and np.isnan(X).any():
            return -(~np.isnan(X) * log_scale).sum(axis=1)
        return -float(np.sum(log_scale))

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_X(self, X, reset=False, fit=False)[0]

    def _encode_aux(self, u, n_samples, name="u"):
        """Encode ``u`` (the argument ``name``) for a fitted model (score,
        sample); None stays None."""
        if self.aux_encoder_ is None:
            if u is not None:
                warnings.warn(
                    "This model was fitted without u (plain VAE); the u given here is "
                    "ignored.",
                    UserWarning,
                    stacklevel=4,
                )
            return None
        if u is None:
            return None
        return self.aux_encoder_.transform(u, n_samples, name)

    def _batched(self, fn, X, U=None, seed=None, batch_size=1024):
        """``fn(model, xb, ub)`` over row batches of ``module_`` (see
        :func:`skivae._inference.apply_batched`)."""
        return apply_batched(
            self.module_,
            fn,
            X,
            U,
            device=self.device_,
            seed=seed,
            n_threads=self.n_threads,
            batch_size=batch_size,
        )

    def _features(self, X):
        """``module_.features`` of validated ``X``, in float64."""
        Xp = self._scale_x(np.asarray(X, dtype=np.float64))
        batch = getattr(self.module_, "transform_batch_size", 1024)
        feats = self._batched(lambda m, xb, ub: m.features(xb), Xp, batch_size=batch)
        return feats.astype(np.float64)

    def _score_samples(self, X, u, groups=None):
        """``module_.score_samples`` of validated ``X``, on X's original scale
        (``groups``: the sequences of a model with ``ar_order > 0``)."""
        Xp = self._scale_x(np.asarray(X, dtype=np.float64))
        U = self._encode_aux(u, X.shape[0])
        order = self._fitted_param("ar_order", 0)
        if order:
            if U is None and self.aux_encoder_ is not None:
                raise ValueError(
                    "This model (ar_order > 0) scores each row given its past and "
                    "its u: pass u for every row."
                )
            Xp, U = self._pack(Xp, U, groups, order)
        scores = self._batched(lambda m, xb, ub: m.score_samples(xb, ub), Xp, U)
        scores = scores.astype(np.float64)
        if self.module_.log_density:
            scores = scores + self._log_jacobian(X)
        return scores

    def _inverse(self, Z):
        """``module_.inverse`` of latents ``Z``, on X's original scale (float64)."""
        Xp = self._batched(lambda m, zb, ub: m.inverse(zb), Z)
        return self._unscale_x(Xp.astype(np.float64))

    def _sample(self, n_samples, u, random_state, groups=None):
        """Draw ``(X, Z)`` from ``module_.sample``: ``X`` on the original scale
        in the fit's dtype, ``Z`` the model's latents in float64 (with
        ``ar_order > 0``, sequences: one, or one per label of ``groups``)."""
        check_is_fitted(self)
        order = self._fitted_param("ar_order", 0)
        if u is not None and np.ndim(u) == 0:  # one value of u for every draw
            _check_n_samples(n_samples)
            u = np.repeat(np.asarray([u]), n_samples)
        if u is not None:
            n_samples = np.shape(u)[0]
            if n_samples == 0:
                raise ValueError(
                    "u is empty: give one value of u per row to draw, or a single "
                    "value to draw n_samples rows at it."
                )
        elif groups is not None and order:
            n_samples = len(groups)
        if groups is not None and order and len(groups) != n_samples:
            raise ValueError(
                f"groups must have one label per sampled row: got {len(groups)} "
                f"labels for {n_samples} rows of u."
            )
        _check_n_samples(n_samples)
        rng = check_random_state(
            self.random_state if random_state is None else random_state
        )
        if u is not None:
            U = self._encode_aux(u, n_samples)
        elif self.aux_encoder_ is None:
            U = None
        else:
            p = np.exp(self.aux_encoder_.log_weights_)
            idx = rng.choice(len(p), size=n_samples, p=p / p.sum())
            U = self.aux_encoder_.support_[idx]
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if order:
            Xs, Z = self._sample_sequences(n_samples, u, U, groups, seed)
        else:
            Xs, Z = self._batched(
                lambda m, xb, ub: m.sample(ub, xb.shape[0]),
                np.zeros((n_samples, 1)),
                U,
                seed=seed,
            )
        X = self._unscale_x(Xs.astype(np.float64))
        return X.astype(self._fit_dtype, copy=False), Z

    def _sample_sequences(self, n_rows, u, U, groups, seed):
        """Sequences drawn from a model with ``ar_order > 0`` (at the rows'
        ``u``, encoded as ``U``; ``groups`` None: one sequence): standardised
        ``X``, latents."""
        if u is None and self.aux_encoder_ is not None:
            raise ValueError(
                "This model (ar_order > 0) draws sequences at given values of u: "
                "pass u, one value per time step, in time order (and groups= "
                "for several sequences)."
            )
        previous = _previous_rows(groups, n_rows, self._fitted_param("ar_order"))
        model = inference_copy(self.module_, self.device_)
        param = next(model.parameters())
        with (
            torch_seed(seed, param.device),
            torch.inference_mode(),
            torch_threads(self.n_threads),
        ):
            ub = None if U is None else as_tensor(U, param.device, param.dtype)
            xs, z = model.sample_rows(ub, torch.as_tensor(previous))
        return to_numpy(xs), to_numpy(z).astype(np.float64)

    def _prior_moments(self, u, past=None, u_past=None):
        """Mean and standard deviation of each latent under the learned
        prior p(z | u), for a fitted model and given ``u`` (float64); with
        ``past`` (the last rows of a sequence, ``ar_order > 0``), the
        one-step forecast given them."""
        check_is_fitted(self)
        prior = getattr(self.module_, "prior", None)
        if prior is None:
            raise ValueError(
                f"predict_latent needs a learned prior p(z|u), which "
                f"method={self._fitted_param('method')!r} does not have; use "
                "method='flow' or method='ivae'."
            )
        order = self._fitted_param("ar_order", 0)
        if past is not None and not order:
            raise ValueError(
                "past= gives the last rows of a sequence to a model with "
                "ar_order > 0; this model has ar_order=0 (no memory)."
            )
        if self.aux_encoder_ is None and past is None:
            raise ValueError(
                f"This {type(self).__name__} was fitted without u, so its prior is "
                "the same for every row; fit it with u to predict latents at u"
                + (", or pass past= for a one-step forecast." if order else ".")
            )
        if self.aux_encoder_ is not None and u is None:
            raise ValueError("predict_latent needs u (one row per prediction).")
        if u is not None and np.ndim(u) == 0:  # one value of u: one prediction
            u = np.asarray([u])
        n_samples = 1 if u is None else np.shape(u)[0]
        if n_samples == 0:
            raise ValueError("predict_latent needs u with at least one row, got 0.")
        U = self._encode_aux(u, n_samples)
        k = self.n_components_
        factor = np.sqrt(2.0) if prior.kind == "laplace" else 1.0  # sd of Laplace(b)
        Pz, Pu = (None, None) if past is None else self._past_latents(past, u_past)

        def moments(m, xb, ub):
            like = xb.new_zeros((xb.shape[0], k))
            loc, log_s2 = m.prior.params(ub, like)
            loc = loc.expand_as(like)
            if Pz is not None:
                B = xb.shape[0]
                pz = as_tensor(Pz, xb.device, xb.dtype).expand(B, -1, -1)
                pu = None
                if Pu is not None:
                    pu = as_tensor(Pu, xb.device, xb.dtype)
                    pu = pu.expand((B,) + tuple(pu.shape))
                exists = like.new_ones((B, order))
                loc = loc + m.prior.shift(ub, pz, pu, exists)
            return loc, torch.exp(0.5 * log_s2).expand_as(like)

        loc, scale = self._batched(moments, np.zeros((n_samples, 1)), U)
        return loc.astype(np.float64), factor * scale.astype(np.float64)

    def _past_latents(self, past, u_past):
        """Latents ``(R, k)`` of the last ``ar_order`` rows of ``past``, the
        most recent first, and their encoded ``u`` (None without ``u``)."""
        order = self._fitted_param("ar_order")
        try:
            P = self._validate_X(past)
        except ValueError as exc:  # the messages name X
            raise ValueError(f"past, the previous rows of X: {exc}") from exc
        if P.shape[0] < order:
            raise ValueError(
                f"past has {P.shape[0]} row(s); a one-step forecast of a model with "
                f"ar_order={order} needs the last {order} rows of the sequence."
            )
        rows = np.arange(P.shape[0] - order, P.shape[0])[::-1]
        Pz = self._features(P[rows])[None]  # (1, R, k), r = 1 first
        if self.aux_encoder_ is None:
            if u_past is not None:
                warnings.warn(
                    "This model was fitted without u; the u_past given here is "
                    "ignored.",
                    UserWarning,
                    stacklevel=4,
                )
            return Pz, None
        if u_past is None:
            raise ValueError(
                "u_past is needed with past=: the values of u of the rows of past."
            )
        n_u = np.shape(u_past)[0] if np.ndim(u_past) else 1
        if n_u != P.shape[0]:
            raise ValueError(
                f"u_past has {n_u} value(s) but past has {P.shape[0]} row(s): give "
                "the u of every row of past, in the same order."
            )
        Pu = self._encode_aux(u_past, P.shape[0], "u_past")[rows]
        return Pz, Pu

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``prefix0``, ``prefix1``, ...

        The prefix is ``ivae`` for :class:`IdentifiableVAE` and ``nica`` for
        :class:`NonlinearICA` (instead of the lower-cased class name).

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in :meth:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        names = super().get_feature_names_out(input_features)
        return np.asarray(
            [f"{self._feature_prefix}{i}" for i in range(len(names))], dtype=object
        )
