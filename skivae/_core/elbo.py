"""The iVAE model: encoder q(z|x), decoder p(x|z), prior p(z|u) and the ELBO."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from skivae._core.base import LatentModel
from skivae._core.missing import conditional_fill
from skivae._core.nets import GaussianHead, gaussian_sample, make_mlp, marginal_variance

_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
LIKELIHOODS = ("gaussian", "laplace", "bernoulli")


class IVAEModule(LatentModel):
    """Identifiable VAE with an x-only Gaussian encoder.

    The encoder is q(z|x), so the latent representation of new data needs no
    auxiliary variable; ``u`` enters only through the prior p(z|u). With a
    prior whose ``aux`` is ``None`` the prior is N(0, I) and the module is a
    plain VAE.

    Parameters
    ----------
    n_features, n_components : int
    prior : ConditionalPrior
    hidden_layer_sizes : tuple of int
    activation : str
    likelihood : {"gaussian", "laplace", "bernoulli"}
        Decoder family. ``"laplace"`` has heavier tails than the Gaussian:
        its log-density falls linearly in ``|x - mean|``, so an outlying cell
        costs its distance, not its squared distance.
    decoder_var : float or None
        Fixed observation-noise variance of the Gaussian or Laplace decoder
        (the Laplace scale is ``sqrt(var / 2)``); ``None`` learns one
        variance per feature (bounded below by ``min_decoder_var``).
    min_decoder_var : float
    full_cov : bool
        Full-covariance (Cholesky) posterior instead of a diagonal one.
    input_noise_std : float
        Standard deviation of the Gaussian noise :meth:`loss` adds to ``x``
        (fresh at every call); :meth:`score_samples` sees the clean data.
    score_seed : int
        Seed of the ``n_score_draws`` standard-normal draws that the ELBO of
        :meth:`score_samples` shares between all rows (buffer ``score_eps``),
        and of the ``n_importance`` draws of its importance-weighted bound
        (buffer ``iwae_eps``, see :meth:`set_n_importance`).
    n_importance : int
        Number K of importance samples of :meth:`score_samples`: 1 gives the
        ELBO (closed-form KL, reconstruction averaged over ``score_eps``),
        K > 1 the importance-weighted bound of :meth:`importance_bound`.
    n_importance_train : int
        Number K of importance samples of the training objective
        :meth:`loss`: 1 is the ELBO (closed-form KL, one draw per row), K > 1
        the importance-weighted bound with K fresh draws per row.
    aux_support, aux_log_weights : Tensor or None
        Training values of ``u`` and their log-weights: the marginal prior
        used by :meth:`score_samples` when ``u`` is ``None``.
    masked : bool
        Whether ``x`` may hold missing cells (NaN). The decoder's
        log-likelihood then sums over the observed cells only, and the
        encoder reads the row with each missing cell filled by its
        conditional mean given the observed ones under a Gaussian model of
        ``x`` (buffers ``fill_mean`` and ``fill_prec``, set by
        :meth:`set_fill`; until then 0 and the identity: filling with 0, the
        mean of standardised data), beside the 0/1 mask of the missing cells,
        so it can tell an observed value from a guess and widen its posterior
        when a row carries less information. With ``masked=False`` a NaN
        propagates.
    """

    log_density = True

    def __init__(
        self,
        n_features,
        n_components,
        prior,
        *,
        hidden_layer_sizes=(64, 64),
        activation="leaky_relu",
        likelihood="gaussian",
        decoder_var=0.01,
        min_decoder_var=1e-4,
        full_cov=True,
        input_noise_std=0.0,
        score_seed=0,
        n_score_draws=8,
        n_importance=1,
        n_importance_train=1,
        aux_support=None,
        aux_log_weights=None,
        masked=False,
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}"
            )
        self.n_features = n_features
        self.n_components = n_components
        self.likelihood = likelihood
        self.masked = bool(masked)
        self.encoder = GaussianHead(
            n_features * (2 if self.masked else 1),
            hidden_layer_sizes,
            n_components,
            activation,
            full_cov=full_cov,
        )
        self.decoder = make_mlp(
            n_components, tuple(reversed(hidden_layer_sizes)), n_features, activation
        )
        self.prior = prior
        self.learn_var = decoder_var is None
        self.log_min_var = math.log(min_decoder_var)
        if self.learn_var:
            self.raw_log_var = nn.Parameter(torch.zeros(n_features))
        else:
            self.register_buffer(
                "raw_log_var", torch.full((n_features,), math.log(float(decoder_var)))
            )
        self.input_noise_std = float(input_noise_std)
        gen = torch.Generator().manual_seed(int(score_seed))
        self.register_buffer(
            "score_eps", torch.randn(n_score_draws, n_components, generator=gen)
        )
        self.set_n_importance(n_importance, score_seed)
        n_importance_train = int(n_importance_train)
        if n_importance_train < 1:
            raise ValueError(
                f"n_importance_train must be >= 1, got {n_importance_train}"
            )
        self.n_importance_train = n_importance_train
        self._register_aux_support(aux_support, aux_log_weights)
        if self.masked:
            self.register_buffer("fill_mean", torch.zeros(n_features))
            self.register_buffer("fill_prec", torch.eye(n_features))

    def set_fill(self, mean, prec):
        """Set the Gaussian model (mean and precision matrix of ``x``) whose
        conditional means fill a masked model's missing cells for the
        encoder (see :func:`~skivae._core.missing.gaussian_stats`)."""
        self.fill_mean.copy_(torch.as_tensor(mean))
        self.fill_prec.copy_(torch.as_tensor(prec))

    def fill_missing(self, x, generator=None):
        """``x`` with its missing cells (NaN) filled by their conditional
        means given the observed cells, or with a ``generator``, by draws
        from their conditional law (``x`` itself when the model is not
        masked; see :func:`~skivae._core.missing.conditional_fill`)."""
        if not self.masked:
            return x
        mean = self.fill_mean.to(x.dtype)
        prec = self.fill_prec.to(x.dtype)
        return conditional_fill(x, mean, prec, generator=generator)[0]

    def set_n_importance(self, n_importance, seed):
        """Score with ``n_importance`` fixed draws seeded by ``seed``.

        Replaces the buffer ``iwae_eps`` of shape ``(n_importance,
        n_components)``; its standard-normal draws are shared by every row,
        so each row's bound depends on that row only.
        """
        n_importance = int(n_importance)
        if n_importance < 1:
            raise ValueError(f"n_importance must be >= 1, got {n_importance}")
        gen = torch.Generator().manual_seed(int(seed) + 1)
        eps = torch.randn(n_importance, self.n_components, generator=gen)
        self.n_importance = n_importance
        self.register_buffer("iwae_eps", eps.to(self.score_eps))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Weights saved before version 0.2 have no ``iwae_eps``: keep the
        # draws made at construction.
        state_dict.setdefault(prefix + "iwae_eps", self.iwae_eps)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- pieces -----------------------------------------------------------------
    def encode(self, x):
        """``(mean, logvar, lower)`` of q(z|x) (see :class:`GaussianHead`).

        A masked model's encoder reads ``[x with missing cells filled, mask]``
        (:meth:`fill_missing`).
        """
        if self.masked:
            missing = torch.isnan(x)
            x = torch.cat([self.fill_missing(x), missing.to(x.dtype)], dim=-1)
        return self.encoder(x)

    def decode(self, z):
        """Decoder mean E[x|z] (probabilities for the Bernoulli decoder)."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(out)
        return out

    inverse = decode

    def decoder_log_var(self):
        if self.learn_var:
            # Soft floor: the variance cannot collapse to zero on noiseless data.
            return self.log_min_var + F.softplus(self.raw_log_var - self.log_min_var)
        return self.raw_log_var

    def log_likelihood(self, x, z):
        """log p(x|z), summed over the features (the observed ones when the
        model is masked: a missing cell adds 0 and passes no gradient)."""
        out = self.decoder(z)
        missing = None
        if self.masked:
            missing = torch.isnan(x)
            # Fill before the arithmetic: a NaN behind a mask still poisons
            # the gradient of the branch that is not selected.
            x = x.masked_fill(missing, 0.0)
        if self.likelihood == "bernoulli":
            x = x.expand_as(out)
            ll = -F.binary_cross_entropy_with_logits(out, x, reduction="none")
        elif self.likelihood == "laplace":
            # scale b with variance 2 b^2 = var: log b = (log var - log 2) / 2
            log_b = 0.5 * (self.decoder_log_var() - _LOG_2)
            ll = -(_LOG_2 + log_b + (x - out).abs() * torch.exp(-log_b))
        else:
            log_var = self.decoder_log_var()
            ll = -0.5 * (_LOG_2PI + log_var + (x - out) ** 2 * torch.exp(-log_var))
        if missing is not None:
            ll = ll.masked_fill(missing, 0.0)
        return ll.sum(-1)

    def sample_x(self, z):
        """Draw x ~ p(x|z)."""
        mean = self.decode(z)
        if self.likelihood == "bernoulli":
            return torch.bernoulli(mean)
        if self.likelihood == "laplace":
            # inverse CDF of a Laplace law of scale b = sqrt(var / 2)
            b = torch.exp(0.5 * (self.decoder_log_var() - _LOG_2))
            v = torch.rand_like(mean) - 0.5
            return mean - b * torch.sign(v) * torch.log1p(-2 * v.abs())
        return mean + torch.exp(0.5 * self.decoder_log_var()) * torch.randn_like(mean)

    # -- the LatentModel interface -----------------------------------------------
    def loss(self, x, u):
        """Negative training bound of ``x`` plus fresh input noise.

        The ELBO with one draw per row when ``n_importance_train`` is 1,
        otherwise the importance-weighted bound with ``n_importance_train``
        fresh draws per row (Burda et al. 2016): the same estimator as
        :meth:`importance_bound`, whose gradient weighs each draw by its
        normalised importance weight, so the posterior and the decoder are
        not pushed towards the solutions where q(z|x) fits the true
        posterior best.
        """
        if self.input_noise_std > 0:
            x = x + self.input_noise_std * torch.randn_like(x)
        k = self.n_importance_train
        if k == 1:
            return -self.elbo(x, u)
        mean, logvar, lower = self.encode(x)
        eps = torch.randn((k,) + mean.shape, dtype=mean.dtype, device=mean.device)
        lw = self._log_weights(x, u, mean, logvar, lower, eps)
        return math.log(k) - torch.logsumexp(lw, dim=0)

    def score_samples(self, x, u):
        """The held-out bound on log p(x|u); marginal prior if ``u`` is None.

        With ``n_importance == 1`` the ELBO with the fixed draws
        ``score_eps``; otherwise the importance-weighted bound with the
        ``n_importance`` fixed draws ``iwae_eps``.
        """
        if self.n_importance > 1:
            return self.importance_bound(x, u, self.iwae_eps)
        if u is None and self.prior.aux is not None:
            return self.marginal_elbo(x, eps=self.score_eps)
        return self.elbo(x, u, eps=self.score_eps)

    def features(self, x):
        """Posterior mean E[z|x]."""
        return self.encode(x)[0]

    def sample(self, u, n_samples):
        """Draw ``(x, z)``: z ~ p(z|u), then x ~ p(x|z) (torch's global RNG).

        ``u`` holds ``n_samples`` auxiliary values, or is ``None`` for the
        N(0, I) prior of a plain VAE.
        """
        like = self.score_eps.new_zeros(n_samples, self.n_components)
        loc, log_s2 = self.prior.params(u, like)
        z = self.prior.sample(loc, log_s2)
        return self.sample_x(z), z

    def latent_regression_loss(self, x, u, z, log_var):
        """Per-row loss of a start at known latents ``z`` of ``x`` (and ``u``).

        The encoder's mean regresses onto ``z`` and its log-variance onto the
        constant ``log_var`` (the initial width of the posterior), the
        decoder's mean onto ``x`` from ``z``, and the prior maximises
        ``log p(z|u)``: see :func:`~skivae._core.training.fit_to_latents`.
        """
        mean, logvar, _ = self.encode(x)
        loss = ((mean - z) ** 2).sum(-1) + ((logvar - log_var) ** 2).mean(-1)
        residual = self.decode(z) - x
        if self.masked:
            residual = residual.masked_fill(torch.isnan(x), 0.0)
        loss = loss + (residual**2).sum(-1)
        loc, log_s2 = self.prior.params(u, z)
        return loss - self.prior.log_prob(z, loc, log_s2)

    # -- objective ---------------------------------------------------------------
    def _draw(self, mean, logvar, lower, eps):
        """z = mean + L eps; ``eps`` of shape (K, n) is shared by every row,
        one of shape (K, B, n) holds each row's own draws."""
        if eps is None:
            return gaussian_sample(mean, logvar, lower), None
        if eps.dim() == 2:
            eps = eps[:, None, :].expand(-1, mean.shape[0], -1)  # (K, B, n)
        z = mean + torch.exp(0.5 * logvar) * eps
        if lower is not None:
            z = z + (lower @ eps.unsqueeze(-1)).squeeze(-1)
        return z, eps

    def elbo(self, x, u, eps=None):
        """Per-sample ELBO (closed-form KL, reparameterised reconstruction).

        ``eps`` of shape ``(K, n_components)`` gives fixed standard-normal
        draws shared by every row (averaged over K), which makes the estimate
        of each row depend on that row only; by default each row gets one
        fresh draw.
        """
        mean, logvar, lower = self.encode(x)
        z, eps = self._draw(mean, logvar, lower, eps)
        rec = self.log_likelihood(x, z)
        if eps is not None:
            rec = rec.mean(0)
        loc, log_s2 = self.prior.params(u, mean)
        kl = self.prior.kl_from_gaussian(
            mean, logvar, loc, log_s2, marginal_variance(logvar, lower)
        )
        return rec - kl

    def marginal_elbo(self, x, eps):
        """ELBO under the marginal prior p(z) = sum_c w_c p(z | u_c).

        Scores data whose ``u`` is unknown, with the buffers ``aux_support``
        (the training values u_c) and ``aux_log_weights`` (log w_c). The KL
        has no closed form here, so the draws ``eps`` of shape ``(K, n)``,
        shared by every row, estimate it.
        """
        mean, logvar, lower = self.encode(x)
        return self._log_weights(x, None, mean, logvar, lower, eps).mean(0)

    def log_prior(self, z, u):
        """log p(z|u) of draws ``z`` of shape ``(..., B, n)``.

        ``u=None`` uses the marginal prior over the training values of ``u``
        (``aux_support``, ``aux_log_weights``), or N(0, I) for a plain VAE.
        """
        if u is None and self.prior.aux is not None:
            loc, log_s2 = self.prior.params(self.aux_support, None)
            # (..., B, 1, n) against (C, n) -> (..., B, C)
            lp = self.prior.log_prob(z[..., None, :], loc, log_s2)
            return torch.logsumexp(lp + self.aux_log_weights, dim=-1)
        loc, log_s2 = self.prior.params(u, z)
        return self.prior.log_prob(z, loc, log_s2)

    def _log_weights(self, x, u, mean, logvar, lower, eps):
        """log p(x|z_k) + log p(z_k|u) - log q(z_k|x) for z_k = mean + L eps_k."""
        z, eps = self._draw(mean, logvar, lower, eps)  # (K, B, n)
        rec = self.log_likelihood(x, z)
        # z = mean + L eps with L lower-triangular, diag(L) = exp(logvar / 2):
        # log q(z|x) = -0.5 (n log 2pi + log det LL^T + |eps|^2)
        log_q = -0.5 * (_LOG_2PI + logvar + eps**2).sum(-1)
        return rec + self.log_prior(z, u) - log_q

    def log_importance_weights(self, x, u, eps):
        """Log importance weights, shape ``(K, B)``.

        ``log p(x|z_k) + log p(z_k|u) - log q(z_k|x)`` with ``z_k = mean(x) +
        L(x) eps_k`` for the rows ``eps_k`` of ``eps`` (shape ``(K, n)``,
        shared by every row). Their mean over ``k`` estimates the ELBO, their
        log-mean-exp is :meth:`importance_bound`.
        """
        mean, logvar, lower = self.encode(x)
        return torch.cat(
            [
                self._log_weights(x, u, mean, logvar, lower, e)
                for e in eps.split(self._draw_chunk(x.shape[0], u))
            ]
        )

    def importance_bound(self, x, u, eps):
        """Importance-weighted bound on log p(x|u) (Burda et al. 2016), shape ``(B,)``.

        ``log (1/K) sum_k p(x|z_k) p(z_k|u) / q(z_k|x)`` with the K draws
        ``eps`` (shape ``(K, n)``, shared by every row): a lower bound on
        log p(x|u) in expectation that tightens as K grows and equals the
        ELBO's estimate for K = 1. ``u=None`` uses the marginal prior.
        """
        lw = self.log_importance_weights(x, u, eps)
        return torch.logsumexp(lw, dim=0) - math.log(lw.shape[0])

    def _draw_chunk(self, n_rows, u):
        """Draws per chunk in :meth:`log_importance_weights` (bounded memory)."""
        width = max(
            [self.n_features, self.n_components]
            + [m.out_features for m in self.decoder if isinstance(m, nn.Linear)]
        )
        if u is None and self.prior.aux is not None:
            width = max(width, self.aux_support.shape[0] * self.n_components)
        return max(1, (1 << 22) // max(1, n_rows * width))
