"""Shared machinery of the skivae estimators.

:class:`_BaseLatentEstimator` holds the parameters every estimator shares, the
validation of ``X`` and of the auxiliary variable ``u``, seeding, device
handling, the fit driver (restarts, early stopping, convergence warnings) and
batched inference. Subclasses provide the model through a few hooks.
"""

import contextlib
import copy
import numbers
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state

from skivae._compat import (
    Interval,
    StrOptions,
    _check_feature_names_in,
    check_is_fitted,
    validate_data,
)
from skivae._core._torch_utils import (
    resolve_device,
    to_numpy,
    to_tensor,
    torch_seed,
    torch_threads,
)
from skivae._core.nets import ACTIVATIONS
from skivae._core.training import DivergenceError, train

_MAX_AUX_SUPPORT = 256  # rows of continuous u kept to score/sample without u


def _device_available(device):
    if device.type == "cuda":
        return (
            torch.cuda.is_available()
            and (device.index or 0) < torch.cuda.device_count()
        )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True


class IdentifiabilityWarning(UserWarning):
    """Warning raised when ``u`` cannot satisfy the identifiability conditions."""


def _auto_batch_size(n_samples):
    """Default mini-batch size: ``min(256, max(32, n_samples // 100))``.

    Identifiability comes late in training (after the reconstruction is
    learned), so what matters is the number of optimiser steps: small data
    sets get small batches, and every epoch takes about 100 steps or more.
    """
    return int(min(256, max(32, n_samples // 100)))


class _BaseLatentEstimator(TransformerMixin, BaseEstimator):
    """Base class: do not use directly."""

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "u_type": [StrOptions({"auto", "categorical", "continuous"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: prefix of the output feature names (``prefix0``, ``prefix1``, ...)
    _feature_prefix = "latent"
    #: whether ``fit`` accepts ``u=None``
    _u_optional = True

    # ------------------------------------------------------------------ hooks
    def _n_statistics(self):
        """Number k of sufficient statistics per component modulated by u."""
        return 1

    def _build_module(self, n_features, aux_kind, n_aux):  # pragma: no cover
        raise NotImplementedError

    def _loss(self, module, xb, ub, frac):  # pragma: no cover
        """Per-sample training loss (lower is better)."""
        raise NotImplementedError

    def _eval_loss(self, module, xb, ub):
        return self._loss(module, xb, ub, 1.0)

    def _after_fit(self, X, U):
        """Subclass hook run once the best module is chosen."""

    # ------------------------------------------------------------- validation
    def _check_params(self, n_features):
        for h in self.hidden_layer_sizes:
            if not isinstance(h, numbers.Integral) or isinstance(h, bool) or h < 1:
                raise ValueError(
                    "hidden_layer_sizes must be a tuple of positive integers, got "
                    f"{self.hidden_layer_sizes!r}."
                )
        if self.n_components is not None and self.n_components > n_features:
            raise ValueError(
                f"n_components={self.n_components} must be <= n_features={n_features}: "
                "the mixing must be injective, so there cannot be more latent "
                "components than observed features. Lower n_components."
            )

    def _validate_aux_fit(self, u, n_samples):
        """Encode ``u`` for training and record how to encode it later.

        Sets ``u_type_``, ``aux_classes_`` and the private encoders. Returns
        int64 codes (categorical), a standardised float array (continuous) or
        None.
        """
        self.aux_classes_ = None
        self._aux_mean = self._aux_scale = None
        self._aux_support = self._aux_log_weights = None
        if u is None:
            if not self._u_optional:
                raise ValueError(self._u_required_message())
            self.u_type_ = None
            self.n_aux_ = 0
            return None
        u_type = self._resolve_u_type(u)
        if u_type == "categorical":
            labels = self._check_categorical(u, n_samples)
            try:
                classes, codes = np.unique(labels, return_inverse=True)
            except TypeError as exc:
                raise ValueError(
                    "u contains labels of mixed types that cannot be sorted; give "
                    "u as one type (all strings or all numbers)."
                ) from exc
            self.u_type_ = "categorical"
            self.aux_classes_ = classes
            self.n_aux_ = len(classes)
            counts = np.bincount(codes.ravel(), minlength=len(classes))
            self._aux_support = np.arange(len(classes))
            self._aux_log_weights = np.log(counts / counts.sum())
            if len(classes) > 0.5 * n_samples and len(classes) > 1:
                warnings.warn(
                    f"u has {len(classes)} distinct values for {n_samples} samples, so "
                    "most categories hold a single sample. If u is a continuous "
                    "covariate (a time, a measurement), pass it as floats or set "
                    "u_type='continuous'.",
                    UserWarning,
                    stacklevel=2,
                )
            n_distinct = len(classes)
            encoded = codes.reshape(-1).astype(np.int64)
        else:
            U = self._check_continuous(u, n_samples)
            self.u_type_ = "continuous"
            self.n_aux_ = U.shape[1]
            self._aux_mean = U.mean(axis=0)
            scale = U.std(axis=0)
            scale[scale == 0] = 1.0
            self._aux_scale = scale
            encoded = (U - self._aux_mean) / self._aux_scale
            n_distinct = len(np.unique(U, axis=0))
            rng = np.random.RandomState(0)
            keep = rng.choice(
                n_samples, min(n_samples, _MAX_AUX_SUPPORT), replace=False
            )
            self._aux_support = encoded[np.sort(keep)]
            self._aux_log_weights = np.full(len(keep), -np.log(len(keep)))
        needed = self._n_statistics() * self._n_latent(self._n_features_fit) + 1
        if n_distinct < needed:
            warnings.warn(
                f"u takes {n_distinct} distinct value(s), but identifiability "
                f"(condition (iv) of Khemakhem et al. 2020) needs at least "
                f"n_statistics * n_components + 1 = {needed} distinct values that "
                "really change the prior. The latents may not be identifiable: "
                "collect more distinct values of u (more segments) or lower "
                "n_components.",
                IdentifiabilityWarning,
                stacklevel=2,
            )
        return encoded

    def _u_required_message(self):
        return f"{type(self).__name__} requires u."

    def _resolve_u_type(self, u):
        if self.u_type != "auto":
            return self.u_type
        arr = np.asarray(u)
        if arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "biuf":
            return "continuous"  # several numeric columns, e.g. one-hot codes
        if arr.dtype.kind in "biuOUS":
            return "categorical"
        if arr.dtype.kind == "f":
            flat = arr.reshape(-1) if arr.ndim <= 1 or arr.shape[1] == 1 else None
            if flat is not None and np.all(np.isfinite(flat)) and len(flat) > 0:
                if np.all(flat == np.round(flat)) and len(np.unique(flat)) <= 0.5 * len(
                    flat
                ):
                    warnings.warn(
                        "u is a float array whose values are all whole numbers; with "
                        "u_type='auto' it is treated as a continuous covariate. If "
                        "these are segment or class labels, pass them as integers or "
                        "set u_type='categorical'.",
                        UserWarning,
                        stacklevel=2,
                    )
            return "continuous"
        raise ValueError(
            f"u has dtype {arr.dtype}, which is neither labels nor numbers; pass "
            "integer or string labels (categorical u) or floats (continuous u)."
        )

    def _check_categorical(self, u, n_samples):
        arr = np.asarray(u)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr.ravel()
        if arr.ndim != 1:
            raise ValueError(
                f"categorical u must be 1-D (one label per sample), got shape "
                f"{arr.shape}. Pass continuous covariates as floats with "
                "u_type='continuous'."
            )
        if arr.shape[0] != n_samples:
            raise ValueError(
                f"u has {arr.shape[0]} entries but X has {n_samples} samples; give "
                "one value of u per row of X."
            )
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError("u contains NaN or infinity; remove or impute those rows.")
        if arr.dtype.kind == "O":
            for v in arr:
                if v is None or (isinstance(v, float) and not np.isfinite(v)):
                    raise ValueError(
                        "u contains missing labels (None or NaN); remove those rows."
                    )
        return arr

    def _check_continuous(self, u, n_samples):
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
        return check_array(arr, dtype=np.float64, input_name="u")

    def _encode_aux(self, u, n_samples):
        """Encode ``u`` for a fitted model (score, sample)."""
        if self.u_type_ is None:
            if u is not None:
                warnings.warn(
                    "This model was fitted without u (plain VAE); the u given here is "
                    "ignored.",
                    UserWarning,
                    stacklevel=2,
                )
            return None
        if u is None:
            return None
        if self.u_type_ == "categorical":
            labels = self._check_categorical(u, n_samples)
            classes = self.aux_classes_
            try:
                idx = np.searchsorted(classes, labels)
            except TypeError as exc:
                raise ValueError("u has labels of another type than at fit.") from exc
            idx = np.clip(idx, 0, len(classes) - 1)
            unseen = classes[idx] != labels
            if np.any(unseen):
                bad = np.unique(labels[unseen])[:5]
                raise ValueError(
                    f"u contains categories not seen during fit: {list(bad)}. "
                    "The prior "
                    "p(z|u) is only learned for the training categories "
                    f"({len(classes)} of them); drop those rows or refit with them."
                )
            return idx.astype(np.int64)
        U = self._check_continuous(u, n_samples)
        if U.shape[1] != self.n_aux_:
            raise ValueError(
                f"u has {U.shape[1]} columns but the model was fitted with "
                f"{self.n_aux_}; pass the same covariates as at fit."
            )
        return (U - self._aux_mean) / self._aux_scale

    def _aux_tensor(self, U, device, dtype=torch.float32):
        if U is None:
            return None
        if self.u_type_ == "categorical":
            return to_tensor(U, device, dtype=torch.long)
        return to_tensor(U, device, dtype=dtype)

    def _n_latent(self, n_features):
        return n_features if self.n_components is None else self.n_components

    def _preprocess_fit(self, X):
        """Standardise X (per feature); returns the transformed copy."""
        self._x_mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        self._x_scale = scale
        return self._preprocess(X)

    def _preprocess(self, X):
        return (X - self._x_mean) / self._x_scale

    def _postprocess(self, X):
        return X * self._x_scale + self._x_mean

    # -------------------------------------------------------------------- fit
    def _fit(self, X, y):
        with torch_threads(self.n_threads):
            return self._fit_impl(X, y)

    def _fit_impl(self, X, y):
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], ensure_min_samples=2, reset=True
        )
        n_samples, n_features = X.shape
        self._n_features_fit = n_features
        self._check_params(n_features)
        U = self._validate_aux_fit(y, n_samples)
        self.n_components_ = self._n_latent(n_features)
        self.device_ = resolve_device(self.device)
        self._fit_dtype = X.dtype
        rng = check_random_state(self.random_state)
        Xp = self._preprocess_fit(np.asarray(X, dtype=np.float64))

        X_all, U_all = Xp, U
        X_val = U_val = None
        if self.early_stopping:
            n_val = max(1, int(round(self.validation_fraction * n_samples)))
            if n_samples - n_val < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves fewer than "
                    f"2 training samples out of {n_samples}; lower it or pass more "
                    "data."
                )
            perm = rng.permutation(n_samples)
            val, tr = perm[:n_val], perm[n_val:]
            X_val, Xp = Xp[val], Xp[tr]
            if U is not None:
                U_val, U = U[val], U[tr]
        batch_size = (
            _auto_batch_size(Xp.shape[0])
            if self.batch_size == "auto"
            else self.batch_size
        )
        if self.batch_size != "auto" and self.batch_size > Xp.shape[0]:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {Xp.shape[0]} "
                "training samples; it is clipped.",
                UserWarning,
                stacklevel=2,
            )
        dev = self.device_
        Xt, Ut = to_tensor(Xp, dev), self._aux_tensor(U, dev)
        Xvt = None if X_val is None else to_tensor(X_val, dev)
        Uvt = self._aux_tensor(U_val, dev)
        aux_kind = self.u_type_
        n_aux = self.n_aux_

        best = None
        errors = []
        for init in range(self.n_init):
            seed = int(rng.randint(np.iinfo(np.int32).max))
            with torch_seed(seed, dev):
                module = self._build_module(n_features, aux_kind, n_aux).to(dev)
                progress = self._make_progress(init)
                try:
                    hist = train(
                        lambda xb, ub, frac, m=module: self._loss(m, xb, ub, frac),
                        module.parameters(),
                        Xt,
                        Ut,
                        Xvt,
                        Uvt,
                        max_iter=self.max_iter,
                        batch_size=batch_size,
                        learning_rate=self.learning_rate_init,
                        tol=self.tol,
                        n_iter_no_change=self.n_iter_no_change,
                        generator=torch.Generator().manual_seed(seed),
                        warmup_epochs=self._warmup_epochs(),
                        modules=[module],
                        progress=progress,
                        divergence_hint=self._divergence_hint(),
                        **self._train_options(),
                    )
                except DivergenceError as exc:
                    errors.append(exc)
                    continue
                finally:
                    if progress is not None:
                        progress.close()
                # Final objective of this restart, on the monitored data.
                Xs, Us = (Xt, Ut) if Xvt is None else (Xvt, Uvt)
                self._seed = seed
                final = self._mean_eval_loss(module, Xs, Us, seed)
            if not np.isfinite(final):
                errors.append(DivergenceError(f"final loss is {final}"))
                continue
            if best is None or final < best[0]:
                best = (final, module, hist, seed)
        if best is None:
            raise FloatingPointError(
                f"{type(self).__name__} training diverged in all {self.n_init} "
                f"initialisation(s) (last error: {errors[-1]}). "
                + self._divergence_hint()
            )
        final, module, hist, seed = best
        self.module_ = module.cpu().eval()
        self._seed = seed
        self.loss_curve_ = list(hist.train_loss)
        self.n_iter_ = hist.n_iter
        self.best_loss_ = min(hist.train_loss)
        if self.early_stopping:
            self.validation_scores_ = [-v for v in hist.val_loss]
            self.best_validation_score_ = max(self.validation_scores_)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._after_fit(X_all, U_all)
        if not hist.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge: max_iter={self.max_iter} "
                "epochs reached before the loss stopped improving by tol. Increase "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _warmup_epochs(self):
        return 0

    def _train_options(self):
        return {}

    def _divergence_hint(self):
        return (
            "Try a smaller learning_rate_init, standardising X, or a larger "
            "batch_size; check X for extreme values."
        )

    def _make_progress(self, init):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        desc = getattr(self, "_progress_name", type(self).__name__)
        if self.n_init > 1:
            desc += f" (init {init + 1}/{self.n_init})"
        bar = tqdm(total=self.max_iter, desc=desc, unit="epoch", leave=True)

        class _Progress:
            def __call__(self, epoch, train_loss, val_loss):
                post = {"loss": f"{train_loss:.4g}"}
                if val_loss is not None:
                    post["val_loss"] = f"{val_loss:.4g}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)

            def close(self):
                bar.close()

        return _Progress()

    def _mean_eval_loss(self, module, X, U, seed):
        losses = self._batched(
            module, X, U, lambda m, xb, ub: self._eval_loss(m, xb, ub), seed=seed
        )
        return float(losses.mean())

    # -------------------------------------------------------------- inference
    def _inference_module(self):
        """A copy of ``module_`` for inference on ``device_``.

        On CPU the copy runs in float64: results then do not depend on how
        rows are batched (float32 matrix kernels round differently for
        different batch shapes), so transforming a subset gives the same rows.
        """
        dev = self.device_
        if dev.type != "cpu" and not _device_available(dev):
            dev = torch.device("cpu")  # e.g. a GPU-trained model unpickled on a laptop
        dtype = torch.float64 if dev.type == "cpu" else torch.float32
        return copy.deepcopy(self.module_).to(device=dev, dtype=dtype)

    def _batched(self, module, X, U, fn, seed=None, batch_size=1024):
        """Apply ``fn(module, xb, ub)`` over row batches under inference mode.

        ``X``/``U`` may be numpy arrays (moved to the device batch by batch) or
        tensors already on the device. Returns a numpy array (or a tuple).
        """
        param = next(module.parameters())
        dev, dtype = param.device, param.dtype
        module.eval()
        outs = []
        ctx = torch_seed(seed, dev) if seed is not None else contextlib.nullcontext()
        with ctx, torch.inference_mode(), torch_threads(self.n_threads):
            for start in range(0, X.shape[0], batch_size):
                xb = X[start : start + batch_size]
                ub = None if U is None else U[start : start + batch_size]
                if not torch.is_tensor(xb):
                    xb = to_tensor(xb, dev, dtype=dtype)
                    ub = self._aux_tensor(ub, dev, dtype=dtype)
                out = fn(module, xb, ub)
                outs.append(out)
        if isinstance(outs[0], tuple):
            return tuple(
                np.concatenate([to_numpy(o[i]) for o in outs])
                for i in range(len(outs[0]))
            )
        return np.concatenate([to_numpy(o) for o in outs])

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``prefix0``, ``prefix1``, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the names seen in :meth:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_components_")
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray(
            [f"{self._feature_prefix}{i}" for i in range(self.n_components_)],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = not self._u_optional
        return tags
