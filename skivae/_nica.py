"""Nonlinear ICA with an auxiliary variable: identifiable flow, iVAE, TCL and GCL."""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.metaestimators import available_if

from skivae._base import _BaseLatentEstimator
from skivae._compat import Interval, StrOptions, _fit_context, check_is_fitted
from skivae._core._torch_utils import to_numpy
from skivae._core.contrastive import GCLModule, TCLModule
from skivae._core.flow import FlowModule, InvertibleMLP
from skivae._core.priors import N_STATISTICS, PRIORS, ConditionalPrior
from skivae._core.training import DivergenceError
from skivae._ivae import (
    _AUTO_IVAE_SETTINGS,
    _check_latents,
    _flow_start,
    _make_ivae_module,
    _short_flow,
    _start_from_flow,
    _warn_start_diverged,
)

_METHODS = ("flow", "ivae", "tcl", "gcl")
_FEATURES = ("auto", "mlp", "flow")
#: what ``"auto"`` stands for: (max_iter, learning_rate_init, n_init)
_AUTO_SETTINGS = {"flow": (20, 4e-2, 2)}
_DEFAULT_SETTINGS = (40, 1e-2, 1)
#: ``learning_rate_init="auto"`` of TCL and GCL when their invertible
#: features start from the flow (``init_="flow"``)
_CONTRASTIVE_FLOW_START_LR = 1e-3


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

    method : {"flow", "ivae", "tcl", "gcl"}, default="flow"
        - ``"flow"``: the identifiable flow, for square (``n_components ==
          n_features``), noiseless data ``x = f(s)`` with ``f`` invertible.
          Maximum likelihood, exact: ``log p(x|u) = log p(g(x)|u) + log
          |det dg/dx|`` with the conditionally factorial prior of the iVAE
          and ``g = f^-1`` an inverted MLP (linear layers and element-wise
          monotone splines, see ``flow_depth``), so there is no encoder,
          decoder noise or variational gap. The sources are ``g(x)``,
          signed. Categorical or continuous ``u``. On the paper's 3-layer
          simulation it recovers the sources much better than the iVAE
          (see the user guide's benchmarks).
        - ``"ivae"``: the identifiable VAE (the model of
          :class:`IdentifiableVAE` with its default decoder and the same
          network settings) in the low-noise regime: trained on the
          importance-weighted bound with four draws (``IdentifiableVAE``'s
          default ``n_importance_train``), the sources are the posterior
          means. Categorical or continuous ``u``.
          By default it starts from a short flow fit (see ``init``).
        - ``"tcl"``: time-contrastive learning (Hyvärinen & Morioka 2016):
          a feature network is trained to classify the segment ``u`` of
          each observation from its absolute features. With an MLP
          (``features="mlp"``), linear ICA (FastICA) of those gives the
          sources' sufficient statistics: for sources symmetric around zero
          it recovers ``|s|`` rather than ``s``. With the invertible network
          (``features="auto"`` on square data) the features themselves are
          the signed sources. Categorical ``u`` only (``u_type="auto"``
          reads ``u`` as labels).
        - ``"gcl"``: generalized contrastive learning (Hyvärinen, Sasaki &
          Turner 2019): logistic regression tells true pairs ``(x, u)`` from
          pairs with shuffled ``u``; the regression function is a sum of
          per-component terms in ``h_i(x)`` and ``u``, and ``h(x)`` gives the
          sources (``|s|`` with an MLP that folds the signs, see
          ``features``). Categorical or continuous ``u``.

        Use ``"flow"`` when ``X`` has as many features as there are
        sources and little noise; ``"ivae"`` when it has more features than
        sources (``n_components < n_features``), noise, or is binary.

        .. versionchanged:: 0.2
           The default is ``"flow"`` (was ``"ivae"``).

    init : {"auto", "flow", "random"}, default="auto"
        How the iVAE and the contrastive methods start:

        - ``method="ivae"``, as :class:`IdentifiableVAE`'s ``init``:
          ``"flow"`` (what ``"auto"`` stands for) regresses the new iVAE onto
          a short flow fit (with ``n_components < n_features``: on all the
          features, keeping outputs that depend on ``u`` and move ``x``
          most), then
          trains 20 epochs at 0.001 (``max_iter`` and ``learning_rate_init``
          ``"auto"``); ``"random"`` starts from PyTorch's initialisation and
          trains 40 epochs at 0.01.
        - ``"tcl"`` and ``"gcl"`` with the invertible features
          (``features_="flow"``): ``"flow"`` (what ``"auto"`` stands for)
          starts the feature network as the network of a short flow fit (10
          epochs, one restart) and trains the contrastive objective from
          there at 0.001 (``learning_rate_init="auto"``; TCL's classifier
          starts at zero); ``"random"`` starts the features at a random
          rotation and trains at 0.01. On 2-layer square Laplace data the
          start decides the result: median MCC against ``s`` 0.96-0.98
          against 0.77-0.89 from a random start (``bench_contrastive.py``).
          Use ``"random"`` to compare the contrastive objectives themselves
          with other methods. The MLP features start randomly
          (``init="flow"`` with them is an error).
        - Ignored by ``method="flow"``.

        The fitted ``init_`` says which was used.

        .. versionadded:: 0.2

    prior : {"gaussian", "gaussian_var", "laplace"}, default="gaussian"
        Prior family p(s|u) of the flow and the iVAE: ``"gaussian"``
        modulates each source's mean and variance with ``u``,
        ``"gaussian_var"`` only its variance, ``"laplace"`` its scale.

    features : {"auto", "mlp", "flow"}, default="auto"
        Feature network of the contrastive methods (``"tcl"``, ``"gcl"``):
        an MLP (``hidden_layer_sizes``, ``activation``), or the invertible
        stack of the flow (``flow_depth``, ``spline_bins``,
        ``spline_bound``; square data only). ``"auto"`` uses the flow's
        stack when ``n_components`` equals ``n_features`` (or is None) and
        the MLP otherwise. With zero-mean sources whose scale ``u``
        modulates, the contrastive objectives see only ``|s|``: an MLP may
        fold the signs and then estimates ``|s|``; an invertible network
        cannot fold and estimates the signed ``s``; it starts from a short
        flow fit unless ``init="random"`` (on 2-layer square Laplace data,
        median MCC against ``s`` 0.978 for TCL and 0.956 for GCL, 0.77 and
        0.89 from a random start, against 0.04 and 0.40 with the MLP; see
        ``benchmarks/bench_contrastive.py``), at three to five times the
        MLP's fit time. TCL on the invertible network applies no FastICA.
        Ignored by ``"flow"`` and ``"ivae"``.

        .. versionadded:: 0.2

    flow_depth : int, default=4
        Number of spline blocks of the flow (``method="flow"``, and the
        contrastive methods with ``features="flow"``); it has
        ``flow_depth + 1`` linear layers. ``L - 1`` blocks can invert an
        MLP mixing of ``L`` layers exactly; a few more make the
        optimisation easier.

        .. versionadded:: 0.2

    spline_bins : int, default=8
        Bins of each monotone rational-quadratic spline of the flow.

        .. versionadded:: 0.2

    spline_bound : float, default=5.0
        Each spline of the flow acts on ``[-spline_bound, spline_bound]``
        (``X`` is standardised first) and is the identity outside.

        .. versionadded:: 0.2

    max_iter : int or "auto", default="auto"
        Maximum number of epochs; ``"auto"`` is 20 for the flow and for the
        iVAE started from the flow, 40 otherwise (see ``init``).

    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` is ``min(512, max(64, n_samples //
        80))`` for the flow and ``min(256, max(32, n_samples // 100))`` for
        the other methods.

    learning_rate_init : float or "auto", default="auto"
        Adam's initial learning rate, decayed by a cosine schedule over
        ``max_iter`` epochs; ``"auto"`` is 0.04 for the flow, 0.001 for the
        methods started from the flow (``init_="flow"``) and 0.01 for those
        started randomly.

    n_init : int or "auto", default="auto"
        Number of restarts; the one with the best final objective (the exact
        log-likelihood for the flow) on the training data, or on the
        validation split with ``early_stopping=True``, is kept. ``"auto"``
        is 2 for the flow (its likelihood ranks restarts by how well they
        recover the sources) and 1 for the other methods.

        .. versionchanged:: 0.2
           ``max_iter``, ``batch_size``, ``learning_rate_init`` and
           ``n_init`` default to ``"auto"``, resolved per method.

    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s
    ica_ : FastICA or None
        The linear ICA applied to TCL's features (``method="tcl"`` with the
        MLP features).
    features_ : {"mlp", "flow"} or None
        The feature network the contrastive methods used (``features``
        resolved); None for ``"flow"`` and ``"ivae"``.
    init_ : {"flow", "random"} or None
        How the iVAE or the contrastive method started (``init`` resolved);
        None for ``method="flow"``.

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
        "features": [StrOptions(set(_FEATURES))],
        "init": [StrOptions({"auto", "flow", "random"})],
        "flow_depth": [Interval(Integral, 1, None, closed="left")],
        "spline_bins": [Interval(Integral, 2, None, closed="left")],
        "spline_bound": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate_init": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "n_init": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }
    _feature_prefix = "nica"
    _u_required = True

    def __init__(
        self,
        n_components=None,
        *,
        method="flow",
        init="auto",
        prior="gaussian",
        features="auto",
        flow_depth=4,
        spline_bins=8,
        spline_bound=5.0,
        max_iter="auto",
        batch_size="auto",
        learning_rate_init="auto",
        n_init="auto",
        **shared,
    ):
        self.method = method
        self.init = init
        self.prior = prior
        self.features = features
        self.flow_depth = flow_depth
        self.spline_bins = spline_bins
        self.spline_bound = spline_bound
        super().__init__(
            n_components,
            max_iter=max_iter,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            n_init=n_init,
            **shared,
        )

    # ------------------------------------------------------------------ hooks
    def _ivae_init(self):
        """How ``method="ivae"`` starts (None for the other methods)."""
        if self.method != "ivae":
            return None
        return "random" if self.init == "random" else "flow"

    def _resolve_init(self):
        """What ``init`` stands for in this fit: ``init_`` (after ``features_``).

        The iVAE and the contrastive methods on the invertible features start
        from a short flow fit unless ``init="random"``; the MLP features
        cannot (asking for it is an error); the flow itself has no start.
        """
        if self.method == "ivae":
            return self._ivae_init()
        if self.features_ is None:  # method="flow"
            return None
        if self.features_ == "flow":
            return "random" if self.init == "random" else "flow"
        if self.init == "flow":
            raise ValueError(
                f"init='flow' starts the features of method={self.method!r} from a "
                "flow, which needs the invertible features: use features='flow' "
                "(square data: n_components equal to n_features), or "
                "init='auto' / init='random' with the MLP features."
            )
        return "random"

    def _training_settings(self):
        settings = _AUTO_SETTINGS.get(self.method, _DEFAULT_SETTINGS)
        if self.method == "ivae":
            settings = (*_AUTO_IVAE_SETTINGS[self._ivae_init()], 1)
        auto = dict(zip(("max_iter", "learning_rate_init", "n_init"), settings))
        return {
            name: auto[name] if getattr(self, name) == "auto" else getattr(self, name)
            for name in auto
        }

    def _auto_batch_size(self, n_train):
        if self.method == "flow":
            # Exact likelihood: larger batches than the iVAE's, about 80 steps
            # per epoch (more steps mattered more than larger batches).
            return int(min(512, max(64, n_train // 80)))
        return super()._auto_batch_size(n_train)

    def _check_params(self, n_features):
        super()._check_params(n_features)
        if self.method == "flow" and self.n_components not in (None, n_features):
            raise ValueError(
                f"method='flow' needs square data: n_components={self.n_components} "
                f"must equal n_features={n_features} (or be None). The flow inverts "
                "an invertible mixing of as many sources as observed features; for "
                "fewer sources than features (undercomplete) or noisy data use "
                "method='ivae'."
            )
        self.features_ = self._resolve_features(n_features)
        self.init_ = self._resolve_init()
        if (
            self.features_ is not None
            and self.init_ == "flow"
            and self.learning_rate_init == "auto"
        ):
            # Fine-tuning a good start: a smaller step keeps it.
            self._fit_settings["learning_rate_init"] = _CONTRASTIVE_FLOW_START_LR

    def _resolve_features(self, n_features):
        """What ``features`` stands for on this data (None: not contrastive)."""
        if self.method not in ("tcl", "gcl"):
            return None
        square = self.n_components in (None, n_features)
        if self.features == "flow" and not square:
            raise ValueError(
                f"features='flow' is invertible, so it needs square data: "
                f"n_components={self.n_components} must equal n_features="
                f"{n_features} (or be None). Use features='mlp' for fewer sources "
                "than features."
            )
        if self.features == "flow" or (self.features == "auto" and square):
            return "flow"
        return "mlp"

    def _n_statistics(self):
        if self.method in ("flow", "ivae"):
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
        if self.method == "flow":
            return self._flow_module(
                n_features, getattr(self, "_n_batched_restarts", 1)
            )
        if self.method == "ivae":
            module = _make_ivae_module(self, n_features, seed, prior=self.prior)
            _start_from_flow(self, module, seed)
            return module
        if self.method == "tcl":
            return self._tcl_module(n_features, seed)
        return self._gcl_module(n_features, seed)

    def _flow_module(self, n_features, n_restarts=1):
        enc = self.aux_encoder_
        priors = [
            ConditionalPrior(
                n_features,
                self.prior,
                enc.u_type_,
                n_classes=enc.n_aux_ if enc.u_type_ == "categorical" else None,
                n_aux=enc.n_aux_ if enc.u_type_ == "continuous" else None,
                hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes)[:1],
                activation=self.activation,
            )
            for _ in range(n_restarts)
        ]
        flow = FlowModule(
            n_features,
            priors,
            depth=self.flow_depth,
            bins=self.spline_bins,
            bound=self.spline_bound,
        )
        flow._register_aux_support(*self._aux_support_tensors())
        return flow

    def _fit_restarts(self, n_features, data, seeds, start=None):
        """The flow trains its restarts together, as one batched model.

        Each restart keeps its own parameters and gradients; the one with the
        best exact log-likelihood on the monitored rows (validation split, or
        training data) is kept. If the batched fit diverges, the restarts are
        trained one by one instead, so a single bad restart cannot sink the
        others.
        """
        if start is None and self.init_ == "flow":
            with _flow_start(self, data):
                return super()._fit_restarts(n_features, data, seeds)
        if start is not None or self.method != "flow" or len(seeds) == 1:
            return super()._fit_restarts(n_features, data, seeds, start=start)
        self._n_batched_restarts = len(seeds)
        try:
            module, hist, _ = self._fit_one(
                n_features, data, seeds[0], 0, self._batch_size(data[0].shape[0])
            )
        except DivergenceError:
            module = None
        finally:
            del self._n_batched_restarts
        if module is None:
            return super()._fit_restarts(n_features, data, seeds)
        X, U, X_val, U_val = data
        if X_val is not None:
            X, U = X_val, U_val
        with torch.inference_mode():
            ll = torch.cat(
                [
                    module.restart_log_prob(X[rows], None if U is None else U[rows])
                    for rows in torch.arange(X.shape[0], device=X.device).split(4096)
                ],
                dim=1,
            ).mean(1)
        ll = torch.where(torch.isfinite(ll), ll, torch.full_like(ll, -torch.inf))
        self._restart_log_likelihoods = ll.cpu().numpy().astype(np.float64)
        if not np.isfinite(self._restart_log_likelihoods).any():
            return super()._fit_restarts(n_features, data, seeds)
        return module.keep(int(ll.argmax())), hist, seeds[0]

    def _feature_net(self, n_features, seed):
        """The contrastive feature network and whether it is a fitted start.

        None (the module's MLP) or the invertible stack of the flow
        (``features_``, resolved in ``fit``): new, or, inside
        :func:`~skivae._ivae._flow_start`, that of a short flow fit with
        ``seed``.
        """
        if self.features_ != "flow":
            return None, False
        start = getattr(self, "_init_data", None)
        if start is not None:
            try:
                return _flow_feature_net(self, *start, seed), True
            except FloatingPointError as exc:
                _warn_start_diverged(exc, "this restart's features start", stacklevel=5)
        net = InvertibleMLP(
            n_features,
            depth=self.flow_depth,
            bins=self.spline_bins,
            bound=self.spline_bound,
        )
        return net, False

    def _tcl_module(self, n_features, seed):
        net, started = self._feature_net(n_features, seed)
        return TCLModule(
            n_features,
            self.n_components_,
            self.aux_encoder_.n_aux_,
            hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes),
            activation=self.activation,
            feature_net=net,
            zero_classifier=started,
        )

    def _gcl_module(self, n_features, seed):
        # GCL's u-dependent terms start at zero: no classifier to hold back.
        net, _ = self._feature_net(n_features, seed)
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
            feature_net=net,
        )

    def _after_fit(self, Xp, seed):
        """TCL's linear ICA, then the standardisation of the sources."""
        F = self._batched(lambda m, xb, ub: m.features(xb), Xp).astype(np.float64)
        self.ica_ = None
        if self.method == "tcl" and not self.module_.invertible:
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
        """Map standardised sources back to observations.

        Exact for ``method="flow"`` (``x = g^-1(s)``), the decoder mean for
        ``method="ivae"``; TCL and GCL learn no inverse and raise.

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
                f"inverse_transform needs a decoder or an invertible model, which "
                f"method={self.method!r} does not learn; method='flow' (exact "
                "inverse) and method='ivae' (decoder mean) support it."
            )
        S = _check_latents(S, self.n_components_, "S")
        Z = S.astype(np.float64) * self._s_scale + self._s_mean
        return self._inverse(Z).astype(S.dtype, copy=False)

    def score(self, X, y=None):
        """The method's own objective on ``(X, u)``; higher is better.

        ``"flow"``: mean exact log-likelihood ``log p(x | u)`` per sample, in
        nats, on the original scale of ``X`` (``u=None``: ``log p(x)`` under
        the training distribution of ``u``); it compares flows of any
        settings honestly. ``"ivae"``: the mean importance-weighted bound on
        ``log p(x | u)`` with 16 samples, as ``IdentifiableVAE``'s default
        ``n_importance`` (``u=None`` uses the marginal prior). ``"tcl"``: mean
        log-probability of the true segment.
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

    @available_if(lambda est: est.method in ("flow", "ivae"))
    def score_samples(self, X, y=None):
        """The method's per-sample objective (see :meth:`score`).

        Available for ``method="flow"`` and ``"ivae"``, whose objectives are
        (bounds on) log-densities of ``X``.

        For ``method="flow"`` this is the exact ``log p(x | u)`` of each row
        on the original scale of ``X``; for ``"ivae"`` its importance-weighted
        bound (16 samples).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like, default=None
            The auxiliary variable ``u`` (required for TCL and GCL).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        X = self._validate_X(X)
        return self._score_samples(X, y)

    def sample(self, n_samples=1, u=None, random_state=None):
        """Draw from the fitted generative model (``"flow"`` and ``"ivae"``).

        ``s ~ p(s|u)``, then ``x = g^-1(s)`` (flow, exact) or ``x ~ p(x|s)``
        (iVAE).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples (ignored when ``u`` is given: one sample per
            value of ``u``).
        u : array-like, default=None
            Auxiliary values to condition on. ``None`` draws ``u`` like the
            training data (category frequencies, or rows of continuous ``u``).
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Observations on the original scale.
        S : ndarray of shape (n_samples, `n_components_`)
            The sources, standardised like the output of :meth:`transform`.
        """
        check_is_fitted(self)
        if not hasattr(self.module_, "sample"):
            raise ValueError(
                f"sample needs a generative model, which method={self.method!r} "
                "does not learn; use method='flow' or method='ivae'."
            )
        X, Z = self._sample(n_samples, u, random_state)
        S = (Z.astype(np.float64) - self._s_mean) / self._s_scale
        return X, S.astype(self._fit_dtype, copy=False)


def _flow_feature_net(est, X, U, seed):
    """The invertible network of a short flow fit on the training tensors
    ``X`` (standardised) and ``U``, with that flow's own standardisation of
    its input folded into the first linear layer: a map of ``X`` itself, on
    ``X``'s device and dtype."""
    flow = _short_flow(
        est,
        to_numpy(X, np.float64),
        U,
        seed,
        flow_depth=est.flow_depth,
        spline_bins=est.spline_bins,
        spline_bound=est.spline_bound,
    )
    net = flow.module_.net.to(device=X.device, dtype=X.dtype)
    mean = torch.as_tensor(flow._x_mean, device=X.device, dtype=X.dtype)
    scale = torch.as_tensor(flow._x_scale, device=X.device, dtype=X.dtype)
    with torch.no_grad():
        # ((x - mean) / scale) @ W.T + b  ==  x @ (W / scale).T + (b - ...)
        w = net.weight[:, 0] / scale
        net.bias[:, 0] -= (mean @ w.transpose(-1, -2)).unsqueeze(-2)
        net.weight[:, 0] = w
    return net
