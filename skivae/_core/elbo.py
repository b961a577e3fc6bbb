"""The iVAE model: encoder q(z|x), decoder p(x|z), prior p(z|u) and the ELBO."""

import math

import torch
from torch import nn
from torch.nn import functional as F

from skivae._core.base import LatentModel
from skivae._core.nets import GaussianHead, gaussian_sample, make_mlp, marginal_variance

_LOG_2PI = math.log(2 * math.pi)
LIKELIHOODS = ("gaussian", "bernoulli")


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
    likelihood : {"gaussian", "bernoulli"}
    decoder_var : float or None
        Fixed observation-noise variance of the Gaussian decoder; ``None``
        learns one variance per feature (bounded below by ``min_decoder_var``).
    min_decoder_var : float
    full_cov : bool
        Full-covariance (Cholesky) posterior instead of a diagonal one.
    input_noise_std : float
        Standard deviation of the Gaussian noise :meth:`loss` adds to ``x``
        (fresh at every call); :meth:`score_samples` sees the clean data.
    score_seed : int
        Seed of the ``n_score_draws`` standard-normal draws that
        :meth:`score_samples` shares between all rows (buffer ``score_eps``).
    aux_support, aux_log_weights : Tensor or None
        Training values of ``u`` and their log-weights: the marginal prior
        used by :meth:`score_samples` when ``u`` is ``None``.
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
        aux_support=None,
        aux_log_weights=None,
    ):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(
                f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}"
            )
        self.n_features = n_features
        self.n_components = n_components
        self.likelihood = likelihood
        self.encoder = GaussianHead(
            n_features, hidden_layer_sizes, n_components, activation, full_cov=full_cov
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
        self._register_aux_support(aux_support, aux_log_weights)

    # -- pieces -----------------------------------------------------------------
    def encode(self, x):
        """``(mean, logvar, lower)`` of q(z|x) (see :class:`GaussianHead`)."""
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
        """log p(x|z), summed over features."""
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            x = x.expand_as(out)
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        log_var = self.decoder_log_var()
        return -0.5 * (_LOG_2PI + log_var + (x - out) ** 2 * torch.exp(-log_var)).sum(
            -1
        )

    def sample_x(self, z):
        """Draw x ~ p(x|z)."""
        mean = self.decode(z)
        if self.likelihood == "bernoulli":
            return torch.bernoulli(mean)
        return mean + torch.exp(0.5 * self.decoder_log_var()) * torch.randn_like(mean)

    # -- the LatentModel interface -----------------------------------------------
    def loss(self, x, u):
        """Negative ELBO of ``x`` plus fresh input noise, one draw per row."""
        if self.input_noise_std > 0:
            x = x + self.input_noise_std * torch.randn_like(x)
        return -self.elbo(x, u)

    def score_samples(self, x, u):
        """ELBO with the fixed draws ``score_eps``; marginal prior if ``u`` is None."""
        if u is None and self.prior.aux is not None:
            return self.marginal_elbo(x, eps=self.score_eps)
        return self.elbo(x, u, eps=self.score_eps)

    def features(self, x):
        """Posterior mean E[z|x]."""
        return self.encoder(x)[0]

    def sample(self, u, n_samples):
        """Draw ``(x, z)``: z ~ p(z|u), then x ~ p(x|z) (torch's global RNG).

        ``u`` holds ``n_samples`` auxiliary values, or is ``None`` for the
        N(0, I) prior of a plain VAE.
        """
        like = self.score_eps.new_zeros(n_samples, self.n_components)
        loc, log_s2 = self.prior.params(u, like)
        z = self.prior.sample(loc, log_s2)
        return self.sample_x(z), z

    # -- objective ---------------------------------------------------------------
    def _draw(self, mean, logvar, lower, eps):
        """z = mean + L eps; ``eps`` of shape (K, n) is shared by every row."""
        if eps is None:
            return gaussian_sample(mean, logvar, lower), None
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
        mean, logvar, lower = self.encoder(x)
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
        mean, logvar, lower = self.encoder(x)
        z, eps = self._draw(mean, logvar, lower, eps)  # (K, B, n)
        rec = self.log_likelihood(x, z)
        # log q(z|x) with z = mean + L eps: -0.5 (n log 2pi + log det + |eps|^2)
        log_q = -0.5 * (_LOG_2PI + logvar + eps**2).sum(-1)
        loc, log_s2 = self.prior.params(self.aux_support, None)
        # (K, B, 1, n) against (C, n) -> (K, B, C)
        lp = self.prior.log_prob(z[..., None, :], loc, log_s2)
        log_p = torch.logsumexp(lp + self.aux_log_weights, dim=-1)
        return (rec + log_p - log_q).mean(0)
