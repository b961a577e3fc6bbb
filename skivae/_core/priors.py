"""Conditionally factorial exponential-family priors p(z | u).

Each prior maps the auxiliary variable ``u`` to natural parameters of a
factorial distribution over the latent components:

- ``"gaussian"``: mean and variance both depend on ``u`` (k = 2 statistics).
- ``"gaussian_var"``: zero mean, ``u``-dependent variance (k = 1).
- ``"laplace"``: zero location, ``u``-dependent scale (k = 1).

``u`` is either a tensor of integer category codes (a lookup table gives the
parameters), a float tensor of continuous covariates (an MLP gives them), or
``None`` for the unconditional standard-normal prior of a plain VAE.
"""

import math

import torch
from torch import nn

from skivae._core.nets import make_mlp

PRIORS = ("gaussian", "gaussian_var", "laplace")
N_STATISTICS = {"gaussian": 2, "gaussian_var": 1, "laplace": 1}
_LOG_2PI = math.log(2 * math.pi)
_LOG_SCALE_BOUND = 7.0


def _soft_bound(t, bound=_LOG_SCALE_BOUND):
    return bound * torch.tanh(t / bound)


class ConditionalPrior(nn.Module):
    """Factorial prior whose parameters are a learned function of ``u``.

    Parameters
    ----------
    n_components : int
        Latent dimension.
    kind : {"gaussian", "gaussian_var", "laplace"}
        Family and which statistics ``u`` modulates.
    aux : {"categorical", "continuous", None}
        How ``u`` is given; ``None`` gives the fixed N(0, I) prior.
    n_classes : int, optional
        Number of categories (``aux="categorical"``).
    n_aux : int, optional
        Number of continuous covariates (``aux="continuous"``).
    hidden_layer_sizes, activation
        MLP used for continuous ``u``.
    """

    def __init__(
        self,
        n_components,
        kind="gaussian",
        aux="categorical",
        *,
        n_classes=None,
        n_aux=None,
        hidden_layer_sizes=(64,),
        activation="leaky_relu",
    ):
        super().__init__()
        if kind not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {kind!r}")
        self.n_components = n_components
        self.kind = kind
        self.aux = aux
        n_out = n_components * (2 if kind == "gaussian" else 1)
        if aux == "categorical":
            # All-zero table: every category starts at the standard prior.
            self.table = nn.Parameter(torch.zeros(n_classes, n_out))
        elif aux == "continuous":
            self.net = make_mlp(n_aux, hidden_layer_sizes, n_out, activation)
        elif aux is not None:
            raise ValueError(
                f"aux must be 'categorical', 'continuous' or None, got {aux!r}"
            )

    def _raw(self, u):
        if self.aux == "categorical":
            return self.table[u]
        return self.net(u)

    def params(self, u, like):
        """Return ``(loc, log_scale2)`` broadcastable to ``like``'s shape.

        For Gaussian kinds ``log_scale2`` is the log-variance; for the Laplace
        prior it is ``2 * log b`` (so that ``exp(log_scale2 / 2)`` is the scale).
        """
        if self.aux is None:
            zeros = like.new_zeros(())
            return zeros.expand_as(like), zeros.expand_as(like)
        raw = self._raw(u)
        n = self.n_components
        if self.kind == "gaussian":
            loc, log_s2 = raw[..., :n], _soft_bound(raw[..., n:])
        else:
            loc, log_s2 = raw.new_zeros(()).expand_as(raw), _soft_bound(raw)
        return loc, log_s2

    def component_log_prob(self, z, loc, log_s2):
        """Log density of each component, shape of ``z``."""
        if self.kind == "laplace":
            log_b = 0.5 * log_s2
            return -math.log(2.0) - log_b - (z - loc).abs() * torch.exp(-log_b)
        return -0.5 * (_LOG_2PI + log_s2 + (z - loc) ** 2 * torch.exp(-log_s2))

    def log_prob(self, z, loc, log_s2):
        """Log density, summed over the components (the last axis)."""
        return self.component_log_prob(z, loc, log_s2).sum(-1)

    def kl_from_gaussian(self, mean, logvar, loc, log_s2, marg_var=None):
        """KL(q || p(z|u)) for a Gaussian q, summed over components.

        ``q`` has mean ``mean`` and a covariance whose Cholesky diagonal is
        ``exp(logvar / 2)`` (so ``sum(logvar)`` is its log-determinant) and
        whose diagonal is ``marg_var`` (defaults to ``exp(logvar)``, the
        diagonal case). The prior is factorial, so only the marginal variances
        and the log-determinant enter: the KL is closed form for every
        supported family (the Laplace case uses the folded-normal mean).
        """
        if marg_var is None:
            marg_var = torch.exp(logvar)
        if self.kind == "laplace":
            log_b = 0.5 * log_s2
            std = torch.sqrt(marg_var)
            d = mean - loc
            # E|z - loc| for z ~ N(mean, std^2): folded normal mean.
            e_abs = std * math.sqrt(2.0 / math.pi) * torch.exp(
                -0.5 * (d / std) ** 2
            ) + d * torch.erf(d / (std * math.sqrt(2.0)))
            neg_entropy = -0.5 * (_LOG_2PI + 1.0 + logvar)
            cross = math.log(2.0) + log_b + e_abs * torch.exp(-log_b)
            return (neg_entropy + cross).sum(-1)
        return 0.5 * (
            log_s2 - logvar + (marg_var + (mean - loc) ** 2) * torch.exp(-log_s2) - 1.0
        ).sum(-1)

    def sample(self, loc, log_s2):
        """Draw one z per row (uses torch's global RNG)."""
        if self.kind == "laplace":
            b = torch.exp(0.5 * log_s2)
            e = torch.distributions.Laplace(
                torch.zeros_like(b), torch.ones_like(b)
            ).sample()
            return loc + b * e
        return loc + torch.exp(0.5 * log_s2) * torch.randn_like(log_s2)
