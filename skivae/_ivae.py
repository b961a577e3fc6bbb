"""The identifiable VAE estimator."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.utils import metadata_routing

from skivae import _defaults as D
from skivae._base import _BaseLatentEstimator
from skivae._builders import make_ivae
from skivae._compat import Interval, StrOptions, _fit_context, check_is_fitted
from skivae._core.priors import N_STATISTICS, PRIORS
from skivae._inference import check_latents, weighted_mean_score
from skivae._start import start_ivae


class IdentifiableVAE(_BaseLatentEstimator):
    """Identifiable variational autoencoder (iVAE).

    A VAE whose prior over the latents is conditionally factorial given an
    observed auxiliary variable ``u`` (a segment or time index, a class label,
    a covariate). Under the conditions of Khemakhem et al. (2020) the latents
    are then identifiable: :meth:`transform` recovers the true sources up to a
    permutation and component-wise invertible maps. Without ``u`` it fits a
    plain (non-identifiable) VAE, the usual baseline.

    Read more in the :ref:`User Guide <ivae>`.

    Parameters
    ----------
    n_components : int, default=None
        Number of latent components. ``None`` uses ``n_features``.

    prior : {"gaussian", "gaussian_var", "laplace"}, default="gaussian"
        Family of p(z|u) and the statistics ``u`` modulates: ``"gaussian"``
        modulates mean and variance (k = 2 statistics per component),
        ``"gaussian_var"`` only the variance (k = 1), ``"laplace"`` only the
        scale (k = 1).

    likelihood : {"gaussian", "laplace", "bernoulli"}, default="gaussian"
        Decoder p(x|z). ``"laplace"`` has heavy tails: a cell far from the
        decoder's mean costs its distance rather than its squared distance,
        so outlying cells and heavy-tailed noise pull the model less (see
        the user guide's section on robust likelihoods). ``"bernoulli"`` is
        for binary (0/1) data.

        .. versionchanged:: 0.5
           Added ``"laplace"``.

    decoder_var : float or "learn", default=0.01
        Observation-noise variance of the Gaussian or Laplace decoder, on the
        standardised scale of ``X`` (each feature has unit variance). Small
        values suit (nearly) noiseless data; ``"learn"`` estimates one
        variance per feature.

    input_noise : float or "auto", default="auto"
        Variance of Gaussian noise added to the standardised ``X`` at every
        training step (fresh noise each step; ``transform`` and ``score`` see
        the clean data). ``"auto"`` uses ``decoder_var`` for the Gaussian
        decoder with a fixed variance after a random start (``init_ ==
        "random"``) and 0 otherwise (since version 0.3). Matching the data's
        noise to the decoder's makes the model well specified when ``X`` is
        (nearly) noiseless, as in nonlinear ICA; after the flow start it did
        not help (see the user guide). Set 0 to train on the data as they
        are.

    posterior : {"full", "diag"}, default="full"
        Covariance of q(z|x). ``"full"`` (a Cholesky factor) avoids the bias
        of mean-field posteriors towards orthogonal decoders, which is
        what lets the ELBO's optimum sit at the true sources when the mixing
        is not orthogonal; ``"diag"`` is the paper's mean-field choice.

    n_importance : int, default=16
        Number K of importance samples in the bound that :meth:`score`,
        :meth:`score_samples`, early stopping and the choice between
        ``n_init`` restarts use. ``1`` is the ELBO (the score before
        version 0.2); K > 1 is the importance-weighted
        bound (IWAE, Burda et al. 2016) ``log (1/K) sum_k p(x|z_k) p(z_k|u)
        / q(z_k|x)`` with ``z_k ~ q(z|x)``: on average a tighter lower bound
        on log p(x|u) as K grows, equal to it when q(z|x) is the exact
        posterior. The K draws are fixed at :meth:`fit` (seeded by
        ``random_state``) and shared by all rows, so each row's score is
        deterministic and depends on that row only. Training has its own
        number of samples, ``n_importance_train``. Scoring costs about K / 8
        times the ELBO's; the user guide compares the rules that rank
        restarts.

        .. versionadded:: 0.2

    n_importance_train : int, default=4
        Number K of importance samples of the training objective. ``1``
        maximises the ELBO (closed-form KL, one posterior draw per row,
        the objective before version 0.3); K > 1 maximises the
        importance-weighted bound with K fresh draws per row. The ELBO pays
        for every gap between q(z|x) and the true posterior, which pulls the
        decoder towards mixings whose posterior q can fit; the weighted bound
        pays less of it as K grows, at a cost that grows with K (see the
        user guide for the measurements behind the default).

        .. versionadded:: 0.3

    init : {"auto", "flow", "random"}, default="auto"
        How the networks start. ``"random"``: PyTorch's default
        initialisation. ``"flow"``: from an identifiable solution that is
        cheap to find: the exact-likelihood flow of
        ``NonlinearICA(method="flow")`` (10 epochs, one restart) is fitted
        to the standardised ``X``; when ``n_components < n_features`` it
        runs 20 epochs on the whitened principal components of all the
        features (the ``max(16, 2 * n_components)`` leading ones when there
        are more) and ``n_components`` of its outputs are kept: among
        those whose likelihood gains from ``u`` at least a quarter of the
        largest gain, the ones that move ``X`` most (the others model the
        thin noise directions). The
        encoder's mean is then trained to output those sources, the
        decoder to map them back to ``X`` and the prior to fit them given
        ``u`` (regression: 20 passes over the data, between 200 and 2000
        steps), before the training bound (``n_importance_train``) is
        maximised from there. From random starts the ELBO lands on
        solutions whose recovery of the sources varies much from draw to
        draw; the flow start makes them steadier (the user guide's
        benchmarks, and where it does not help). ``"auto"`` is ``"flow"``
        when ``u`` is given and the decoder is Gaussian, otherwise
        ``"random"``. With fewer components than features and a continuous
        ``u`` the start's flow trains longer (its prior is a network). Each
        of the ``n_init`` restarts fits its own flow. The fitted ``init_``
        says which was used.

        .. versionadded:: 0.2

    max_iter : int or "auto", default="auto"
        Maximum number of epochs of the training bound. ``"auto"`` is a
        budget of optimiser steps: 20 epochs after the flow initialisation
        and 40 after a random one on data of 3 200 rows or more (about 100
        steps per epoch), and as many epochs as give the same number of
        steps on smaller data. On large data it runs at most four times
        those steps (in whole epochs, at least one): above about 100 000
        rows the work stops growing with the rows. Its learning rate
        decays to 1% at the end, so reaching it raises no
        ``ConvergenceWarning``; an int does, when training stops there
        before the loss stops improving by ``tol``.

        .. versionchanged:: 0.4
           ``"auto"`` counts steps, not epochs, on small data.

        .. versionchanged:: 0.5
           ``"auto"`` caps the steps on large data.

        .. versionchanged:: 0.7
           With ``"auto"``, the stopping rule's ``n_iter_no_change`` and the
           short flow fit of ``init="flow"`` count epochs of the budget's
           size too, so small data get the flow start of large data (10,
           or undercomplete 20 or 60, epochs of 80 steps) instead of that
           many short epochs; an int
           ``max_iter`` keeps literal epochs throughout.

    learning_rate_init : float or "auto", default="auto"
        Adam's initial learning rate, decayed by a cosine schedule over
        ``max_iter`` epochs; ``"auto"`` is 0.001 after the flow
        initialisation (a larger rate walks away from it) and 0.01 after a
        random one.

    %(shared_parameters)s

    Attributes
    ----------
    %(shared_attributes)s
    init_ : {"flow", "random"}
        The initialisation used (``init`` resolved).

    See Also
    --------
    NonlinearICA : Nonlinear ICA with iVAE, TCL or GCL.
    sklearn.decomposition.FastICA : Linear ICA.

    Notes
    -----
    ``X`` is standardised per feature before training; :meth:`inverse_transform`,
    :meth:`sample` and :meth:`score` work on the original scale. The encoder
    is q(z|x): ``u`` enters only through the prior, so :meth:`transform`
    does not need it. :meth:`score` and :meth:`score_samples` without ``u``
    use the marginal prior (the training distribution of ``u``).

    References
    ----------
    I. Khemakhem, D. P. Kingma, R. P. Monti, A. Hyvärinen. "Variational
    Autoencoders and Nonlinear ICA: A Unifying Framework". AISTATS 2020.

    Examples
    --------
    >>> from skivae import IdentifiableVAE
    >>> from skivae.datasets import make_nonstationary_sources
    >>> X, u, S = make_nonstationary_sources(10, 50, 2, random_state=0)
    >>> est = IdentifiableVAE(2, max_iter=3, random_state=0)
    >>> Z = est.fit_transform(X, u)
    >>> Z.shape
    (500, 2)
    """

    # ``Z`` is the data inverse_transform maps, not metadata: no
    # set_inverse_transform_request (scikit-learn marks its own ``Xt`` so)
    __metadata_request__inverse_transform = {"Z": metadata_routing.UNUSED}

    _parameter_constraints: dict = {
        **_BaseLatentEstimator._parameter_constraints,
        "prior": [StrOptions(set(PRIORS))],
        "likelihood": [StrOptions({"gaussian", "laplace", "bernoulli"})],
        "decoder_var": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"learn"}),
        ],
        "posterior": [StrOptions({"full", "diag"})],
        "input_noise": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "n_importance": [Interval(Integral, 1, None, closed="left")],
        "n_importance_train": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"auto", "flow", "random"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate_init": [
            Interval(Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
    }
    _feature_prefix = "ivae"

    def __init__(
        self,
        n_components=None,
        *,
        prior="gaussian",
        likelihood="gaussian",
        decoder_var=D.DECODER_VAR,
        input_noise="auto",
        posterior="full",
        n_importance=D.N_IMPORTANCE,
        n_importance_train=D.N_IMPORTANCE_TRAIN,
        init="auto",
        max_iter="auto",
        learning_rate_init="auto",
        **shared,
    ):
        self.prior = prior
        self.likelihood = likelihood
        self.decoder_var = decoder_var
        self.input_noise = input_noise
        self.posterior = posterior
        self.n_importance = n_importance
        self.n_importance_train = n_importance_train
        self.init = init
        super().__init__(
            n_components,
            max_iter=max_iter,
            learning_rate_init=learning_rate_init,
            **shared,
        )

    # ------------------------------------------------------------------ hooks
    def _accepts_missing(self, fitted=False):
        return True

    def _n_statistics(self):
        return N_STATISTICS[self.prior]

    def _fit_x_scaling(self, X):
        if self.likelihood == "bernoulli":
            _check_bernoulli_range(X)
        super()._fit_x_scaling(X)  # (also the constant columns, _x_fixed)
        if self.likelihood == "bernoulli":  # probabilities: X as it is
            self._x_mean = np.zeros(X.shape[1])
            self._x_scale = np.ones(X.shape[1])

    def _resolve_settings(self, n_features, u_type, fitted=None):
        # Models saved before version 0.2 have no ``init_``: they started randomly.
        init_ = None if fitted is None else fitted["init_"] or "random"
        return D.ivae_settings(self, u_type=u_type, n_features=n_features, init_=init_)

    def _build_module(self, n_features, seed, *, n_restarts=1, init_data=None):
        module = make_ivae(
            n_features,
            self.n_components_,
            self.aux_encoder_,
            prior=self.prior,
            hidden_layer_sizes=self.hidden_layer_sizes,
            activation=self.activation,
            likelihood=self.likelihood,
            decoder_var=self.decoder_var,
            posterior=self.posterior,
            input_noise_std=D.ivae_input_noise_std(
                self.input_noise,
                self.likelihood,
                self.decoder_var,
                getattr(self, "init_", "random"),
            ),
            n_importance=self.n_importance,
            n_importance_train=self.n_importance_train,
            score_seed=seed,
            masked=getattr(self, "masked_", False),
        )
        fill = getattr(self, "_fill_stats", None)
        if module.masked and fill is not None:
            module.set_fill(*fill)
        if init_data is not None:
            start_ivae(
                module,
                *init_data,
                self.aux_encoder_,
                self.n_components_,
                seed=seed,
                prior=self.prior,
                hidden_layer_sizes=self.hidden_layer_sizes,
                activation=self.activation,
                device=self.device_,
                ar_order=self.ar_order,
                compile=self.compile,
                budget=self.max_iter == "auto",
            )
        return self._with_memory(module)

    # ---------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, groups=None):
        """Fit the model to ``X`` with auxiliary variable ``y`` (= ``u``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations. Empty cells (NaN) are allowed: the model then trains
            on each row's observed cells (see :ref:`missing`).
        y : array-like of shape (n_samples,) or (n_samples, n_aux), default=None
            The auxiliary variable ``u``: labels (segments, classes) or
            continuous covariates (see ``u_type``). It is scikit-learn's ``y``
            positionally, so Pipelines and searches pass it. ``None`` fits a
            plain, non-identifiable VAE and warns (with ``ar_order > 0``: a
            model of stationary sources told apart by their temporal
            dependence, see :ref:`ordered`).

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
        if y is None and self.ar_order:
            self._warn_gaussian_innovations()
        elif y is None:
            warnings.warn(
                "IdentifiableVAE.fit got u=None: fitting a plain VAE with an "
                "unconditional N(0, I) prior. Its latents are NOT identifiable; pass "
                "an auxiliary variable u (segment labels, time, a covariate) to fit "
                "an iVAE.",
                UserWarning,
                stacklevel=2,
            )
        return self._fit(X, y, groups)

    # -------------------------------------------------------------- inference
    def transform(self, X):
        """Posterior mean E[z | x] of the latents.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations. NaN marks a missing cell if the model was fitted on
            data with missing cells (``masked_``).

        Returns
        -------
        Z : ndarray of shape (n_samples, `n_components_`)
            In ``X``'s float dtype.
        """
        X = self._validate_X(X)
        return self._features(X).astype(X.dtype, copy=False)

    def inverse_transform(self, Z):
        """Decoder mean E[x | z], on the original scale of ``X``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, `n_components_`)

        Returns
        -------
        X : ndarray of shape (n_samples, `n_features_in_`)
        """
        check_is_fitted(self)
        Z = check_latents(Z, self.n_components_, "Z")
        return self._inverse(Z).astype(Z.dtype, copy=False)

    def score_samples(self, X, y=None, groups=None):
        """Lower bound on log p(x | u) of each sample.

        The importance-weighted bound with ``n_importance`` samples, or the
        ELBO with ``n_importance=1``, on the original scale of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations; NaN as in :meth:`transform` (the bound then counts
            each row's observed cells).
        y : array-like, default=None
            The auxiliary variable ``u``. ``None`` bounds the marginal
            log p(x) under the training distribution of ``u``.

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
        if self._fitted_param("likelihood") == "bernoulli":
            # Out of [0, 1], the Bernoulli bound is no log-likelihood at all.
            _check_bernoulli_range(X)
        return self._score_samples(X, y, groups)

    def score(self, X, y=None, groups=None, sample_weight=None):
        """Mean bound on log p(x | u) per sample (higher is better).

        The importance-weighted bound with ``n_importance`` samples (the ELBO
        with ``n_importance=1``), see :meth:`score_samples`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations (NaN as in :meth:`score_samples`).
        y : array-like, default=None
            The auxiliary variable ``u`` (see :meth:`score_samples`).

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
        return weighted_mean_score(self.score_samples(X, y, groups), sample_weight)

    def predict_latent(self, u=None, return_std=False, *, past=None, u_past=None):
        """Mean of the latents under the learned prior p(z | u).

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
            E[z | u], on the scale of :meth:`transform`'s posterior means.
        std : ndarray of shape (n_samples, `n_components_`)
            Its standard deviation (only with ``return_std=True``).

        Examples
        --------
        >>> from skivae import IdentifiableVAE
        >>> from skivae.datasets import make_nonstationary_sources
        >>> X, u, S = make_nonstationary_sources(
        ...     n_segments=5, n_per_segment=100, n_sources=2, random_state=0
        ... )
        >>> est = IdentifiableVAE(max_iter=2, random_state=0).fit(X, u)
        >>> mean, std = est.predict_latent([0, 4], return_std=True)
        >>> mean.shape, bool((std > 0).all())
        ((2, 2), True)
        """
        mean, std = self._prior_moments(u, past, u_past)
        return (mean, std) if return_std else mean

    def sample(self, n_samples=1, u=None, random_state=None, *, groups=None):
        """Draw from the generative model: z ~ p(z|u), then x ~ p(x|z).

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
        Z : ndarray of shape (n_samples, `n_components_`)
        """
        X, Z = self._sample(n_samples, u, random_state, groups)
        return X, Z.astype(self._fit_dtype, copy=False)


def _check_bernoulli_range(X):
    """``likelihood="bernoulli"`` models cells in [0, 1] (NaN: missing)."""
    if np.any((X < 0) | (X > 1)):
        raise ValueError(
            "likelihood='bernoulli' needs X with values in [0, 1] (binary "
            "data); use likelihood='gaussian' for real-valued X."
        )
