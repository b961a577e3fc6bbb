"""Nonlinear ICA with an auxiliary variable: iVAE, TCL and GCL."""

import warnings

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from skivae._base import _BaseLatentEstimator
from skivae._compat import StrOptions, _fit_context, check_is_fitted
from skivae._core.contrastive import GCLModule, TCLModule
from skivae._core.priors import N_STATISTICS, PRIORS
from skivae._ivae import _check_latents, _make_ivae_module

_METHODS = ("ivae", "tcl", "gcl")


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
        - ``"ivae"``: the identifiable VAE (the model of
          :class:`IdentifiableVAE` with its default decoder and the same
          network settings) in the low-noise regime: maximum ELBO, the
          sources are the posterior means. Categorical or continuous ``u``.
        - ``"tcl"``: time-contrastive learning (Hyvärinen & Morioka 2016):
          an MLP is trained to classify the segment ``u`` of each
          observation; linear ICA (FastICA) of its absolute features gives
          the sources. Categorical ``u`` only (``u_type="auto"`` reads
          ``u`` as labels). Its features estimate the
          sources' sufficient statistics, so for sources that are symmetric
          around zero it recovers ``|s|`` rather than ``s``.
        - ``"gcl"``: generalized contrastive learning (Hyvärinen, Sasaki &
          Turner 2019): logistic regression tells true pairs ``(x, u)`` from
          pairs with shuffled ``u``; the regression function is a sum of
          per-component terms in ``h_i(x)`` and ``u``, and ``h(x)`` gives the
          sources. Categorical or continuous ``u``.

    prior : {"gaussian", "gaussian_var", "laplace"}, default="gaussian"
        Prior family of the iVAE (``method="ivae"`` only).

    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s
    ica_ : FastICA or None
        The linear ICA applied to TCL's features (``method="tcl"``).

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
    _u_required = True

    def __init__(self, n_components=None, *, method="ivae", prior="gaussian", **shared):
        self.method = method
        self.prior = prior
        super().__init__(n_components, **shared)

    # ------------------------------------------------------------------ hooks
    def _n_statistics(self):
        if self.method == "ivae":
            return N_STATISTICS[self.prior]
        return 2 if self.method == "gcl" else 1

    def _aux_u_type(self):
        if self.method == "tcl" and self.u_type == "auto":
            return "categorical"  # TCL can only use labels
        return self.u_type

    def _check_aux(self):
        enc = self.aux_encoder_
        if self.method == "tcl" and enc.u_type_ != "categorical":
            raise ValueError(
                "method='tcl' needs a categorical u (segment labels), but u was read "
                f"as {enc.u_type_}. Use method='gcl' or method='ivae' for continuous "
                "u, or pass integer labels / u_type='categorical'."
            )
        if enc.u_type_ == "categorical" and enc.n_aux_ < 2:
            raise ValueError(
                "u takes a single value: at least 2 distinct values are needed "
                "(and many more for identifiability)."
            )

    def _build_module(self, n_features, seed):
        """One branch per method: the method's LatentModel."""
        if self.method == "ivae":
            return _make_ivae_module(self, n_features, seed, prior=self.prior)
        if self.method == "tcl":
            return self._tcl_module(n_features)
        return self._gcl_module(n_features)

    def _tcl_module(self, n_features):
        return TCLModule(
            n_features,
            self.n_components_,
            self.aux_encoder_.n_aux_,
            hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes),
            activation=self.activation,
        )

    def _gcl_module(self, n_features):
        enc = self.aux_encoder_
        support, log_weights = self._aux_support_tensors()
        return GCLModule(
            n_features,
            self.n_components_,
            enc.u_type_,
            n_classes=enc.n_aux_ if enc.u_type_ == "categorical" else None,
            n_aux=enc.n_aux_ if enc.u_type_ == "continuous" else None,
            hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes),
            activation=self.activation,
            aux_support=support,
            aux_log_weights=log_weights,
        )

    def _after_fit(self, Xp, seed):
        """TCL's linear ICA, then the standardisation of the sources."""
        F = self._batched(lambda m, xb, ub: m.features(xb), Xp).astype(np.float64)
        self.ica_ = None
        if self.method == "tcl":
            self.ica_ = FastICA(
                self.n_components_,
                whiten="unit-variance",
                random_state=seed,
                max_iter=1000,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                F = self.ica_.fit_transform(F)
        self._s_mean = F.mean(axis=0)
        scale = F.std(axis=0)
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
            raise ValueError(
                "NonlinearICA requires y to be passed, but the target y is None: y "
                "is the auxiliary variable u (fit(X, u)), and nonlinear ICA without "
                "an auxiliary variable is not identifiable. Use "
                "sklearn.decomposition.FastICA for linear ICA without u, or "
                "IdentifiableVAE for a plain VAE."
            )
        return self._fit(X, y)

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
        S = self._features(X)
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
        if not hasattr(self.module_, "inverse"):
            raise ValueError(
                f"inverse_transform needs a decoder, which method={self.method!r} "
                "does not learn; only method='ivae' supports it."
            )
        S = _check_latents(S, self.n_components_, "S")
        Z = S.astype(np.float64) * self._s_scale + self._s_mean
        return self._inverse(Z).astype(S.dtype, copy=False)

    def score(self, X, y=None):
        """The method's own objective on ``(X, u)``; higher is better.

        ``"ivae"``: mean ELBO per sample (``u=None`` uses the marginal
        prior). ``"tcl"``: mean log-probability of the true segment.
        ``"gcl"``: minus the mean logistic loss of telling true pairs from
        pairs with another ``u``, its expectation over the training values
        of ``u`` (so each sample's term depends on that sample alone).

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
        return float(np.mean(self._score_samples(X, y)))
