"""Nonlinear ICA with an auxiliary variable: iVAE, TCL and GCL."""

import warnings

import numpy as np
import torch
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

from skivae._base import _BaseLatentEstimator
from skivae._compat import StrOptions, _fit_context, check_is_fitted, validate_data
from skivae._core.contrastive import GCLModule, TCLModule
from skivae._core.priors import N_STATISTICS, PRIORS
from skivae._ivae import IdentifiableVAE

_METHODS = ("ivae", "tcl", "gcl")
_N_SCORE_REPEATS = 4  # shuffles averaged by GCL's held-out score


class NonlinearICA(_BaseLatentEstimator):
    """Nonlinear ICA with an auxiliary variable, in the spirit of FastICA.

    Estimates independent sources ``s`` from observations ``x = f(s)`` mixed
    by an unknown invertible nonlinear function ``f``, using an observed
    auxiliary variable ``u`` (segment index, time, a covariate) that modulates
    the sources' distributions. Without ``u`` the problem is not identifiable.

    Read more in the :ref:`User Guide <nica>`.

    Parameters
    ----------
    n_components : int, default=None
        Number of sources; ``None`` uses ``n_features`` (the square case).

    method : {"ivae", "tcl", "gcl"}, default="ivae"
        - ``"ivae"``: the identifiable VAE (:class:`IdentifiableVAE` with the
          same network settings) in the low-noise regime: maximum ELBO, the
          sources are the posterior means. Categorical or continuous ``u``.
        - ``"tcl"``: time-contrastive learning (Hyvärinen & Morioka 2016):
          an MLP is trained to classify the segment ``u`` of each
          observation; linear ICA (FastICA) of its absolute features gives
          the sources. Categorical ``u`` only. Its features estimate the
          sources' sufficient statistics, so for sources that are symmetric
          around zero it recovers ``|s|`` rather than ``s``.
        - ``"gcl"``: generalized contrastive learning (Hyvärinen, Sasaki &
          Turner 2019): logistic regression tells true pairs ``(x, u)`` from
          pairs with shuffled ``u``; the regression function is a sum of
          per-component terms in ``h_i(x)`` and ``u``, and ``h(x)`` gives the
          sources. Categorical or continuous ``u``.

    prior : {"gaussian", "gaussian_var", "laplace"}, default="gaussian"
        Prior family of the iVAE (``method="ivae"`` only).

    u_type : {"auto", "categorical", "continuous"}, default="auto"
        How to read ``u`` (see :class:`IdentifiableVAE`).

    hidden_layer_sizes : tuple of int, default=(64, 64)
        Hidden widths of the feature extractor (encoder).

    activation : {"leaky_relu", "relu", "elu", "tanh", "gelu", "silu", \
            "xtanh"}, default="leaky_relu"
        Hidden-layer non-linearity.

    max_iter : int, default=40
        Maximum number of epochs.

    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` uses ``min(256, max(32, n_samples // 100))``.

    learning_rate_init : float, default=1e-2
        Adam's initial learning rate (cosine-decayed over ``max_iter``).

    early_stopping : bool, default=False
        Stop on a held-out split's objective and restore the best weights.

    validation_fraction : float, default=0.1
        Share of the data held out when ``early_stopping=True``.

    n_iter_no_change : int, default=10
        Epochs without relative improvement ``tol`` before stopping.

    tol : float, default=1e-4
        Relative improvement that counts as progress.

    n_init : int, default=1
        Restarts; the one with the best final objective is kept.

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
        Seeds everything (networks, batches, FastICA). Same seed, same data,
        CPU: identical results.

    verbose : int, default=0
        Show a progress bar with the current loss.

    Attributes
    ----------
    n_components_ : int
        Number of estimated sources.
    module_ : torch.nn.Module
        The trained network (on CPU, eval mode).
    loss_curve_ : list of float
        Training loss per epoch (negative ELBO, or the contrastive loss).
    best_loss_ : float
        Lowest value of ``loss_curve_``.
    validation_scores_ : list of float or None
        Held-out objective per epoch with ``early_stopping=True``.
    best_validation_score_ : float or None
        Best value of ``validation_scores_``.
    n_iter_ : int
        Epochs run.
    u_type_ : {"categorical", "continuous"}
        How ``u`` was read.
    aux_classes_ : ndarray or None
        Categories of a categorical ``u``.
    n_aux_ : int
        Number of categories or of covariates of ``u``.
    ica_ : FastICA or None
        The linear ICA applied to TCL's features (``method="tcl"``).
    device_ : torch.device
        Device used for training.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit` (string column names only).

    See Also
    --------
    IdentifiableVAE : The iVAE as a general latent-variable model.
    sklearn.decomposition.FastICA : Linear ICA (no auxiliary variable).

    Notes
    -----
    :meth:`transform` returns the sources standardised on the training data
    (zero mean, unit variance). They are identified up to permutation, sign
    and component-wise invertible maps, so compare them with the truth with
    :func:`skivae.metrics.mean_corr_coef`.

    References
    ----------
    I. Khemakhem, D. P. Kingma, R. P. Monti, A. Hyvärinen. "Variational
    Autoencoders and Nonlinear ICA: A Unifying Framework". AISTATS 2020.

    A. Hyvärinen, H. Morioka. "Unsupervised Feature Extraction by
    Time-Contrastive Learning and Nonlinear ICA". NeurIPS 2016.

    A. Hyvärinen, H. Sasaki, R. E. Turner. "Nonlinear ICA Using Auxiliary
    Variables and Generalized Contrastive Learning". AISTATS 2019.

    Examples
    --------
    >>> from skivae import NonlinearICA
    >>> from skivae.datasets import make_nonstationary_sources
    >>> X, u, S = make_nonstationary_sources(10, 50, 2, random_state=0)
    >>> ica = NonlinearICA(method="gcl", max_iter=3, random_state=0)
    >>> S_est = ica.fit_transform(X, u)
    >>> S_est.shape
    (500, 2)
    """

    _parameter_constraints: dict = {
        **_BaseLatentEstimator._parameter_constraints,
        "method": [StrOptions(set(_METHODS))],
        "prior": [StrOptions(set(PRIORS))],
    }
    _feature_prefix = "nica"
    _u_optional = False

    def __init__(
        self,
        n_components=None,
        *,
        method="ivae",
        prior="gaussian",
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
        device="cpu",
        n_threads=1,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.method = method
        self.prior = prior
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
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks
    def _u_required_message(self):
        return (
            "NonlinearICA requires y to be passed, but the target y is None: y is "
            "the auxiliary variable u (fit(X, u)), and nonlinear ICA without an "
            "auxiliary variable is not identifiable. Use "
            "sklearn.decomposition.FastICA for linear ICA without u, or "
            "IdentifiableVAE for a plain VAE."
        )

    def _n_statistics(self):
        if self.method == "ivae":
            return N_STATISTICS[self.prior]
        return 2 if self.method == "gcl" else 1

    def _resolve_u_type(self, u):
        if self.method == "tcl" and self.u_type == "auto":
            return "categorical"  # TCL can only use labels
        return super()._resolve_u_type(u)

    def _validate_aux_fit(self, u, n_samples):
        encoded = super()._validate_aux_fit(u, n_samples)
        if self.method == "tcl" and self.u_type_ != "categorical":
            raise ValueError(
                "method='tcl' needs a categorical u (segment labels), but u was read "
                f"as {self.u_type_}. Use method='gcl' or method='ivae' for continuous "
                "u, or pass integer labels / u_type='categorical'."
            )
        if self.u_type_ == "categorical" and self.n_aux_ < 2:
            raise ValueError(
                "u takes a single value: at least 2 distinct values are needed to "
                "contrast (and many more for identifiability)."
            )
        return encoded

    def _build_module(self, n_features, aux_kind, n_aux):
        hidden = tuple(int(h) for h in self.hidden_layer_sizes)
        if self.method == "tcl":
            return TCLModule(
                n_features,
                self.n_components_,
                n_aux,
                hidden_layer_sizes=hidden,
                activation=self.activation,
            )
        return GCLModule(
            n_features,
            self.n_components_,
            aux_kind,
            n_classes=n_aux if aux_kind == "categorical" else None,
            n_aux=n_aux if aux_kind == "continuous" else None,
            hidden_layer_sizes=hidden,
            activation=self.activation,
        )

    def _loss(self, module, xb, ub, frac):
        return module.loss(xb, ub)

    def _raw_features(self, Xp):
        feats = self._batched(
            self._inference_module(), Xp, None, lambda m, xb, ub: m.features(xb)
        )
        if self.method == "tcl":
            feats = np.abs(feats)
        return feats.astype(np.float64)

    def _after_fit(self, Xp, U):
        F = self._raw_features(Xp)
        if self.method == "tcl":
            self.ica_ = FastICA(
                self.n_components_,
                whiten="unit-variance",
                random_state=self._seed,
                max_iter=1000,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                F = self.ica_.fit_transform(F)
        else:
            self.ica_ = None
        self._set_standardization(F)

    def _set_standardization(self, S):
        self._s_mean = S.mean(axis=0)
        scale = S.std(axis=0)
        scale[scale == 0] = 1.0
        self._s_scale = scale

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Estimate the unmixing from ``X`` and the auxiliary variable ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations.
        y : array-like of shape (n_samples,) or (n_samples, n_aux)
            The auxiliary variable ``u`` (required): segment labels or
            continuous covariates. It is scikit-learn's ``y`` positionally.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if y is None:
            raise ValueError(self._u_required_message())
        if self.method == "ivae":
            return self._fit_ivae(X, y)
        return self._fit(X, y)

    def _fit_ivae(self, X, y):
        X = validate_data(
            self, X, dtype=[np.float64, np.float32], ensure_min_samples=2, reset=True
        )
        if self._resolve_u_type(y) == "categorical":
            labels = np.asarray(y, dtype=object).ravel()
            if len(labels) == X.shape[0] and len(set(labels.tolist())) < 2:
                raise ValueError(
                    "u takes a single value: at least 2 distinct values are needed "
                    "(and many more for identifiability)."
                )
        params = self.get_params()
        params.pop("method")
        inner = IdentifiableVAE(**params)
        inner._progress_name = type(self).__name__  # label of the progress bar
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            inner.fit(X, y)  # validates u; may warn (identifiability, convergence)
        for w in caught:  # re-emit under this estimator's name
            message = str(w.message).replace("IdentifiableVAE", "NonlinearICA")
            if "fitting a plain VAE" in message:
                continue
            warnings.warn(message, w.category, stacklevel=3)
        self.ivae_ = inner
        for name in (
            "n_components_",
            "module_",
            "loss_curve_",
            "best_loss_",
            "n_iter_",
            "validation_scores_",
            "best_validation_score_",
            "u_type_",
            "aux_classes_",
            "n_aux_",
            "device_",
        ):
            setattr(self, name, getattr(inner, name))
        self.ica_ = None
        self._set_standardization(inner.transform(X).astype(np.float64))
        return self

    # -------------------------------------------------------------- inference
    def transform(self, X):
        """Estimated sources, standardised on the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        S : ndarray of shape (n_samples, `n_components_`)
            In ``X``'s float dtype.
        """
        X = self._validate_X(X)
        if self.method == "ivae":
            S = self.ivae_.transform(X).astype(np.float64)
        else:
            S = self._raw_features(self._preprocess(np.asarray(X, dtype=np.float64)))
            if self.ica_ is not None:
                S = self.ica_.transform(S)
        S = (S - self._s_mean) / self._s_scale
        return S.astype(X.dtype, copy=False)

    def inverse_transform(self, S):
        """Map standardised sources back to observations (``method="ivae"``).

        Parameters
        ----------
        S : array-like of shape (n_samples, `n_components_`)

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
        """
        check_is_fitted(self)
        if self.method != "ivae":
            raise ValueError(
                f"inverse_transform needs a decoder, which method={self.method!r} "
                "does not learn; only method='ivae' supports it."
            )
        S = check_array(S, dtype=[np.float64, np.float32], input_name="S")
        if S.shape[1] != self.n_components_:
            raise ValueError(
                f"S has {S.shape[1]} columns but the model has "
                f"n_components_={self.n_components_}."
            )
        Z = S.astype(np.float64) * self._s_scale + self._s_mean
        return self.ivae_.inverse_transform(Z).astype(S.dtype, copy=False)

    def score(self, X, y=None):
        """The method's own objective on ``(X, u)``; higher is better.

        ``"ivae"``: mean ELBO per sample. ``"tcl"``: mean log-probability of
        the true segment. ``"gcl"``: minus the mean logistic loss of telling
        true pairs from shuffled ones (averaged over a few fixed shuffles).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like
            The auxiliary variable ``u`` (required for TCL and GCL).

        Returns
        -------
        score : float
        """
        X = self._validate_X(X)
        if self.method == "ivae":
            return self.ivae_.score(X, y)
        if y is None:
            raise ValueError(
                f"score with method={self.method!r} needs u: the objective "
                "discriminates on u."
            )
        U = self._encode_aux(y, X.shape[0])
        Xp = self._preprocess(np.asarray(X, dtype=np.float64))
        module = self._inference_module()
        if self.method == "tcl":
            loss = self._batched(module, Xp, U, lambda m, xb, ub: m.loss(xb, ub))
            return float(-loss.mean())
        if X.shape[0] < 2:
            raise ValueError("score with method='gcl' needs at least 2 samples.")
        # Shuffles over the whole set (not per batch), fixed by the fitted seed.
        losses = []
        dev = next(module.parameters()).device
        Xt = torch.as_tensor(Xp, dtype=next(module.parameters()).dtype, device=dev)
        Ut = self._aux_tensor(U, dev, dtype=Xt.dtype)
        gen = torch.Generator().manual_seed(self._seed)
        with torch.inference_mode():
            r_true = module.regression(Xt, Ut)
            for _ in range(_N_SCORE_REPEATS):
                perm = torch.randperm(X.shape[0], generator=gen).to(dev)
                r_fake = module.regression(Xt, Ut[perm])
                loss = torch.nn.functional.softplus(
                    -r_true
                ) + torch.nn.functional.softplus(r_fake)
                losses.append(float(loss.mean()))
        return -float(np.mean(losses))
