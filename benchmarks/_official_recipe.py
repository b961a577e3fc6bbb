"""The official iVAE code's recipe, rebuilt from skivae's pieces (benchmark only).

This is a benchmark configuration, not a public preset: nothing here is
reachable from the estimators. It matches, knob by knob, what PAPER.md lists
for the official code's main configuration:

- networks: MLPs with 2 hidden layers of width 100 and an output layer
  ("3-layer MLPs"), ``xtanh`` activation (``tanh(a) + 0.1 a``), built by
  :func:`skivae._core.nets.make_mlp`, then re-initialised as the official code
  does (Xavier-uniform weights, PyTorch's default biases; not in PAPER.md's
  list) unless ``init="skivae"``;
- encoder q(z | x, u): two separate networks for the mean and the log-variance,
  each fed ``[x, one_hot(u)]``; diagonal posterior;
- prior p(z | u): zero mean, log-variance an MLP of ``one_hot(u)``;
- decoder p(x | z): Gaussian, mean an MLP of z, fixed variance 0.1;
- objective: the ELBO split as in beta-TCVAE (Chen et al. 2018) into
  reconstruction, index-code mutual information, total correlation and
  dimension-wise KL, weighted 100, 1, 0, 10, with the minibatch-weighted
  sampling (MWS) estimator of log q(z) and log prod_k q(z_k);
- Adam, lr 0.01, ``ReduceLROnPlateau(factor=0.1, patience=0)`` stepped once per
  epoch on the mean training loss, batch 64, 20 epochs, no gradient clipping
  (:func:`fit_recipe`; skivae's ``train()`` has a fixed cosine schedule).

Every knob can be switched back to skivae's choice, one at a time, for the
ablation (``objective="elbo"``, ``encoder="x_only"``, ``posterior="full"``,
``schedule="cosine"``, other widths, activations, decoder variances).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from skivae._core.base import LatentModel
from skivae._core.nets import make_mlp
from skivae._core.training import DivergenceError, train

_LOG_2PI = math.log(2 * math.pi)

#: (reconstruction, index-code MI, total correlation, dimension-wise KL)
OFFICIAL_WEIGHTS = (100.0, 1.0, 0.0, 10.0)
ELBO_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def _xavier(net):
    """Xavier-uniform weights and PyTorch's default uniform(+-1/sqrt(fan_in)) biases."""
    for lin in net:
        if isinstance(lin, nn.Linear):
            nn.init.xavier_uniform_(lin.weight)
            bound = 1.0 / math.sqrt(lin.in_features)
            nn.init.uniform_(lin.bias, -bound, bound)
    return net


def _normal_logpdf(z, mean, logvar):
    """Element-wise log N(z; mean, exp(logvar))."""
    return -0.5 * (_LOG_2PI + logvar + (z - mean) ** 2 * torch.exp(-logvar))


