"""Shared machinery of the skivae estimators.

:class:`_BaseLatentEstimator` holds the parameters every estimator shares (and
their documentation, ``_SHARED_PARAMETERS``), the validation of ``X``, the
auxiliary-variable encoder, seeding, device handling, the fit driver (restarts,
early stopping, convergence warnings) and batched inference. A subclass adds
its own parameters and builds its :class:`~skivae._core.base.LatentModel` in
``_build_module``.
"""

import contextlib
import copy
import inspect
import numbers
import re
import textwrap
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skivae._aux import _AuxEncoder
from skivae._compat import Interval, StrOptions, check_is_fitted, validate_data
from skivae._core._torch_utils import (
    device_available,
    resolve_device,
    to_numpy,
    to_tensor,
    torch_seed,
    torch_threads,
)
from skivae._core.nets import ACTIVATIONS
from skivae._core.training import DivergenceError, held_out_loss, train


class IdentifiabilityWarning(UserWarning):
    """Warning raised when ``u`` cannot satisfy the identifiability conditions."""


def _auto_batch_size(n_samples):
    """Default mini-batch size: ``min(256, max(32, n_samples // 100))``.

    Identifiability comes late in training (after the reconstruction is
    learned), so what matters is the number of optimiser steps: small data
    sets get small batches, and every epoch takes about 100 steps or more.
    """
    return int(min(256, max(32, n_samples // 100)))


#: numpydoc entries of the parameters every estimator shares; a class
#: docstring includes them with a line ``%(shared_parameters)s``.
_SHARED_PARAMETERS = """\
u_type : {"auto", "categorical", "continuous"}, default="auto"
    How to read ``u``. With ``"auto"``, integer, boolean and string labels
    are categorical (a lookup table gives the model's parameters) and
    floats are continuous (an MLP gives them). Several numeric columns
    (covariates, or one-hot codes) are continuous. A float array holding
    only whole numbers is read as continuous with a warning.

hidden_layer_sizes : tuple of int, default=(64, 64)
    Widths of the hidden layers of the network that computes the latents
    (encoder or feature extractor). The iVAE's decoder mirrors them, and
    its prior for continuous ``u`` uses the first one.

activation : {"leaky_relu", "relu", "elu", "tanh", "gelu", "silu", \
"xtanh"}, default="leaky_relu"
    Hidden-layer non-linearity.

max_iter : int, default=40
    Maximum number of epochs.

batch_size : int or "auto", default="auto"
    Mini-batch size; ``"auto"`` uses ``min(256, max(32, n_samples // 100))``
    (about 100 optimiser steps per epoch or more).

learning_rate_init : float, default=1e-2
    Adam's initial learning rate, decayed by a cosine schedule over
    ``max_iter`` epochs.

early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the data, stop when its held-out
    objective (the iVAE's ``score``: its importance-weighted bound, see
    ``n_importance``) stops improving and restore the best weights.

validation_fraction : float, default=0.1
    Share of the data held out when ``early_stopping=True``.

n_iter_no_change : int, default=10
    Epochs without an improvement of at least ``tol`` (relative) before
    training stops.

tol : float, default=1e-4
    Relative improvement of the monitored loss that counts as progress.

n_init : int, default=1
    Number of restarts from different initialisations; the one with the
    best final held-out objective (on the training data, or on the
    validation split with ``early_stopping=True``) is kept, like
    ``GaussianMixture``'s ``n_init``; for the iVAE that is its ``score``,
    the importance-weighted bound with ``n_importance`` samples.

warm_start : bool, default=False
    When True and the estimator is already fitted, :meth:`fit` continues
    training the fitted model (``module_``) on the data it is given instead
    of starting from a new initialisation, like ``MLPRegressor``: it keeps
    how ``u`` is read (``aux_encoder_``) and the standardisation of ``X``,
    ignores ``n_init``, runs up to ``max_iter`` more epochs (with a fresh
    optimiser and learning-rate schedule), extends ``loss_curve_`` and
    ``validation_scores_`` and adds to ``n_iter_``. The data must have the
    same features and the same categories of ``u`` (or the same number of
    covariates) as the fitted model, and the parameters that shape the
    model (``n_components``, ``hidden_layer_sizes``, the prior, ...) must
    not change; otherwise ``fit`` raises a ``ValueError`` and leaves the
    fitted model as it was.

    .. versionadded:: 0.2

device : str, default="cpu"
    ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``. A model
    fitted on a GPU is moved back to the CPU; unpickled where that device
    is missing, it runs its inference on the CPU.

n_threads : int or None, default=1
    Torch CPU threads used by ``fit`` and inference (restored afterwards).
    Models of this size run fastest on one thread, and one thread per
    process keeps parallel searches (``n_jobs``) from oversubscribing the
    cores; ``None`` keeps torch's current setting.

random_state : int, RandomState instance or None, default=None
    Seeds everything ``fit`` draws: initialisation, mini-batch order,
    training noise, the validation split, restarts (and TCL's FastICA).
    Same seed, same data, CPU: identical results.

verbose : int, default=0
    Show a progress bar with the current loss."""

#: numpydoc entries of the fitted attributes every estimator shares
#: (``%(shared_attributes)s``).
_SHARED_ATTRIBUTES = """\
n_components_ : int
    Number of latent components.
module_ : LatentModel
    The trained torch model (on CPU, in eval mode).
loss_curve_ : list of float
    Mean training loss per epoch (the negative ELBO for the iVAE), over all
    the fits of ``warm_start=True``.
best_loss_ : float
    Lowest value of ``loss_curve_``.
validation_scores_ : list of float or None
    Mean held-out objective per epoch (``early_stopping=True``), else None.
best_validation_score_ : float or None
    Highest value of ``validation_scores_``.
n_iter_ : int
    Number of epochs run (summed over the fits of ``warm_start=True``).
aux_encoder_ : object or None
    How ``u`` is read, fitted on the training ``u`` and used again by
    ``score`` and ``sample`` (None when fitted without ``u``).
u_type_ : {"categorical", "continuous"} or None
    How ``u`` was read (None: fitted without ``u``).
aux_classes_ : ndarray or None
    Categories of a categorical ``u``.
n_aux_ : int
    Number of categories, or of continuous covariates, of ``u``.
device_ : torch.device
    Device used for training.
n_features_in_ : int
    Number of features seen during :meth:`fit`.
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :meth:`fit` (only when ``X`` has string
    column names)."""


def _fill_docstring(doc, skip=()):
    """Replace ``%(shared_parameters)s`` / ``%(shared_attributes)s`` lines.

    Shared parameters named in ``skip`` (those a subclass redefines and
    documents itself) are left out.
    """
    entries = _SHARED_PARAMETERS.split("\n\n")
    params = "\n\n".join(e for e in entries if e.split(" :")[0] not in skip)
    for key, text in (
        ("shared_parameters", params),
        ("shared_attributes", _SHARED_ATTRIBUTES),
    ):
        doc = re.sub(
            rf"^( *)%\({key}\)s$",
            lambda m, text=text: textwrap.indent(text, m.group(1)),
            doc,
            flags=re.MULTILINE,
        )
    return doc


class _BaseLatentEstimator(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator, metaclass=ABCMeta
):
    """Base class: do not use directly.

    A subclass's ``__init__`` takes ``n_components`` and its own parameters,
    stores those and passes ``**shared`` on to this ``__init__``; its
    signature (what ``get_params`` and ``clone`` see) is completed with the
    shared parameters when the class is created.
    """

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
        "warm_start": ["boolean"],
        "device": [str],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    #: prefix of the output feature names (``prefix0``, ``prefix1``, ...)
    _feature_prefix = "latent"
    #: whether ``fit`` requires ``u`` (the ``target_tags.required`` tag)
    _u_required = False

    def __init__(
        self,
        n_components=None,
        *,
        u_type="auto",
        hidden_layer_sizes=(64, 64),
        activation="leaky_relu",
        max_iter=40,
        batch_size="auto",
        learning_rate_init=1e-2,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        n_init=1,
        warm_start=False,
        device="cpu",
        n_threads=1,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.u_type = u_type
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_init = n_init
        self.warm_start = warm_start
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        redefined = ()
        if "__init__" in vars(cls):
            own = inspect.signature(cls.__init__).parameters
            shared = inspect.signature(_BaseLatentEstimator.__init__).parameters
            params = [p for p in own.values() if p.kind is not p.VAR_KEYWORD]
            params += [p for name, p in shared.items() if name not in own]
            cls.__init__.__signature__ = inspect.Signature(params)
            redefined = [name for name in own if name in shared]
        if cls.__doc__:
            cls.__doc__ = _fill_docstring(cls.__doc__, skip=redefined)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _build_module(self, n_features, seed):
        """A new :class:`~skivae._core.base.LatentModel` for this fit.

        Called inside the restart's ``torch_seed(seed)``; ``seed`` may also
        seed the model's fixed scoring draws.
        """

    @abstractmethod
    def _n_statistics(self):
        """Number k of sufficient statistics per component modulated by u."""

    def _aux_u_type(self):
        """The ``u_type`` the auxiliary encoder uses."""
        return self.u_type

    def _check_aux(self):
        """Subclass checks of the fitted ``aux_encoder_`` (raise ValueError)."""

    def _fit_x_scaling(self, X):
        """Learn how to standardise ``X`` (per feature)."""
        self._x_mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        self._x_scale = scale

    def _after_fit(self, Xp, seed):
        """Subclass hook run once the best restart is kept (``Xp``: all rows)."""

    def _training_settings(self):
        """``max_iter``, ``learning_rate_init`` and ``n_init`` for this fit.

        Subclasses whose parameters accept ``"auto"`` resolve them here.
        """
        return {
            "max_iter": self.max_iter,
            "learning_rate_init": self.learning_rate_init,
            "n_init": self.n_init,
        }

    def _auto_batch_size(self, n_train):
        """The batch size ``batch_size="auto"`` stands for."""
        return _auto_batch_size(n_train)

    # ---------------------------------------------------------- fitted state
    @property
    def u_type_(self):
        return None if self.aux_encoder_ is None else self.aux_encoder_.u_type_

    @property
    def aux_classes_(self):
        return None if self.aux_encoder_ is None else self.aux_encoder_.classes_

    @property
    def n_aux_(self):
        return 0 if self.aux_encoder_ is None else self.aux_encoder_.n_aux_

    @property
    def _n_features_out(self):
        return self.n_components_

    # -------------------------------------------------------------------- fit
    def _fit(self, X, y):
        warm = self.warm_start and hasattr(self, "module_")
        with torch_threads(self.n_threads):
            start = None
            if warm:
                X, U, rng, split, seeds, start = self._start_warm_fit(X, y)
            else:
                self._fit_settings = self._training_settings()
                X, rng, split, seeds = self._start_fit(X)
                U = self._fit_aux(y, X.shape[0], rng)
                self._fit_x_scaling(X)
            Xp = self._scale_x(X)
            data = self._training_tensors(Xp, U, split)
            module, hist, seed = self._fit_restarts(
                X.shape[1], data, seeds, start=start
            )
            self._keep(module, hist, extend=warm)
            self._after_fit(Xp, seed)
        if not hist.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge: "
                f"max_iter={self._fit_settings['max_iter']} "
                "epochs reached before the loss stopped improving by tol. Increase "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _start_warm_fit(self, X, y):
        """``_start_fit`` for ``warm_start=True`` on a fitted estimator.

        Checks ``X`` and ``u`` against the fitted model, encodes ``u`` with
        the fitted ``aux_encoder_`` and returns the model to continue from (a
        copy of ``module_``, see :meth:`_continued_module`) with one seed. If
        a check fails, the fitted state is restored before the ValueError.
        """
        saved = dict(vars(self))
        try:
            self._fit_settings = {**self._training_settings(), "n_init": 1}
            X, rng, split, seeds = self._start_fit(X, reset=False)
            U = self._warm_aux(y, X.shape[0])
            start = self._continued_module(X.shape[1], seeds[0])
        except ValueError:
            vars(self).clear()
            vars(self).update(saved)
            raise
        return X, U, rng, split, seeds, start

    def _warm_aux(self, u, n_samples):
        """Encode ``u`` with the fitted ``aux_encoder_`` (warm start)."""
        enc = self.aux_encoder_
        if (enc is None) != (u is None):
            fitted = "without u" if enc is None else "with u"
            raise ValueError(
                f"warm_start=True continues the fitted model, which was fitted "
                f"{fitted}; pass {'no' if enc is None else 'a'} u as well, or set "
                "warm_start=False to fit a new model."
            )
        if enc is None:
            return None
        try:
            U = enc.transform(u, n_samples)
        except ValueError as exc:
            raise ValueError(
                f"warm_start=True continues the fitted model, which cannot read "
                f"this u: {exc} Set warm_start=False to fit a new model."
            ) from exc
        if enc.u_type_ == "categorical" and len(np.unique(U)) != enc.n_aux_:
            raise ValueError(
                f"warm_start=True continues the fitted model, whose u has "
                f"{enc.n_aux_} categories, but this u has {len(np.unique(U))} of "
                "them; pass data from every category, or set warm_start=False to "
                "fit a new model."
            )
        return U

    def _continued_module(self, n_features, seed):
        """A copy of ``module_`` to continue training (warm start).

        The model the current parameters build, holding the fitted weights;
        a ValueError if their shapes differ (a parameter that shapes the
        model changed). The scoring draws ``iwae_eps`` are redrawn when
        ``n_importance`` changed.
        """
        with torch_seed(seed, torch.device("cpu")):
            module = self._build_module(n_features, seed)
        new, old = module.state_dict(), self.module_.state_dict()
        redraw = {"iwae_eps"}
        if new.keys() != old.keys() or any(
            new[k].shape != old[k].shape for k in new if k not in redraw
        ):
            raise ValueError(
                "warm_start=True continues the fitted model, but the current "
                "parameters build a model of another shape (n_components, "
                "hidden_layer_sizes, prior, posterior, method, ... changed since "
                "the last fit); restore them or set warm_start=False to fit a new "
                "model."
            )
        module.load_state_dict(
            {
                k: new[k] if k in redraw and new[k].shape != old[k].shape else old[k]
                for k in new
            }
        )
        return module

    def _start_fit(self, X, reset=True):
        """Validate ``X`` and the parameters; draw the split and restart seeds.

        The seeds are drawn before the auxiliary encoder draws its support
        rows, so training does not depend on how ``u`` is read. With
        ``reset=False`` (warm start), ``X`` must have the fitted features.
        """
        try:
            X = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                ensure_min_samples=2,
                reset=reset,
            )
        except ValueError as exc:
            if reset or "features" not in str(exc):
                raise
            raise ValueError(
                f"{exc} warm_start=True continues the fitted model, which needs "
                "the same features; set warm_start=False to fit a new model."
            ) from exc
        n_samples, n_features = X.shape
        self._check_params(n_features)
        self.n_components_ = self.n_components or n_features
        self.device_ = resolve_device(self.device)
        self._fit_dtype = X.dtype
        rng = check_random_state(self.random_state)
        split = None
        if self.early_stopping:
            n_val = max(1, int(round(self.validation_fraction * n_samples)))
            if n_samples - n_val < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} leaves fewer "
                    f"than 2 training samples out of {n_samples}; lower it or pass "
                    "more data."
                )
            perm = rng.permutation(n_samples)
            split = (perm[:n_val], perm[n_val:])
        n_init = self._fit_settings["n_init"]
        seeds = [int(rng.randint(np.iinfo(np.int32).max)) for _ in range(n_init)]
        return np.asarray(X, dtype=np.float64), rng, split, seeds

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

    def _fit_aux(self, u, n_samples, rng):
        """Fit ``aux_encoder_`` on ``u``; returns the encoded training ``u``."""
        if u is None:
            self.aux_encoder_ = None
            return None
        self.aux_encoder_ = _AuxEncoder(self._aux_u_type())
        U = self.aux_encoder_.fit(u, n_samples, rng)
        self._check_aux()
        needed = self._n_statistics() * self.n_components_ + 1
        if self.aux_encoder_.n_distinct_ < needed:
            warnings.warn(
                f"u takes {self.aux_encoder_.n_distinct_} distinct value(s), but "
                "identifiability (condition (iv) of Khemakhem et al. 2020) needs at "
                f"least n_statistics * n_components + 1 = {needed} distinct values "
                "that really change the prior. The latents may not be identifiable: "
                "collect more distinct values of u (more segments) or lower "
                "n_components.",
                IdentifiabilityWarning,
                stacklevel=4,
            )
        return U

    def _training_tensors(self, Xp, U, split):
        """``(X, U, X_val, U_val)`` on ``device_`` (``X_val`` None: no split)."""
        X_val = U_val = None
        if split is not None:
            val_rows, train_rows = split
            X_val, Xp = Xp[val_rows], Xp[train_rows]
            if U is not None:
                U_val, U = U[val_rows], U[train_rows]
        return tuple(
            None if a is None else self._tensor(a, self.device_)
            for a in (Xp, U, X_val, U_val)
        )

    def _batch_size(self, n_train):
        if self.batch_size == "auto":
            return self._auto_batch_size(n_train)
        if self.batch_size > n_train:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_train} "
                "training samples; it is clipped.",
                UserWarning,
                stacklevel=5,
            )
        return self.batch_size

    def _fit_restarts(self, n_features, data, seeds, start=None):
        """Train one model per seed; returns the best ``(module, history, seed)``.

        ``start`` (warm start, one seed): the model to continue training.
        """
        batch_size = self._batch_size(data[0].shape[0])
        best, errors = None, []
        for init, seed in enumerate(seeds):
            try:
                module, hist, final = self._fit_one(
                    n_features, data, seed, init, batch_size, start=start
                )
            except DivergenceError as exc:
                errors.append(exc)
                continue
            if not np.isfinite(final):
                errors.append(DivergenceError(f"final loss is {final}"))
            elif best is None or final < best[0]:
                best = (final, module, hist, seed)
        if best is None:
            raise FloatingPointError(
                f"{type(self).__name__} training diverged in all {len(seeds)} "
                f"initialisation(s) (last error: {errors[-1]}) Try a smaller "
                "learning_rate_init, standardising X, or a larger batch_size; check "
                "X for extreme values."
            )
        return best[1:]

    def _fit_one(self, n_features, data, seed, init, batch_size, start=None):
        """One restart: returns the model, its history and its final held-out loss.

        The final loss (``-score_samples`` on the validation split, or on the
        training data without one) chooses between restarts. ``start``: a
        model to continue training instead of a new one.
        """
        X, U, X_val, U_val = data
        with torch_seed(seed, self.device_):
            if start is None:
                start = self._build_module(n_features, seed)
            module = start.to(self.device_)
            progress = self._make_progress(init)
            try:
                hist = train(
                    module,
                    *data,
                    max_iter=self._fit_settings["max_iter"],
                    batch_size=batch_size,
                    learning_rate=self._fit_settings["learning_rate_init"],
                    tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    generator=torch.Generator().manual_seed(seed),
                    progress=progress,
                )
            finally:
                if progress is not None:
                    progress.close()
        if X_val is None:
            return module, hist, held_out_loss(module, X, U)
        return module, hist, held_out_loss(module, X_val, U_val)

    def _keep(self, module, hist, extend=False):
        """Keep the trained model and its history (``extend``: warm start)."""
        self.module_ = module.cpu().eval()
        if extend:
            self.loss_curve_ = self.loss_curve_ + list(hist.train_loss)
            self.n_iter_ = self.n_iter_ + hist.n_iter
        else:
            self.loss_curve_ = list(hist.train_loss)
            self.n_iter_ = hist.n_iter
        self.best_loss_ = min(self.loss_curve_)
        if self.early_stopping:
            scores = [-v for v in hist.val_loss]
            if extend and self.validation_scores_ is not None:
                scores = self.validation_scores_ + scores
            self.validation_scores_ = scores
            self.best_validation_score_ = max(scores)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _make_progress(self, init):
        if not self.verbose:
            return None
        from tqdm.auto import tqdm

        desc = type(self).__name__
        n_init, max_iter = self._fit_settings["n_init"], self._fit_settings["max_iter"]
        if n_init > 1:
            desc += f" (init {init + 1}/{n_init})"
        bar = tqdm(total=max_iter, desc=desc, unit="epoch", leave=True)

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

    def _aux_support_tensors(self):
        """Training support of ``u`` and its log-weights, for ``_build_module``."""
        if self.aux_encoder_ is None:
            return None, None
        enc, cpu = self.aux_encoder_, torch.device("cpu")
        return self._tensor(enc.support_, cpu), to_tensor(enc.log_weights_, cpu)

    # -------------------------------------------------------------- inference
    @staticmethod
    def _tensor(A, device, dtype=torch.float32):
        """Codes (integer arrays) become LongTensors, anything else ``dtype``."""
        if A.dtype.kind in "iu":
            return to_tensor(A, device, dtype=torch.long)
        return to_tensor(A, device, dtype=dtype)

    def _scale_x(self, X):
        return (X - self._x_mean) / self._x_scale

    def _unscale_x(self, X):
        return X * self._x_scale + self._x_mean

    def _log_jacobian(self):
        """log |det| of the map from the original X to the standardised one."""
        return -float(np.sum(np.log(self._x_scale)))

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _encode_aux(self, u, n_samples):
        """Encode ``u`` for a fitted model (score, sample); None stays None."""
        if self.aux_encoder_ is None:
            if u is not None:
                warnings.warn(
                    "This model was fitted without u (plain VAE); the u given here is "
                    "ignored.",
                    UserWarning,
                    stacklevel=4,
                )
            return None
        return None if u is None else self.aux_encoder_.transform(u, n_samples)

    def _inference_module(self):
        """A copy of ``module_`` for inference on ``device_``.

        On CPU the copy runs in float64: results then do not depend on how
        rows are batched (float32 matrix kernels round differently for
        different batch shapes), so transforming a subset gives the same rows.
        """
        dev = self.device_
        if not device_available(dev):
            dev = torch.device("cpu")  # e.g. a GPU-trained model unpickled on a laptop
        dtype = torch.float64 if dev.type == "cpu" else torch.float32
        return copy.deepcopy(self.module_).to(device=dev, dtype=dtype)

    def _batched(self, fn, X, U=None, seed=None, batch_size=1024):
        """Apply ``fn(model, xb, ub)`` to row batches of numpy ``X`` and ``U``.

        Runs on a copy of ``module_`` (see :meth:`_inference_module`) in eval
        and inference mode, inside ``torch_seed(seed)`` when a seed is given.
        Returns a numpy array, or a tuple of them when ``fn`` returns a tuple.
        """
        module = self._inference_module().eval()
        param = next(module.parameters())
        dev, dtype = param.device, param.dtype
        outs = []
        ctx = torch_seed(seed, dev) if seed is not None else contextlib.nullcontext()
        with ctx, torch.inference_mode(), torch_threads(self.n_threads):
            for start in range(0, X.shape[0], batch_size):
                rows = slice(start, start + batch_size)
                xb = self._tensor(X[rows], dev, dtype)
                ub = None if U is None else self._tensor(U[rows], dev, dtype)
                outs.append(fn(module, xb, ub))
        if isinstance(outs[0], tuple):
            return tuple(
                np.concatenate([to_numpy(o[i]) for o in outs])
                for i in range(len(outs[0]))
            )
        return np.concatenate([to_numpy(o) for o in outs])

    def _features(self, X):
        """``module_.features`` of validated ``X``, in float64."""
        Xp = self._scale_x(np.asarray(X, dtype=np.float64))
        return self._batched(lambda m, xb, ub: m.features(xb), Xp).astype(np.float64)

    def _score_samples(self, X, u):
        """``module_.score_samples`` of validated ``X``, on X's original scale."""
        Xp = self._scale_x(np.asarray(X, dtype=np.float64))
        U = self._encode_aux(u, X.shape[0])
        scores = self._batched(lambda m, xb, ub: m.score_samples(xb, ub), Xp, U)
        scores = scores.astype(np.float64)
        if self.module_.log_density:
            scores = scores + self._log_jacobian()
        return scores

    def _inverse(self, Z):
        """``module_.inverse`` of latents ``Z``, on X's original scale (float64)."""
        Xp = self._batched(lambda m, zb, ub: m.inverse(zb), Z)
        return self._unscale_x(Xp.astype(np.float64))

    def _sample(self, n_samples, u, random_state):
        """Draw ``(X, Z)`` from ``module_.sample``: ``X`` on the original scale
        in the fit's dtype, ``Z`` the model's latents in float64."""
        check_is_fitted(self)
        if u is not None:
            n_samples = len(u)
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(
                f"n_samples must be a positive integer, got {n_samples!r}."
            )
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
        Xs, Z = self._batched(
            lambda m, xb, ub: m.sample(ub, xb.shape[0]),
            np.zeros((n_samples, 1)),
            U,
            seed=seed,
        )
        X = self._unscale_x(Xs.astype(np.float64))
        return X.astype(self._fit_dtype, copy=False), Z

    # ------------------------------------------------------------ persistence
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
        from skivae._persistence import _save

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
        from skivae._persistence import _load

        return _load(path, expected=cls)

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = self._u_required
        return tags
