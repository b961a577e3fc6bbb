"""The estimators' base class: shared parameters, the one fit loop, inference.

:class:`_BaseLatentEstimator` validates ``X`` and ``u``, seeds, resolves the
device, runs the fit loop (restarts, early stopping, warm start, convergence
warnings) and batched inference. An estimator fills its hooks:

- ``_resolve_settings``: the :class:`~skivae._defaults.Settings` of a fit
  (every ``"auto"`` resolved by :mod:`skivae._defaults`);
- ``_build_module``: its :class:`~skivae._core.base.LatentModel`, built
  with :mod:`skivae._builders` and, when asked, started by :mod:`skivae._start`;
- ``_n_statistics``, and optionally ``_accepts_missing``, ``_aux_u_type``,
  ``_check_aux``, ``_fit_x_scaling`` and ``_after_fit``.
"""

import inspect
import numbers
import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import replace
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

from skivae import _warm
from skivae._aux import IdentifiabilityWarning, _AuxEncoder, resolve_u_type
from skivae._builders import make_ar_model
from skivae._compat import HasMethods, Interval, StrOptions
from skivae._core._torch_utils import (
    resolve_device,
    torch_seed,
    torch_threads,
    training_context,
)
from skivae._core.ar import pack_rows
from skivae._core.missing import gaussian_stats
from skivae._core.nets import ACTIVATIONS
from skivae._core.training import DivergenceError, mean_score_loss, train
from skivae._defaults import auto_batch_size, epochs, patience
from skivae._docs import fill_docstring
from skivae._inference import (
    _InferenceMixin,
    as_tensor,
    fixed_values,
    snapshot_params,
    standardise,
)
from skivae._persistence import _PersistenceMixin
from skivae._progress import make_progress
from skivae._registry import register
from skivae.preprocessing import _group_codes, _previous_rows