class OfficialRecipeIVAE(LatentModel):
    """iVAE with the official code's architecture and weighted objective.

    Parameters
    ----------
    n_features, n_components, n_classes : int
        Observed dimension, latent dimension, number of segments (``u`` is
        given as category codes and one-hot encoded here).
    n_data : int
        Size of the training set: the N of the MWS estimator
        ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(B N)``.
    hidden_layer_sizes, activation
        Every network (encoder mean, encoder log-variance, encoder Cholesky
        part, decoder, prior) has these hidden layers.
    decoder_var : float
        Fixed variance of the Gaussian decoder.
    weights : tuple of 4 floats
        Weights of reconstruction, index-code MI, total correlation and
        dimension-wise KL. ``(1, 1, 1, 1)`` is the ELBO (the three estimated
        terms then telescope to log q(z|x) - log p(z|u) exactly).
    encoder : {"xu", "x_only"}
        q(z | x, u) (official) or q(z | x) (skivae's).
    init : {"xavier", "skivae"}
        Initialisation of every network: the official code's (Xavier-uniform
        weights, default biases) or :func:`~skivae._core.nets.make_mlp`'s.
    posterior : {"diag", "full"}
        Diagonal (official) or full-covariance Cholesky posterior (skivae's
        default); the full one gets a third network for the strictly lower part.
    score_seed, n_score_draws
        Fixed standard-normal draws of :meth:`score_samples` (plain ELBO).
    """

    log_density = True

    def __init__(
        self,
        n_features,
        n_components,
        n_classes,
        *,
        n_data,
        hidden_layer_sizes=(100, 100),
        activation="xtanh",
        decoder_var=0.1,
        weights=OFFICIAL_WEIGHTS,
        encoder="xu",
        posterior="diag",
        init="xavier",
        score_seed=0,
        n_score_draws=8,
    ):
        super().__init__()
        if encoder not in ("xu", "x_only"):
            raise ValueError(f"encoder must be 'xu' or 'x_only', got {encoder!r}")
        if posterior not in ("diag", "full"):
            raise ValueError(f"posterior must be 'diag' or 'full', got {posterior!r}")
        self.n_components = n_components
        self.n_classes = n_classes
        self.n_data = int(n_data)
        self.weights = tuple(float(w) for w in weights)
        self.encoder_kind = encoder
        self.full_cov = posterior == "full" and n_components > 1
        h = tuple(hidden_layer_sizes)
        n_in = n_features + (n_classes if encoder == "xu" else 0)
        self.enc_mean = make_mlp(n_in, h, n_components, activation)
        self.enc_logvar = make_mlp(n_in, h, n_components, activation)
        if self.full_cov:
            n_tril = n_components * (n_components - 1) // 2
            self.enc_lower = make_mlp(n_in, h, n_tril, activation)
            rows, cols = torch.tril_indices(n_components, n_components, offset=-1)
            self.register_buffer("_rows", rows, persistent=False)
            self.register_buffer("_cols", cols, persistent=False)
        self.decoder = make_mlp(n_components, h, n_features, activation)
        self.prior_logvar = make_mlp(n_classes, h, n_components, activation)
        if init == "xavier":
            for net in self.children():
                _xavier(net)
        elif init != "skivae":
            raise ValueError(f"init must be 'xavier' or 'skivae', got {init!r}")
        self.register_buffer("dec_logvar", torch.tensor(math.log(float(decoder_var))))
        gen = torch.Generator().manual_seed(int(score_seed))
        self.register_buffer(
            "score_eps", torch.randn(n_score_draws, n_components, generator=gen)
        )

    # -- pieces -----------------------------------------------------------------
    def _one_hot(self, u):
        return F.one_hot(u, self.n_classes).to(self.score_eps.dtype)

    def encode(self, x, u=None):
        """``(mean, logvar, lower)`` of q(z | x, u); ``lower`` is None if diagonal."""
        if self.encoder_kind == "xu":
            if u is None:
                raise ValueError("this encoder is q(z|x,u): it needs u.")
            x = torch.cat([x, self._one_hot(u)], dim=-1)
        lower = None
        if self.full_cov:
            n = self.n_components
            lower = x.new_zeros(x.shape[:-1] + (n, n))
            lower[..., self._rows, self._cols] = self.enc_lower(x)
        return self.enc_mean(x), self.enc_logvar(x), lower

    def prior_params(self, u):
        """Log-variance of p(z | u) (the mean is 0)."""
        return self.prior_logvar(self._one_hot(u))

    def _draw(self, mean, logvar, lower, eps):
        z = mean + torch.exp(0.5 * logvar) * eps
        if lower is not None:
            z = z + (lower @ eps.unsqueeze(-1)).squeeze(-1)
        return z

    def _rec(self, x, z):
        return _normal_logpdf(x, self.decoder(z), self.dec_logvar).sum(-1)

    def _pairwise(self, z, mean, logvar, lower):
        """``(joint, marg)``: log q(z_i | x_j), ``(B, B)`` and ``(B, B, n)``."""
        zi, mj, lj = z[:, None, :], mean[None], logvar[None]
        if lower is None:
            marg = _normal_logpdf(zi, mj, lj)
            return marg.sum(-1), marg
        n = self.n_components
        chol = lower + torch.diag_embed(torch.exp(0.5 * logvar))  # (B, n, n)
        diff = (zi - mj).transpose(0, 1)  # (B_j, B_i, n)
        sol = torch.linalg.solve_triangular(chol, diff.transpose(1, 2), upper=False)
        maha = (sol**2).sum(1).transpose(0, 1)  # (B_i, B_j)
        joint = -0.5 * (n * _LOG_2PI + logvar.sum(-1)[None] + maha)
        marg_var = torch.exp(logvar) + (lower**2).sum(-1)
        marg = _normal_logpdf(zi, mj, torch.log(marg_var)[None])
        return joint, marg

    # -- the LatentModel interface -----------------------------------------------
    def loss(self, x, u):
        """Minus the weighted ELBO decomposition, one value per row of the batch.

        With z_i ~ q(z | x_i, u_i) and the MWS estimates over the batch,
        ``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(B N)`` and
        ``log prod_k q(z_ik) ~ sum_k [logsumexp_j log q(z_ik|x_j) - log(B N)]``:
        MI = log q(z_i|x_i) - log q(z_i), TC = log q(z_i) - log prod_k q(z_ik),
        dim-KL = log prod_k q(z_ik) - log p(z_i|u_i). The per-row values depend
        on the whole batch (training only).
        """
        a, b, c, d = self.weights
        mean, logvar, lower = self.encode(x, u)
        z = self._draw(mean, logvar, lower, torch.randn_like(mean))
        rec = self._rec(x, z)
        log_p = _normal_logpdf(z, 0.0, self.prior_params(u)).sum(-1)
        joint, marg = self._pairwise(z, mean, logvar, lower)
        log_q_zx = torch.diagonal(joint)
        log_bn = math.log(x.shape[0] * self.n_data)
        log_q_z = torch.logsumexp(joint, dim=1) - log_bn
        log_q_prod = (torch.logsumexp(marg, dim=1) - log_bn).sum(-1)
        mi = log_q_zx - log_q_z
        tc = log_q_z - log_q_prod
        dim_kl = log_q_prod - log_p
        return -(a * rec - b * mi - c * tc - d * dim_kl)

    def score_samples(self, x, u):
        """Plain ELBO with the fixed draws ``score_eps`` (closed-form KL)."""
        if u is None:
            raise ValueError("OfficialRecipeIVAE scores only with u.")
        mean, logvar, lower = self.encode(x, u)
        eps = self.score_eps[:, None, :].expand(-1, x.shape[0], -1)
        low = None if lower is None else lower.unsqueeze(0)
        rec = self._rec(x, self._draw(mean, logvar, low, eps)).mean(0)
        p_lv = self.prior_params(u)
        var = torch.exp(logvar)
        if lower is not None:
            var = var + (lower**2).sum(-1)
        kl = 0.5 * (p_lv - logvar + (var + mean**2) * torch.exp(-p_lv) - 1.0).sum(-1)
        return rec - kl

    def features(self, x, u=None):
        """Posterior mean (needs ``u`` with the q(z|x,u) encoder)."""
        return self.encode(x, u)[0]

    def sample_posterior(self, x, u=None, generator=None):
        """One draw z ~ q(z | x, u) per row."""
        mean, logvar, lower = self.encode(x, u)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return self._draw(mean, logvar, lower, eps.to(mean.device))


