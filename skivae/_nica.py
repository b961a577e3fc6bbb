"""Nonlinear ICA with an auxiliary variable: identifiable flow, iVAE, TCL and GCL."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import metadata_routing
from sklearn.utils.metaestimators import available_if

from skivae import _defaults as D
from skivae._base import _BaseLatentEstimator
from skivae._builders import (
    make_flow,
    make_gcl,
    make_invertible_net,
    make_ivae,
    make_tcl,
)
from skivae._compat import Interval, StrOptions, _fit_context, check_is_fitted
from skivae._core.priors import N_STATISTICS, PRIORS
from skivae._inference import check_latents, standardise, weighted_mean_score
from skivae._start import flow_feature_net, start_ivae, warn_start_diverged

_METHODS = ("flow", "ivae", "tcl", "gcl")
_FEATURES = ("auto", "mlp", "flow")


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
          rotation and trains at 0.01. The start decides much of the result
          (see the user guide's benchmarks). Use ``"random"`` to compare the
          contrastive objectives themselves with other methods. The MLP
          features start randomly (``init="flow"`` with them is an error).
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
        flow fit unless ``init="random"`` (see the user guide's benchmarks),
        at several times the MLP's fit time. TCL on the invertible network
        applies no FastICA.
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
        Maximum number of epochs. ``"auto"`` is a budget of optimiser steps:
        20 epochs for the flow on up to 5 features, growing in proportion to
        the number of features up to 40 epochs at 10 or more, 20 for the
        iVAE started from the flow and 40 otherwise (see ``init``), on data
        large enough for the ``"auto"`` batch size to give 80 (the flow) or
        100 steps per epoch, and as many epochs as give the same number of
        steps on smaller data. On large data it runs at most four times
        those steps (in whole epochs, at least one): above about 100 000
        rows (the flow: 164 000) the work stops growing with the rows. Its
        learning rate decays to 1% at the end, so reaching it raises no
        ``ConvergenceWarning``; an int does, when training stops there
        before the loss stops improving by ``tol``.

        .. versionchanged:: 0.4
           ``"auto"`` counts steps, not epochs, on small data.

        .. versionchanged:: 0.5
           The flow's budget grows with the number of features beyond 5;
           the steps are capped on large data.

        .. versionchanged:: 0.7
           ``"auto"`` also sizes the epochs of ``n_iter_no_change`` and of the
           short flow fit that starts ``method="ivae"`` (``init="flow"``)
           and the contrastive ``features="flow"``: on small data that fit
           runs the steps it runs on large data. An int ``max_iter`` counts
           literal epochs everywhere.

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

    # ``S`` is the data inverse_transform maps, not metadata: no
    # set_inverse_transform_request (scikit-learn marks its own ``Xt`` so)
    __metadata_request__inverse_transform = {"S": metadata_routing.UNUSED}

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
        flow_depth=D.FLOW_DEPTH,
        spline_bins=D.SPLINE_BINS,
        spline_bound=D.SPLINE_BOUND,
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
    #: fitted attributes that the settings decide (kept by a warm start)
    _settings_attrs = ("init_", "features_")
    _required_state = (*_BaseLatentEstimator._required_state, "_s_mean", "_s_scale")

    def _accepts_missing(self, fitted=False):
        return self._fitted_param("method", fitted=fitted) == "ivae"

    def _resolve_settings(self, n_features, u_type, fitted=None):
        return D.nica_settings(
            self, n_features=n_features, u_type=u_type, fitted=fitted
        )

    def _check_params(self, n_features, n_samples):
        super()._check_params(n_features, n_samples)
        if self.ar_order and self.method not in ("flow", "ivae"):
            raise ValueError(
                f"ar_order={self.ar_order} needs a model with a prior: "
                f"method='flow' or method='ivae', not method={self.method!r}."
            )
        k = self.n_components or n_features
        if (
            self.method == "tcl"
            and n_samples <= k
            and D.nica_features("tcl", self.features, self.n_components, n_features)
            == "mlp"
        ):
            raise ValueError(
                f"method='tcl' with features='mlp' unmixes its {k} features with "
                f"FastICA, which needs more than n_components={k} rows; X has "
                f"{n_samples}. Pass more rows, lower n_components, or use "
                "features='flow' on square data."
            )
        if self.method == "flow" and self.n_components not in (None, n_features):
            raise ValueError(
                f"method='flow' needs square data: n_components={self.n_components} "
                f"must equal n_features={n_features} (or be None). The flow inverts "
                "an invertible mixing of as many sources as observed features; for "
                "fewer sources than features (undercomplete) or noisy data use "
                "method='ivae'."
            )

    def _fit_x_scaling(self, X):
        super()._fit_x_scaling(X)
        constant = np.flatnonzero(~np.isnan(self._x_fixed))
        if self.method == "flow" and constant.size:
            warnings.warn(
                f"X column(s) {constant.tolist()} are constant over the training "
                "rows: they carry no source, but method='flow' returns as many "
                "sources as X has columns, so some of its sources are spent on "
                "them. Drop the constant columns, or use method='ivae' with "
                "n_components < n_features.",
                UserWarning,
                stacklevel=6,  # the user's fit (through sklearn's wrapper)
            )

    def _n_statistics(self):
        if self.method in ("flow", "ivae"):
            return N_STATISTICS[self.prior]
        return 2 if self.method == "gcl" else 1

    def _aux_u_type(self):
        if self.method == "tcl" and self.u_type == "auto":
            return "categorical"  # TCL can only use labels
        return self.u_type

    def _aux_labels_only(self):
        return self.method == "tcl"

    def _check_aux(self):
        enc = self.aux_encoder_
        if self.method == "tcl" and enc.u_type_ != "categorical":
            raise ValueError(
                "method='tcl' needs a categorical u (segment labels), but u was read "
                f"as {enc.u_type_}. Use method='gcl' or method='ivae' for continuous "
                "u, or pass integer labels / u_type='categorical'."
            )
        if enc.n_distinct_ < 2:  # one label, or one row of covariates
            raise ValueError(
                "u takes a single value: at least 2 distinct values are needed "
                "(and many more for identifiability)."
            )

    def _build_module(self, n_features, seed, *, n_restarts=1, init_data=None):
        """One builder per method: the method's LatentModel."""
        net = dict(
            hidden_layer_sizes=self.hidden_layer_sizes, activation=self.activation
        )
        aux, n = self.aux_encoder_, self.n_components_
        if self.method == "flow":
            flow = make_flow(
                n_features,
                aux,
                prior=self.prior,
                depth=self.flow_depth,
                bins=self.spline_bins,
                bound=self.spline_bound,
                n_restarts=n_restarts,
                **net,
            )
            return self._with_memory(flow)
        if self.method == "ivae":
            module = make_ivae(
                n_features,
                n,
                aux,
                prior=self.prior,
                likelihood="gaussian",
                decoder_var=D.DECODER_VAR,
                posterior="full",
                input_noise_std=D.ivae_input_noise_std(
                    "auto", "gaussian", D.DECODER_VAR, getattr(self, "init_", "random")
                ),
                n_importance=D.N_IMPORTANCE,
                n_importance_train=D.N_IMPORTANCE_TRAIN,
                score_seed=seed,
                masked=getattr(self, "masked_", False),
                **net,
            )
            fill = getattr(self, "_fill_stats", None)
            if module.masked and fill is not None:
                module.set_fill(*fill)
            if init_data is not None:
                start_ivae(
                    module,
                    *init_data,
                    aux,
                    n,
                    seed=seed,
                    prior=self.prior,
                    device=self.device_,
                    ar_order=self.ar_order,
                    compile=self.compile,
                    budget=self.max_iter == "auto",
                    **net,
                )
            return self._with_memory(module)
        features, started = self._feature_net(n_features, seed, init_data)
        if self.method == "tcl":
            return make_tcl(
                n_features,
                n,
                aux,
                feature_net=features,
                zero_classifier=started,
                **net,
            )
        return make_gcl(n_features, n, aux, feature_net=features, **net)

    def _feature_net(self, n_features, seed, init_data):
        """The contrastive feature network and whether it is a fitted start:
        None (the module's MLP), the invertible network of a short flow fit
        on ``init_data``, or a new invertible network."""
        if self.features_ != "flow":
            return None, False
        flow = dict(
            depth=self.flow_depth, bins=self.spline_bins, bound=self.spline_bound
        )
        if init_data is not None:
            try:
                net = flow_feature_net(
                    *init_data,
                    self.aux_encoder_,
                    seed=seed,
                    prior=self.prior,
                    hidden_layer_sizes=self.hidden_layer_sizes,
                    activation=self.activation,
                    device=self.device_,
                    compile=self.compile,
                    budget=self.max_iter == "auto",
                    **flow,
                )
                return net, True
            except FloatingPointError as exc:
                warn_start_diverged(exc, "this restart's features start", 6)
        return make_invertible_net(n_features, **flow), False

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
            if not np.all(np.ptp(F, axis=0) > 0):
                raise ValueError(
                    "method='tcl' learned a feature that does not vary over X, "
                    "so FastICA cannot unmix the features: check X for constant "
                    "columns, or try another random_state (a unit that died in "
                    "training), or features='flow' on square data."
                )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                F = self.ica_.fit_transform(F)
            for w in caught:  # the others as they were
                if not issubclass(w.category, ConvergenceWarning):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if any(issubclass(w.category, ConvergenceWarning) for w in caught):
                # (FastICA's own warning names its max_iter, not this one's)
                warnings.warn(
                    f"method='tcl': FastICA did not converge in {self.ica_.max_iter} "
                    "iterations on the learned features, so the rotation of the "
                    "sources it returns is arbitrary. Train the features longer "
                    "(max_iter), use more segments or rows, or use features='flow' "
                    "on square data.",
                    ConvergenceWarning,
                    stacklevel=5,  # the user's fit (through sklearn's wrapper)
                )
        self._s_mean, self._s_scale = standardise(F)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Estimate the unmixing from ``X`` and the auxiliary variable ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations. Empty cells (NaN) are allowed with ``method="ivae"``
            only, which trains on each row's observed cells (see
            :ref:`missing`); the other methods need complete rows.
        y : array-like of shape (n_samples,) or (n_samples, n_aux)
            The auxiliary variable ``u`` (required, except with ``ar_order >
            0``): segment labels or continuous covariates. It is
            scikit-learn's ``y`` positionally.

        groups : array-like of shape (n_samples,), default=None
            With ``ar_order > 0``: the sequence of each row; the rows of a
            sequence are in time order and a row's past is the rows before it
            in its own sequence. ``None``: all rows form one sequence.
            Ignored with ``ar_order=0``.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if y is None and not (self.ar_order and self.method in ("flow", "ivae")):
            raise ValueError(
                "NonlinearICA requires y to be passed, but the target y is None: y "
                "is the auxiliary variable u (fit(X, u)), and nonlinear ICA without "
                "an auxiliary variable is not identifiable. Use "
                "sklearn.decomposition.FastICA for linear ICA without u, "
                "IdentifiableVAE for a plain VAE, or ar_order=1 (with groups) for "
                "time series whose sources differ in their temporal dependence."
            )
        if y is None:
            self._warn_gaussian_innovations()
        return self._fit(X, y, groups)

    # -------------------------------------------------------------- inference
    def transform(self, X):
        """Estimated sources, standardised on the training data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations. NaN marks a missing cell if the model was fitted on
            data with missing cells (``masked_``).

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
            method = self._fitted_param("method")
            raise ValueError(
                f"inverse_transform needs a decoder or an invertible model, which "
                f"method={method!r} does not learn; method='flow' (exact "
                "inverse) and method='ivae' (decoder mean) support it."
            )
        S = check_latents(S, self.n_components_, "S")
        Z = S.astype(np.float64) * self._s_scale + self._s_mean
        return self._inverse(Z).astype(S.dtype, copy=False)

    def score(self, X, y=None, groups=None, sample_weight=None):
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
            Observations (NaN as in :meth:`transform`).
        y : array-like
            The auxiliary variable ``u`` (required for TCL and GCL).

        groups : array-like of shape (n_samples,), default=None
            With ``ar_order > 0``: the sequence of each row (see :meth:`fit`);
            each row is scored given its past, and a model fitted with ``u``
            needs ``u`` for every row (no marginal over ``u``). Ignored with
            ``ar_order=0``.

        %(score_sample_weight)s

        Returns
        -------
        score : float
        """
        X = self._validate_X(X)
        return weighted_mean_score(self._score_samples(X, y, groups), sample_weight)

    @available_if(lambda est: est._fitted_param("method") in ("flow", "ivae"))
    def score_samples(self, X, y=None, groups=None):
        """The method's per-sample objective (see :meth:`score`).

        Available for ``method="flow"`` and ``"ivae"``, whose objectives are
        (bounds on) log-densities of ``X``.

        For ``method="flow"`` this is the exact ``log p(x | u)`` of each row
        on the original scale of ``X``; for ``"ivae"`` its importance-weighted
        bound (16 samples).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations (NaN as in :meth:`transform`).
        y : array-like, default=None
            The auxiliary variable ``u`` (required for TCL and GCL).

        groups : array-like of shape (n_samples,), default=None
            With ``ar_order > 0``: the sequence of each row (see :meth:`fit`);
            each row is scored given its past, and a model fitted with ``u``
            needs ``u`` for every row (no marginal over ``u``). Ignored with
            ``ar_order=0``.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
        """
        X = self._validate_X(X)
        return self._score_samples(X, y, groups)

    def predict_latent(self, u=None, return_std=False, *, past=None, u_past=None):
        """Mean of the sources under the learned prior p(s | u).

        The conditional prior's location and spread at new values of ``u``:
        new locations, future times, unseen combinations of covariates. A
        continuous ``u`` (or ``aux_transformer``) interpolates between the
        training values; far outside them the prediction is an
        extrapolation of a neural network. For a categorical ``u`` only the
        training categories are known.

        Parameters
        ----------
        %(predict_latent_parameters)s

        Returns
        -------
        mean : ndarray of shape (n_samples, `n_components_`)
            E[s | u], standardised like the output of :meth:`transform`.
        std : ndarray of shape (n_samples, `n_components_`)
            Its standard deviation (only with ``return_std=True``).

        Raises a ValueError for ``method="tcl"`` and ``"gcl"``, which learn
        no prior.

        Examples
        --------
        >>> import numpy as np
        >>> from skivae import NonlinearICA
        >>> from skivae.datasets import make_continuous_aux_sources
        >>> X, u, S = make_continuous_aux_sources(
        ...     n_samples=500, n_sources=2, random_state=0
        ... )
        >>> est = NonlinearICA(max_iter=2, random_state=0).fit(X, u)
        >>> grid = np.linspace(u.min(), u.max(), 5)
        >>> mean, std = est.predict_latent(grid, return_std=True)
        >>> std.shape
        (5, 2)
        """
        mean, std = self._prior_moments(u, past, u_past)
        if getattr(self, "ica_", None) is not None:  # (TCL: no prior, raised above)
            raise ValueError("predict_latent is not available after a linear unmixing.")
        mean = (mean - self._s_mean) / self._s_scale
        std = std / self._s_scale
        return (mean, std) if return_std else mean

    def sample(self, n_samples=1, u=None, random_state=None, *, groups=None):
        """Draw from the fitted generative model (``"flow"`` and ``"ivae"``).

        ``s ~ p(s|u)``, then ``x = g^-1(s)`` (flow, exact) or ``x ~ p(x|s)``
        (iVAE).

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples (ignored when ``u`` is given: one sample per
            value of ``u``).
        u : array-like or scalar, default=None
            Auxiliary values to condition on, one per sample. A single value
            (a label, or a number when ``u`` has one covariate) draws all
            ``n_samples`` at that value. ``None`` draws ``u`` like the
            training data (category frequencies, or rows of continuous ``u``).
        random_state : int, RandomState instance or None, default=None
            Seed of the draws; ``None`` uses the estimator's ``random_state``.
        %(sample_groups)s

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
            Observations on the original scale.
        S : ndarray of shape (n_samples, `n_components_`)
            The sources, standardised like the output of :meth:`transform`.
        """
        check_is_fitted(self)
        if not hasattr(self.module_, "sample"):
            method = self._fitted_param("method")
            raise ValueError(
                f"sample needs a generative model, which method={method!r} "
                "does not learn; use method='flow' or method='ivae'."
            )
        X, Z = self._sample(n_samples, u, random_state, groups)
        S = (Z.astype(np.float64) - self._s_mean) / self._s_scale
        return X, S.astype(self._fit_dtype, copy=False)
