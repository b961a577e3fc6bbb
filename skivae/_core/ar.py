"""Autoregressive latent priors for time-ordered rows (``ar_order > 0``).

The prior of the latents of row ``t`` given the ``R`` previous rows of its
sequence is conditionally factorial:

    z_t,j | z_{t-1..t-R}, u  ~  base(loc = mu_j(u_t) + sum_r gamma_rj(u_t)
                                       (z_{t-r},j - mu_j(u_{t-r})),
                                 scale = sigma_j(u_t))

where ``mu`` and ``sigma`` are those of the model's own prior
(:class:`~skivae._core.priors.ConditionalPrior`) and ``|gamma| < 1``
(``tanh`` of a table of categories, of an MLP of continuous ``u``, or of
constants without ``u``). ``R = 0`` is the model without memory.

:class:`ARModel` wraps a flow or an iVAE. Its rows are packed: ``x`` holds
``[x_t, x_{t-1}, ..., x_{t-R}, m_1, ..., m_R]`` where ``m_r`` is 1 when row
``t - r`` exists in the same sequence (0 at the start of a sequence: the
missing past counts as at its mean, ``z_{t-r} = mu(u_{t-r})``), and ``u``
holds ``u_t, u_{t-1}, ..., u_{t-R}`` (codes ``(B, R+1)`` or covariates
``(B, (R+1) n_aux)``). The previous latents are the wrapped model's
``features`` of the previous rows: ``g(x_{t-r})`` for the flow, whose
likelihood stays exact (the change of variables acts on row ``t`` only;
the past rows are conditioned on), and the encoder's posterior mean for the
iVAE (with its gradient, so the encoder learns from the temporal
dependence too).
"""

import torch
from torch import nn

from skivae._core.base import LatentModel
from skivae._core.nets import make_mlp


def pack_rows(X, U, previous, order):
    """Pack numpy rows for :class:`ARModel`.

    ``previous``: ``(n, order)`` indices of rows ``t-1 .. t-order`` of the
    same sequence, -1 where there is none. Returns ``(Xpacked, Upacked)``.
    """
    import numpy as np

    n = X.shape[0]
    exists = previous >= 0
    idx = np.where(exists, previous, np.arange(n)[:, None])
    parts = [X] + [X[idx[:, r]] for r in range(order)]
    Xp = np.concatenate(parts + [exists.astype(X.dtype)], axis=1)
    if U is None:
        return Xp, None
    if U.ndim == 1:
        Up = np.stack([U] + [U[idx[:, r]] for r in range(order)], axis=1)
    else:
        Up = np.concatenate([U] + [U[idx[:, r]] for r in range(order)], axis=1)
    return Xp, Up


def inner_prior(inner):
    """The prior of a single-restart flow or iVAE (the base of its ARPrior)."""
    return inner.priors[0] if hasattr(inner, "priors") else inner.prior