def fit_recipe(
    model,
    X,
    U,
    *,
    epochs=20,
    batch_size=64,
    learning_rate=0.01,
    schedule="plateau",
    generator=None,
):
    """Train ``model`` on ``(X, U)``; returns ``(train_losses, final_lr)``.

    ``schedule="plateau"`` (the official recipe): Adam, no gradient clipping,
    ``ReduceLROnPlateau(factor=0.1, patience=0)`` stepped once per epoch on the
    epoch's mean training loss; the data stay on the device and the loop syncs
    with the host once per epoch. ``schedule="cosine"`` hands the model to
    skivae's own :func:`skivae._core.training.train` (cosine decay to 1%,
    gradient clipping at norm 10) for the same epochs, with early stopping off.
    """
    if schedule == "cosine":
        hist = train(
            model,
            X,
            U,
            max_iter=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            tol=0.0,
            n_iter_no_change=epochs + 1,
            generator=generator,
        )
        return hist.train_loss, learning_rate * 0.01
    if schedule != "plateau":
        raise ValueError(f"schedule must be 'plateau' or 'cosine', got {schedule!r}")
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.1, patience=0
    )
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], generator=generator).to(X.device)
        total = X.new_zeros(())
        for idx in order.split(batch_size):
            loss_vec = model.loss(X[idx], U[idx])
            optimizer.zero_grad(set_to_none=True)
            loss_vec.mean().backward()
            optimizer.step()
            total = total + loss_vec.detach().sum()
        epoch_loss = float(total) / X.shape[0]  # the one host sync of the epoch
        if not math.isfinite(epoch_loss):
            raise DivergenceError(f"training diverged (loss is {epoch_loss}).")
        losses.append(epoch_loss)
        scheduler.step(epoch_loss)
    model.eval()
    return losses, optimizer.param_groups[0]["lr"]
