"""Multi-layer perceptrons used by the encoders, decoders and priors."""

import math

import torch
from torch import nn


class XTanh(nn.Module):
    """``tanh(x) + slope * x``: smooth, bounded derivative, strictly increasing."""

    def __init__(self, slope=0.1):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        return torch.tanh(x) + self.slope * x


ACTIVATIONS = {
    "xtanh": XTanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_mlp(n_in, hidden_layer_sizes, n_out, activation="leaky_relu"):
    """Build ``Linear -> act -> ... -> Linear`` with the given hidden widths.

    An empty ``hidden_layer_sizes`` gives a single linear layer.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    layers = []
    width = n_in
    for h in hidden_layer_sizes:
        layers.append(nn.Linear(width, int(h)))
        layers.append(ACTIVATIONS[activation]())
        width = int(h)
    layers.append(nn.Linear(width, n_out))
    net = nn.Sequential(*layers)
    _init_mlp(net, activation)
    return net


def _init_mlp(net, activation):
    """Kaiming-style init for the hidden layers, small output layer."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    if activation in ("relu", "leaky_relu", "elu", "gelu", "silu"):
        nonlinearity, a = "leaky_relu", (0.2 if activation == "leaky_relu" else 0.0)
    else:
        nonlinearity, a = "tanh", 0.0
    for lin in linears[:-1]:
        nn.init.kaiming_uniform_(lin.weight, a=a, nonlinearity=nonlinearity)
        nn.init.zeros_(lin.bias)
    last = linears[-1]
    bound = 1.0 / math.sqrt(last.in_features)
    nn.init.uniform_(last.weight, -bound, bound)
    nn.init.zeros_(last.bias)


class GaussianHead(nn.Module):
    """An MLP that outputs a Gaussian over ``n_out`` dimensions.

    With ``full_cov=False`` the covariance is diagonal. With ``full_cov=True``
    the head also outputs the strictly-lower part of a Cholesky factor, so the
    covariance is ``L @ L.T`` with ``L = diag(exp(logvar / 2)) + lower``.

    ``forward`` returns ``(mean, logvar, lower)`` where ``logvar`` is the
    log of the squared Cholesky diagonal and ``lower`` is ``None`` or a
    ``(..., n_out, n_out)`` strictly-lower-triangular tensor.
    """

    def __init__(self, n_in, hidden_layer_sizes, n_out, activation, full_cov=False):
        super().__init__()
        self.n_out = n_out
        self.full_cov = bool(full_cov) and n_out > 1
        n_tril = n_out * (n_out - 1) // 2 if self.full_cov else 0
        self.net = make_mlp(n_in, hidden_layer_sizes, 2 * n_out + n_tril, activation)
        if self.full_cov:
            rows, cols = torch.tril_indices(n_out, n_out, offset=-1)
            self.register_buffer("_rows", rows, persistent=False)
            self.register_buffer("_cols", cols, persistent=False)

    def forward(self, x):
        out = self.net(x)
        n = self.n_out
        mean, raw = out[..., :n], out[..., n : 2 * n]
        # A bounded log-variance keeps the ELBO finite at the start of training.
        logvar = 8.0 * torch.tanh(raw / 8.0)
        lower = None
        if self.full_cov:
            lower = out.new_zeros(out.shape[:-1] + (n, n))
            lower[..., self._rows, self._cols] = out[..., 2 * n :]
        return mean, logvar, lower


def gaussian_sample(mean, logvar, lower=None):
    """Reparameterised draw from the Gaussian returned by :class:`GaussianHead`."""
    eps = torch.randn_like(mean)
    z = mean + torch.exp(0.5 * logvar) * eps
    if lower is not None:
        z = z + (lower @ eps.unsqueeze(-1)).squeeze(-1)
    return z


def marginal_variance(logvar, lower=None):
    """Diagonal of the covariance ``L @ L.T``."""
    var = torch.exp(logvar)
    if lower is not None:
        var = var + (lower**2).sum(-1)
    return var