def current_u(U, order):
    """The current rows' ``u`` of packed ``U`` (numpy or torch; None passes).

    Codes are packed as ``(B, R+1)`` columns, covariates as ``R+1`` blocks of
    ``n_aux`` columns; the first column or block is row ``t``'s.
    """
    if U is None or not order:
        return U
    if isinstance(U, torch.Tensor):
        codes = not U.dtype.is_floating_point
    else:
        codes = U.dtype.kind in "iub"
    if codes:
        return U[:, 0]
    return U[:, : U.shape[1] // (order + 1)]


class ARPrior(nn.Module):
    """A :class:`ConditionalPrior` whose location is shifted by the past.

    Behaves as its ``base`` prior (same family, same ``params``) plus the
    shift set by :meth:`set_shift` for the duration of one call of the
    wrapped model (None: no shift, the base prior).
    """

    def __init__(
        self,
        base,
        order,
        *,
        n_classes=None,
        n_aux=None,
        hidden=(64,),
        activation="leaky_relu",
    ):
        super().__init__()
        self.base = base
        self.order = int(order)
        k = base.n_components
        n_out = self.order * k
        if base.aux == "categorical":
            self.gamma_table = nn.Parameter(torch.zeros(n_classes, n_out))
        elif base.aux == "continuous":
            self.gamma_net = make_mlp(n_aux, hidden, n_out, activation)
        else:
            self.gamma_raw = nn.Parameter(torch.zeros(n_out))
        self._shift = None

    # the ConditionalPrior interface, delegated
    @property
    def kind(self):
        return self.base.kind

    @property
    def aux(self):
        return self.base.aux

    @property
    def n_components(self):
        return self.base.n_components

    def component_log_prob(self, z, loc, log_s2):
        return self.base.component_log_prob(z, loc, log_s2)

    def log_prob(self, z, loc, log_s2):
        return self.base.log_prob(z, loc, log_s2)

    def kl_from_gaussian(self, *args, **kwargs):
        return self.base.kl_from_gaussian(*args, **kwargs)

    def sample(self, loc, log_s2):
        return self.base.sample(loc, log_s2)

    def params(self, u, like):
        loc, log_s2 = self.base.params(u, like)
        if self._shift is not None:
            loc = loc + self._shift
        return loc, log_s2

    # the memory
    def gamma(self, u, n_rows):
        """AR coefficients ``(B, R, k)`` in ``(-1, 1)`` at ``u`` (``u_t``)."""
        if self.aux == "categorical":
            raw = self.gamma_table[u]
        elif self.aux == "continuous":
            raw = self.gamma_net(u)
        else:
            raw = self.gamma_raw.expand(n_rows, -1)
        return torch.tanh(raw).view(n_rows, self.order, self.n_components)

    def shift(self, u, past_z, past_u, exists):
        """``sum_r gamma_r(u_t) (z_{t-r} - mu(u_{t-r}))`` over existing rows.

        ``past_z``: ``(B, R, k)``; ``past_u``: codes ``(B, R)``, covariates
        ``(B, R, n_aux)`` or None; ``exists``: ``(B, R)`` of 0/1.
        """
        B, R, k = past_z.shape
        if self.aux is None:
            past_loc = past_z.new_zeros(())
        else:
            flat_u = past_u.reshape((B * R,) + past_u.shape[2:])
            past_loc = self.base.params(flat_u, past_z.reshape(B * R, k))[0]
            past_loc = past_loc.reshape(B, R, k)
        dev = (past_z - past_loc) * exists[..., None]
        return (self.gamma(u, B) * dev).sum(1)

    def set_shift(self, shift):
        self._shift = shift


class ARModel(LatentModel):
    """A flow or iVAE whose prior remembers the ``order`` previous rows.

    Parameters
    ----------
    inner : LatentModel
        A single-restart :class:`~skivae._core.flow.FlowModule` or
        :class:`~skivae._core.elbo.IVAEModule`.
    prior : ARPrior
        The autoregressive prior around ``inner``'s own prior
        (:func:`inner_prior`); it replaces that prior in ``inner``.
    """

    def __init__(self, inner, prior):
        super().__init__()
        self.order = prior.order
        self.n_features = inner.n_features
        self.n_components = inner.n_components
        if hasattr(inner, "priors"):
            inner.priors = nn.ModuleList([prior])
        else:
            inner.prior = prior
        self.inner = inner

    @property
    def log_density(self):
        return self.inner.log_density

    @property
    def compile_pays(self):
        return self.inner.compile_pays

    @property
    def transform_batch_size(self):
        return getattr(self.inner, "transform_batch_size", 1024)

    @property
    def prior(self):
        return self.inner.prior

    def _unpack(self, x, u):
        """``x_t, past_x (B, R, D), exists (B, R), u_t, past_u``."""
        D, R = self.n_features, self.order
        B = x.shape[0]
        xt = x[:, :D]
        past_x = x[:, D : D * (R + 1)].reshape(B, R, D)
        exists = x[:, D * (R + 1) :]
        if u is None:
            return xt, past_x, exists, None, None
        if u.dtype == torch.long:
            return xt, past_x, exists, u[:, 0], u[:, 1:]
        A = u.shape[1] // (R + 1)
        return xt, past_x, exists, u[:, :A], u[:, A:].reshape(B, R, A)

    def _with_past(self, method, x, u):
        xt, past_x, exists, ut, past_u = self._unpack(x, u)
        B, R, D = past_x.shape
        past_z = self.inner.features(past_x.reshape(B * R, D)).reshape(B, R, -1)
        prior = self.prior
        prior.set_shift(prior.shift(ut, past_z, past_u, exists))
        try:
            return getattr(self.inner, method)(xt, ut)
        finally:
            prior.set_shift(None)

    def loss(self, x, u):
        return self._with_past("loss", x, u)

    def score_samples(self, x, u):
        return self._with_past("score_samples", x, u)

    def features(self, x):
        return self.inner.features(x)

    def inverse(self, z):
        return self.inner.inverse(z)

    def _decode_sample(self, z):
        if hasattr(self.inner, "sample_x"):
            return self.inner.sample_x(z)
        return self.inner.inverse(z)

    def sample(self, u, n_samples):
        """Draw ``(x, z)``: one sequence of ``n_samples`` steps."""
        return self.sample_sequence(u, n_samples)

    def sample_sequence(self, u, n_steps):
        """Draw one sequence ``(x, z)`` of ``n_steps`` rows, in time order.

        ``u``: the encoded auxiliary values of the steps (codes ``(T,)`` or
        covariates ``(T, n_aux)``), or None. The first ``R`` steps condition
        on a past at its mean, as in training.
        """
        steps = torch.arange(n_steps)
        previous = steps[:, None] - torch.arange(1, self.order + 1)
        return self.sample_rows(u, previous.clamp(min=-1))

    def sample_rows(self, u, previous):
        """Draw ``(x, z)`` of rows that form sequences.

        ``previous``: ``(n, R)`` integer indices of the ``1st .. R``-th
        previous row of each row in its sequence (-1 where there is none);
        a row's previous rows come before it. Rows at the same depth of
        their sequences are drawn together, the first rows of every
        sequence conditioning on a past at its mean, as in training.
        """
        prior = self.prior
        k = self.n_components
        n_rows = previous.shape[0]
        like = next(self.parameters()).new_zeros(n_rows, k)
        base_loc, log_s2 = prior.base.params(u, like)
        base_loc = base_loc.expand_as(like)
        log_s2 = log_s2.expand_as(like)
        gamma = prior.gamma(u, n_rows)  # (n, R, k)
        previous = previous.to(like.device)
        exists = previous >= 0
        past = previous.clamp(min=0)
        depth = [0] * n_rows
        for i, j in enumerate(previous[:, 0].tolist()):  # one more than its past
            if j >= 0:
                depth[i] = depth[j] + 1
        depth = torch.tensor(depth, dtype=torch.long)
        dev = like.new_zeros(n_rows, k)  # z - mu(u) of the rows drawn
        z = like.new_zeros(n_rows, k)
        for level in range(int(depth.max()) + 1 if n_rows else 0):
            rows = torch.nonzero(depth == level).reshape(-1).to(like.device)
            shift = like.new_zeros(len(rows), k)
            for r in range(self.order):
                mask = exists[rows, r, None].to(like.dtype)
                shift = shift + gamma[rows, r] * dev[past[rows, r]] * mask
            loc = base_loc[rows] + shift
            z[rows] = prior.base.sample(loc, log_s2[rows])
            dev[rows] = z[rows] - base_loc[rows]
        return self._decode_sample(z), z