#: constraints of the shared parameters (each estimator adds its own)
_SHARED_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left"), None],
    "hidden_layer_sizes": [tuple, list],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "u_type": [StrOptions({"auto", "categorical", "continuous"})],
    "aux_transformer": [HasMethods(["fit", "transform"]), None],
    "ar_order": [Interval(Integral, 0, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "n_init": [Interval(Integral, 1, None, closed="left")],
    "warm_start": ["boolean"],
    "device": [str],
    "n_threads": [Interval(Integral, 1, None, closed="left"), None],
    "compile": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


class _BaseLatentEstimator(
    _InferenceMixin,
    _PersistenceMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Base class: do not use directly. A subclass's ``__init__`` stores its
    own parameters and passes ``**shared`` on; its signature (what
    ``get_params`` sees) gets the shared ones when the class is created."""

    _parameter_constraints: dict = dict(_SHARED_CONSTRAINTS)

    #: prefix of the output feature names (``prefix0``, ``prefix1``, ...)
    _feature_prefix = "latent"
    #: whether ``fit`` requires ``u`` (the ``target_tags.required`` tag)
    _u_required = False

    def __init__(
        self,
        n_components=None,
        *,
        u_type="auto",
        aux_transformer=None,
        ar_order=0,
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
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.u_type = u_type
        self.aux_transformer = aux_transformer
        self.ar_order = ar_order
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
        self.compile = compile
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
            cls.__doc__ = fill_docstring(cls.__doc__, skip=redefined)
        for method in vars(cls).values():  # the methods' shared entries
            if inspect.isfunction(method) and method.__doc__:
                method.__doc__ = fill_docstring(method.__doc__)
        register(cls)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _resolve_settings(self, n_features, u_type, fitted=None):
        """The :class:`~skivae._defaults.Settings` of this fit; ``u_type``:
        how ``u`` is read (None: no ``u``); ``fitted``: the fitted attributes
        of the model a warm start continues (else None)."""

    @abstractmethod
    def _build_module(self, n_features, seed, *, n_restarts=1, init_data=None):
        """A new :class:`~skivae._core.base.LatentModel` for this fit.

        Called inside the restart's ``torch_seed(seed)``. ``n_restarts > 1``
        only where the settings ask for batched restarts; ``init_data``: the
        training tensors ``(X, U)`` when ``init_ == "flow"`` (start there).
        """

    @abstractmethod
    def _n_statistics(self):
        """Number k of sufficient statistics per component modulated by u."""

    def _accepts_missing(self, fitted=False):
        """Whether ``fit`` and ``transform`` take missing cells (NaN) in X
        (see :mod:`skivae._missing`); ``fitted``: the fitted model does."""
        return False

    def _aux_u_type(self):
        """The ``u_type`` the auxiliary encoder uses."""
        return self.u_type

    def _check_aux(self):
        """Subclass checks of the fitted ``aux_encoder_`` (raise ValueError)."""

    def _fit_x_scaling(self, X):
        """Learn how to standardise ``X`` (per feature)."""
        mean, scale, constant = standardise(X, name="X", return_constant=True)
        self._x_mean, self._x_scale = mean, scale
        # the value of each column constant in training (NaN: it varies)
        self._x_fixed = fixed_values(X, constant)

    def _after_fit(self, Xp, seed):
        """Run once the best restart is kept (``Xp``: all rows, standardised)."""

    # ---------------------------------------------------------- fitted state
    @property
    def _n_features_out(self):
        return self.n_components_

    # -------------------------------------------------------------- fit loop
    def _fit(self, X, y, groups=None):
        """The fit loop: prepare, train the restarts, keep the best."""
        warm = self.warm_start and hasattr(self, "module_")
        # What the weights are trained with: set_params after fit changes
        # get_params() but not the model; inference reads these
        # (_fitted_param) and save rebuilds this model.
        params = snapshot_params(self.get_params(deep=False))
        # A fit that raises leaves the estimator as it was (the previous model,
        # or unfitted), never a mix of old and new fitted attributes.
        with (
            _warm.restoring_on_error(self),
            torch_threads(self.n_threads),
            training_context(),
        ):
            X, U, split, seeds, settings, start = self._prepare_fit(X, y, warm)
            Xp = self._scale_x(X)
            if self.ar_order:  # rows packed with their past (see _core.ar)
                _check_ar_order(self.ar_order, groups, len(Xp))
                Xp_fit, U_fit = self._pack(Xp, U, groups, self.ar_order)
            else:
                Xp_fit, U_fit = Xp, U
            data = _training_tensors(Xp_fit, U_fit, split, self.device_)
            # (the flow start of an AR model reads the packed rows too)
            init_data = data[:2] if start is None and self._flow_start() else None
            try:
                module, hist, seed = self._train_restarts(
                    data, seeds, settings, start, init_data
                )
            finally:  # the modules hold it now; it is no fitted state
                vars(self).pop("_fill_stats", None)
            self._keep(module, hist, extend=warm)
            self._fitted_params = params
            self._after_fit(Xp, seed)
            # max_iter="auto" is a schedule of steps whose learning rate decays
            # to 1% at its end: reaching it is the plan, not a failure to
            # converge. (Inside the block: raised as an error, it restores.)
            if not hist.converged and not settings.auto_max_iter:
                warnings.warn(
                    f"{type(self).__name__} did not converge: "
                    f"max_iter={settings.max_iter} epochs reached before the loss "
                    "stopped improving by tol. Increase max_iter or tol.",
                    ConvergenceWarning,
                    stacklevel=4,  # the user's fit (through sklearn's wrapper)
                )
        return self

    def _pack(self, Xp, U, groups, order):
        """Rows of standardised ``Xp`` (and encoded ``U``) packed with their
        ``order`` previous rows of the same group (see :mod:`skivae._core.ar`)."""
        previous = _previous_rows(groups, len(Xp), order)
        return pack_rows(Xp, U, previous, order)

    def _warn_gaussian_innovations(self):
        """``u=None`` with ``ar_order > 0``: only non-Gaussian innovations
        make the sources identifiable."""
        if self.prior != "laplace":
            warnings.warn(
                f"ar_order={self.ar_order} without u and prior={self.prior!r}: "
                "sources with Gaussian innovations are not identifiable from their "
                "temporal dependence alone; use prior='laplace' (non-Gaussian "
                "innovations), or pass u.",
                IdentifiabilityWarning,
                stacklevel=3,
            )

    def _with_memory(self, module):
        """``module`` with an autoregressive prior when ``ar_order > 0``."""
        if not self.ar_order:
            return module
        return make_ar_model(
            module,
            self.ar_order,
            self.aux_encoder_,
            hidden_layer_sizes=self.hidden_layer_sizes,
            activation=self.activation,
        )

    def _flow_start(self):
        return getattr(self, "init_", None) == "flow"

    def _prepare_fit(self, X, y, warm):
        """Validate, resolve the settings, draw the split and restart seeds
        (before ``u``'s encoder draws its support rows), encode ``u``. A warm
        start also returns the model to continue (``_fit`` restores the
        fitted state if one of its checks fails)."""
        X, has_missing = _warm.validate_fit_X(self, X, reset=not warm)
        if not warm:
            self.masked_ = has_missing
        n_samples, n_features = X.shape
        self._check_params(n_features, n_samples)
        self.n_components_ = self.n_components or n_features
        fitted = None
        if warm:
            fitted = {k: getattr(self, k, None) for k in self._settings_attrs}
        u_type = resolve_u_type(self._aux_u_type(), y, self.aux_transformer)
        settings = self._resolve_settings(n_features, u_type, fitted)
        if not warm:
            vars(self).update(settings.fitted)
        self.device_ = resolve_device(self.device)
        self._fit_dtype = X.dtype
        rng = check_random_state(self.random_state)
        split = _validation_split(
            n_samples, self.early_stopping and self.validation_fraction, rng
        )
        n_init = 1 if warm else settings.n_init
        seeds = [int(rng.randint(np.iinfo(np.int32).max)) for _ in range(n_init)]
        if warm:
            U = _warm.warm_aux(self.aux_encoder_, y, n_samples)
            start = _warm.continued_module(self, n_features, seeds[0])
        else:
            U, start = self._fit_aux(y, n_samples, rng), None
            self._fit_x_scaling(X)
            # the masked iVAE's Gaussian model of X (see IVAEModule.set_fill)
            self._fill_stats = None
            if has_missing:
                self._fill_stats = gaussian_stats(torch.as_tensor(self._scale_x(X)))
        return np.asarray(X, dtype=np.float64), U, split, seeds, settings, start

    #: fitted attributes that the settings decide (kept by a warm start)
    _settings_attrs = ("init_",)
    #: fitted attributes that inference needs, in every saved file (load checks)
    _required_state = (
        "n_features_in_",
        "n_components_",
        "aux_encoder_",
        "_x_mean",
        "_x_scale",
    )

    def _check_params(self, n_features, n_samples):
        _check_hidden(self.hidden_layer_sizes)
        if isinstance(self.ar_order, bool):  # an Integral to scikit-learn
            raise ValueError(
                f"ar_order must be an integer >= 0 (the number of previous rows "
                f"each row depends on), got {self.ar_order!r}."
            )
        _refuse_bool_numbers(self)
        if self.n_components is not None and self.n_components > n_features:
            raise ValueError(
                f"n_components={self.n_components} must be <= n_features={n_features}: "
                "the mixing must be injective, so there cannot be more latent "
                "components than observed features. Lower n_components."
            )

    def _aux_labels_only(self):
        """Whether the model takes labels only (advice in u's errors)."""
        return False

    def _fit_aux(self, u, n_samples, rng):
        """Fit ``aux_encoder_`` on ``u``; returns the encoded training ``u``."""
        if u is None:
            self.aux_encoder_ = None
            return None
        self.aux_encoder_ = _AuxEncoder(
            self._aux_u_type(), self.aux_transformer, self._aux_labels_only()
        )
        U = self.aux_encoder_.fit(u, n_samples, rng)
        self._check_aux()
        needed = self._n_statistics() * self.n_components_ + 1
        self.aux_encoder_.warn_if_too_few(needed)
        return U

    def _batch_size(self, settings, n_train):
        if self.batch_size == "auto":
            return auto_batch_size(settings.batch_rule, n_train)
        if self.batch_size > n_train:
            warnings.warn(
                f"batch_size={self.batch_size} is larger than the {n_train} "
                "training samples; it is clipped.",
                UserWarning,
                stacklevel=5,
            )
        return self.batch_size

    def _train_restarts(self, data, seeds, settings, start, init_data):
        """Train one model per seed (or all as one batched model where the
        settings say so); returns the best ``(module, history, seed)``."""
        n_train = data[0].shape[0]
        batch_size = self._batch_size(settings, n_train)
        at = (settings.batch_rule, n_train, batch_size)
        settings = replace(
            settings,
            max_iter=epochs(settings.max_iter, *at, auto=settings.auto_max_iter),
            n_iter_no_change=patience(
                self.n_iter_no_change, *at, auto=settings.auto_max_iter
            ),
        )
        self.training_settings_ = {
            "max_iter": settings.max_iter,
            "learning_rate_init": settings.learning_rate_init,
            "n_init": len(seeds),
            "batch_size": min(batch_size, data[0].shape[0]),
            "n_iter_no_change": settings.n_iter_no_change,
        }
        run = dict(data=data, settings=settings, batch_size=batch_size)
        batched = settings.batched_restarts and not self.ar_order
        if batched and start is None and len(seeds) > 1:
            kept = self._train_batched(seeds, **run)
            if kept is not None:
                return kept
        scores, best, errors = [], None, []
        for init, seed in enumerate(seeds):
            try:
                module, hist = self._train_one(
                    seed, init, len(seeds), start=start, init_data=init_data, **run
                )
            except DivergenceError as exc:
                errors.append(exc)
                scores.append(np.nan)
                continue
            final = mean_score_loss(module, *_monitored(data))
            if not np.isfinite(final):
                errors.append(DivergenceError(f"final loss is {final}"))
            elif best is None or final < best[0]:
                best = (final, module, hist, seed)
            scores.append(-final if np.isfinite(final) else np.nan)
        if best is None:
            raise FloatingPointError(
                f"{type(self).__name__} training diverged in all {len(seeds)} "
                f"initialisation(s) (last error: {errors[-1]}) Try a smaller "
                "learning_rate_init, standardising X, or a larger batch_size; check "
                "X for extreme values."
            )
        self.restart_scores_ = np.asarray(scores, dtype=np.float64)
        return best[1:]

    def _train_one(
        self,
        seed,
        init,
        n_init,
        *,
        data,
        settings,
        batch_size,
        start=None,
        init_data=None,
        n_restarts=1,
    ):
        """Build (or continue ``start``) and train one model; returns it and
        its :class:`~skivae._core.training.TrainHistory`."""
        with torch_seed(seed, self.device_):
            module = start
            if module is None:
                module = self._build_module(
                    self.n_features_in_,
                    seed,
                    n_restarts=n_restarts,
                    init_data=init_data,
                )
            module = module.to(self.device_)
            progress = make_progress(
                self.verbose, type(self).__name__, init, n_init, settings.max_iter
            )
            try:
                hist = train(
                    module,
                    *data,
                    max_iter=settings.max_iter,
                    batch_size=batch_size,
                    learning_rate=settings.learning_rate_init,
                    tol=self.tol,
                    n_iter_no_change=settings.n_iter_no_change,
                    generator=torch.Generator().manual_seed(seed),
                    progress=progress,
                    compile=self.compile,
                )
            finally:
                if progress is not None:
                    progress.close()
        return module, hist

    def _train_batched(self, seeds, *, data, settings, batch_size):
        """All restarts as one model with a restart axis (each keeps its own
        parameters and gradients); the one whose ``restart_score_samples``
        is best on the monitored rows is kept. None if the batched fit
        diverged, so that the restarts are trained one by one instead."""
        try:
            module, hist = self._train_one(
                seeds[0],
                0,
                1,
                data=data,
                settings=settings,
                batch_size=batch_size,
                n_restarts=len(seeds),
            )
        except DivergenceError:
            return None
        scores = _restart_scores(module, *_monitored(data))
        if not np.isfinite(scores).any():
            return None
        self.restart_scores_ = scores
        kept = int(np.nanargmax(scores))
        return module.keep(kept), hist.keep(kept), seeds[0]

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
        previous = self.validation_scores_ if extend else None
        self.validation_scores_ = self.best_validation_score_ = None
        if self.early_stopping:
            scores = (previous or []) + [-v for v in hist.val_loss]
            self.validation_scores_ = scores
            self.best_validation_score_ = max(scores)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.target_tags.required = self._u_required
        tags.input_tags.allow_nan = self._accepts_missing()
        return tags


def _validation_split(n_samples, fraction, rng):
    """``(validation rows, training rows)`` drawn by ``rng`` (None when
    ``fraction`` is falsy: no early stopping)."""
    if not fraction:
        return None
    n_val = max(1, int(round(fraction * n_samples)))
    if n_samples - n_val < 2:
        raise ValueError(
            f"validation_fraction={fraction} leaves fewer than 2 training "
            f"samples out of {n_samples}; lower it or pass more data."
        )
    perm = rng.permutation(n_samples)
    return perm[:n_val], perm[n_val:]


def _check_ar_order(ar_order, groups, n_samples):
    """Refuse an ``ar_order`` that no sequence is long enough for."""
    longest = int(np.bincount(_group_codes(groups, n_samples)).max())
    if ar_order >= longest:
        where = "sequence (group)" if groups is not None else "sequence (X, one group)"
        raise ValueError(
            f"ar_order={ar_order} needs sequences longer than {ar_order} rows, but "
            f"the longest {where} has {longest}: no row has {ar_order} previous "
            "rows to depend on. Lower ar_order, or pass groups that hold longer "
            "sequences."
        )


def _training_tensors(Xp, U, split, device):
    """``(X, U, X_val, U_val)`` on ``device`` (``X_val`` None: no split)."""
    X_val = U_val = None
    if split is not None:
        val_rows, train_rows = split
        X_val, Xp = Xp[val_rows], Xp[train_rows]
        if U is not None:
            U_val, U = U[val_rows], U[train_rows]
    return tuple(
        None if a is None else as_tensor(a, device) for a in (Xp, U, X_val, U_val)
    )


def _restart_scores(module, X, U):
    """Mean ``restart_score_samples`` of each restart of a batched model on
    the rows ``X``, ``U`` (NaN where not finite), by chunks of 4096 rows."""
    with torch.inference_mode():
        rows = torch.arange(X.shape[0], device=X.device).split(4096)
        ll = torch.cat(
            [
                module.restart_score_samples(X[r], None if U is None else U[r])
                for r in rows
            ],
            dim=1,
        ).mean(1)
    scores = ll.cpu().numpy().astype(np.float64)
    return np.where(np.isfinite(scores), scores, np.nan)


def _monitored(data):
    """The rows that rank restarts: the validation split, else training."""
    X, U, X_val, U_val = data
    return (X, U) if X_val is None else (X_val, U_val)


def _refuse_bool_numbers(est):
    """A bool given for a numeric parameter is an error.

    scikit-learn's ``Interval`` constraints accept ``True`` and ``False`` (bool
    is an ``Integral``), which would train with ``max_iter=1`` or fail inside
    torch (``batch_size=True``); parameters that also take a bool say so.
    """
    for name, constraints in est._parameter_constraints.items():
        value = getattr(est, name)
        if not isinstance(value, (bool, np.bool_)) or "boolean" in constraints:
            continue
        kinds = [c.type for c in constraints if isinstance(c, Interval)]
        if kinds:
            what = "an integer" if all(k is Integral for k in kinds) else "a number"
            raise ValueError(f"{name} must be {what}, not a bool; got {value!r}.")


def _check_hidden(hidden_layer_sizes):
    for h in hidden_layer_sizes:
        if not isinstance(h, numbers.Integral) or isinstance(h, bool) or h < 1:
            raise ValueError(
                "hidden_layer_sizes must be a tuple of positive integers, got "
                f"{hidden_layer_sizes!r}."
            )
