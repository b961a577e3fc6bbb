"""The identifiable flow: exact-likelihood nonlinear ICA for square, noiseless data.

When ``x = f(s)`` with ``f`` invertible and no noise, the likelihood of the
iVAE's generative model is exact (Khemakhem et al. 2020, the flow special
case):

    log p(x | u) = sum_i log p(g_i(x) | u) + log |det dg/dx|,   g = f^-1,

with the same conditionally factorial prior p(s | u). :class:`FlowModule`
parameterises ``g`` like an inverted multilayer perceptron::

    x -> Linear -> spline -> Linear -> spline -> ... -> Linear -> s

where every ``Linear`` is a full-rank square matrix with a bias and every
``spline`` an element-wise monotone rational-quadratic spline (from zuko,
identity outside ``[-bound, bound]``). This family contains the exact inverse
of any invertible MLP with strictly monotone activations, so maximum
likelihood needs no encoder, decoder noise or variational gap.

The invertible stack itself is :class:`InvertibleMLP`; the contrastive
estimators (TCL, GCL) use it too, as a feature network that cannot fold the
signs of the sources.
"""

import copy

import torch
from torch import nn
from zuko.transforms import MonotonicRQSTransform

from skivae._core.base import LatentModel


class _StackedRQS(MonotonicRQSTransform):
    """zuko's monotone rational-quadratic spline, with a knot lookup laid out
    for the flow's stacked restarts.

    zuko finds each input's bin by broadcasting the knots, shape
    ``(R, 1, D, K + 1)``, against the batch, ``(R, B, D)``, to
    ``(R, B, D, K + 1)`` before three gathers; their backward scatters into
    zero tensors of that broadcast shape and sums them back. Here the lookup
    runs on the knots as they are: :func:`torch.searchsorted` and the
    gathers take the ``(R, D, K + 1)`` knots with the batch moved last, so
    no tensor is ``K + 1`` times the batch. The spline itself is zuko's,
    untouched (its ``_call``, ``_inverse`` and ``call_and_ladj`` call these
    two methods): the same bins (the number of knots strictly below the
    input, as zuko counts them), outputs and log-Jacobians bit-identical,
    gradients equal up to the order of their sums. A flow training step
    (batch 500, 2 restarts, 5 features, one thread) takes 5.9 ms instead of
    7.1, and 7.9 instead of 10.6 at batch 1000
    (``benchmarks/bench_step.py``, results/speed_step.txt).

    Inputs of any other layout (no restart axis, or a zuko whose knots are
    named otherwise) go through zuko's own lookup.
    """

    def _stacked(self, value):
        knots = getattr(self, "horizontal", None)
        return (
            knots is not None
            and knots.dim() == 4
            and knots.shape[1] == 1
            and value.dim() == 3
            and value.shape[0] == knots.shape[0]
        )

    def searchsorted(self, seq, value):
        if not self._stacked(value):
            return MonotonicRQSTransform.searchsorted(seq, value)
        # (R, D, K + 1) knots against (R, D, B) inputs: count of knots < value
        idx = torch.searchsorted(
            seq[:, 0].contiguous(), value.transpose(-1, -2).contiguous()
        )
        return idx.transpose(-1, -2)

    def bin(self, k):
        if not self._stacked(k):
            return super().bin(k)
        mask = torch.logical_and(0 <= k, k < self.bins)
        k = (k % self.bins).transpose(-1, -2)  # (R, D, B)
        both = torch.cat((k, k + 1), dim=-1)  # left and right knot, (R, D, 2B)
        n = k.shape[-1]

        def ends(knots):
            at = knots[:, 0].gather(-1, both).transpose(-1, -2)  # (R, 2B, D)
            return at[:, :n], at[:, n:]

        x0, x1 = ends(self.horizontal)
        y0, y1 = ends(self.vertical)
        d0, d1 = ends(self.derivatives)
        s = (y1 - y0) / (x1 - x0)
        return mask, x0, x1, y0, y1, d0, d1, s


class InvertibleMLP(nn.Module):
    """The inverted-MLP stack ``x -> Linear -> spline -> ... -> Linear``.

    ``depth`` blocks of a full-rank square linear layer with bias followed by
    an element-wise monotone rational-quadratic spline (zuko's, the identity
    outside ``[-bound, bound]``), then a last linear layer. Every parameter
    has a leading restart axis of length ``n_restarts``, so ``R`` independent
    networks run as one batched model.

    Parameters
    ----------
    n_features : int
        Dimension of the input and of the output (the map is square).
    depth : int, default=4
        Number of spline blocks; there are ``depth + 1`` linear layers.
    bins : int, default=8
        Bins of each spline.
    bound : float, default=5.0
        Each spline acts on ``[-bound, bound]`` and is the identity outside.
    n_restarts : int, default=1
        Number of independent networks held together.

    Notes
    -----
    Linear layers start as random orthogonal matrices (drawn from torch's
    global RNG, so restarts differ) with zero bias, and splines at the
    identity: the initial map is a rotation. Called as a module,
    ``net(x)`` is the output of a single-restart network, shape ``(B, D)``.
    """

    #: the map is a bijection (the contrastive modules read this)
    invertible = True

    def __init__(self, n_features, *, depth=4, bins=8, bound=5.0, n_restarts=1):
        super().__init__()
        R, D = n_restarts, n_features
        self.n_features = n_features
        self.depth = depth
        self.bound = float(bound)
        Q, Rq = torch.linalg.qr(torch.randn(R, depth + 1, D, D))
        Q = Q * torch.sign(torch.diagonal(Rq, dim1=-2, dim2=-1)).unsqueeze(-2)
        # Axis 0: restart; axis 1: layer. A layer maps h -> h @ W.T + b.
        self.weight = nn.Parameter(Q)
        self.bias = nn.Parameter(torch.zeros(R, depth + 1, 1, D))
        # Unconstrained spline parameters; all zeros is the identity map.
        self.widths = nn.Parameter(torch.zeros(R, depth, 1, D, bins))
        self.heights = nn.Parameter(torch.zeros(R, depth, 1, D, bins))
        self.derivatives = nn.Parameter(torch.zeros(R, depth, 1, D, bins - 1))

    @property
    def n_restarts(self):
        return self.weight.shape[0]

    def _splines(self):
        """The ``depth`` splines of the stack, one zuko transform per block.

        zuko builds a spline's knots from its unconstrained parameters
        (softmax, cumulative sums, exponentials) when the transform is made.
        All blocks are made at once, as one transform over the layer axis,
        and each block gets a shallow copy holding its slice of the knots:
        the same values element by element (the fitted models are
        bit-identical) in a quarter of the operations, forward and backward,
        about 9 % of a flow step on the CPU (results/profile_flow.txt). A
        zuko whose transform keeps its knots under other names gets one
        transform per block, as before.
        """
        full = _StackedRQS(
            self.widths, self.heights, self.derivatives, bound=self.bound
        )
        if not all(hasattr(full, name) for name in _KNOTS):
            return [
                MonotonicRQSTransform(
                    self.widths[:, layer],
                    self.heights[:, layer],
                    self.derivatives[:, layer],
                    bound=self.bound,
                )
                for layer in range(self.depth)
            ]
        splines = []
        for layer in range(self.depth):
            spline = copy.copy(full)
            for name in _KNOTS:
                setattr(spline, name, getattr(full, name)[:, layer])
            splines.append(spline)
        return splines

    def _run(self, x, with_ladj):
        h = x.expand(self.n_restarts, *x.shape)
        ladj = x.new_zeros(h.shape[:-1]) if with_ladj else None
        splines = self._splines()
        for layer in range(self.depth + 1):
            h = h @ self.weight[:, layer].transpose(-1, -2) + self.bias[:, layer]
            if layer < self.depth:
                if with_ladj:
                    h, la = splines[layer].call_and_ladj(h)
                    ladj = ladj + la.sum(-1)
                else:
                    h = splines[layer](h)
        if with_ladj:
            log_det = torch.linalg.slogdet(self.weight)[1].sum(1)  # (R,)
            ladj = ladj + log_det[:, None]
        return h, ladj

    def unmix_all(self, x):
        """Outputs and ``log |det d out/dx|`` of every restart: ``(R, B, D)``
        and ``(R, B)``."""
        return self._run(x, with_ladj=True)

    def forward(self, x):
        """Output of a single-restart network, shape ``(B, D)`` (no Jacobian)."""
        self._check_single()
        return self._run(x, with_ladj=False)[0][0]

    def _check_single(self):
        if self.n_restarts != 1:
            raise RuntimeError(
                f"this flow holds {self.n_restarts} restarts: keep one first"
            )

    def inverse(self, s):
        """The input whose output is ``s`` (single restart): spline inverses and
        linear solves, exact."""
        self._check_single()
        h = s
        splines = self._splines()
        for layer in range(self.depth, -1, -1):
            if layer < self.depth:
                h = splines[layer].inv(h[None])[0]
            h = torch.linalg.solve(
                self.weight[0, layer], (h - self.bias[0, layer]).transpose(-1, -2)
            ).transpose(-1, -2)
        return h

    def keep(self, restart):
        """Keep one restart (in place)."""
        for name in _PARAMETERS:
            param = getattr(self, name)
            setattr(self, name, nn.Parameter(param.data[restart : restart + 1].clone()))
        return self


_PARAMETERS = ("weight", "bias", "widths", "heights", "derivatives")
#: the knots zuko's MonotonicRQSTransform computes at construction (zuko 1.1
#: to 1.6), each with the layer axis second
_KNOTS = ("horizontal", "vertical", "derivatives")


def _delegate(name):
    return property(
        lambda self: getattr(self.net, name),
        doc=f"The flow's ``{name}`` parameter (of :class:`InvertibleMLP`).",
    )


class FlowModule(LatentModel):
    """Inverted-MLP normalizing flow with a conditionally factorial prior.

    Parameters
    ----------
    n_features : int
        Dimension of ``x`` (and of the sources: the flow is square).
    priors : ConditionalPrior or sequence of ConditionalPrior
        The prior p(s | u) (see :mod:`skivae._core.priors`). A sequence of
        ``R`` priors trains ``R`` independent restarts at once: every
        parameter of the flow gets a leading restart axis, and the objectives
        average over restarts (each restart's gradient is its own).
        :meth:`restart_log_prob` scores each restart, and :meth:`keep` keeps
        one.
    depth : int, default=4
        Number of spline blocks; the flow has ``depth + 1`` linear layers.
        ``depth`` blocks invert a mixing MLP of ``depth + 1`` layers; more
        blocks than needed also ease the optimisation.
    bins : int, default=8
        Bins of each spline.
    bound : float, default=5.0
        Each spline acts on ``[-bound, bound]`` and is the identity outside.

    Notes
    -----
    The map ``g`` is :attr:`net`, an :class:`InvertibleMLP` holding the
    ``R`` restarts; ``weight``, ``bias``, ``widths``, ``heights`` and
    ``derivatives`` are its parameters. Linear layers start as random
    orthogonal matrices (drawn from torch's global RNG, so restarts differ)
    with zero bias, and splines at the identity: the initial flow is a
    rotation of the standardised data.
    """

    log_density = True
    #: rows per batch of ``transform`` (None: by cells, see ``apply_batched``)
    transform_batch_size = None
    #: torch.compile of the loss: 2-3x faster steps on CPU (many small
    #: spline operations fused), where the iVAE's was slower
    compile_pays = True

    weight = _delegate("weight")
    bias = _delegate("bias")
    widths = _delegate("widths")
    heights = _delegate("heights")
    derivatives = _delegate("derivatives")

    def __init__(self, n_features, priors, *, depth=4, bins=8, bound=5.0):
        super().__init__()
        if isinstance(priors, nn.Module):
            priors = [priors]
        self.n_features = n_features
        self.n_components = n_features
        self.depth = depth
        self.bound = float(bound)
        self.priors = nn.ModuleList(priors)
        self.net = InvertibleMLP(
            n_features, depth=depth, bins=bins, bound=bound, n_restarts=len(priors)
        )

    @property
    def n_restarts(self):
        return self.net.n_restarts

    def unmix_all(self, x):
        """``s = g(x)`` and ``log |det dg/dx|`` of every restart: ``(R, B, D)``
        and ``(R, B)``."""
        return self.net.unmix_all(x)

    def unmix(self, x):
        """``s = g(x)`` and ``log |det dg/dx|`` of a single-restart flow."""
        self._check_single()
        s, ladj = self.unmix_all(x)
        return s[0], ladj[0]

    def _check_single(self):
        self.net._check_single()

    def restart_log_prob(self, x, u):
        """Exact log-likelihood of every restart, shape ``(R, B)``.

        ``log p(x | u)``; with ``u=None``, ``log p(x)`` under the training
        distribution of ``u`` (the model's auxiliary support), or under the
        fixed prior of a model without ``u``.
        """
        S, ladj = self.unmix_all(x)
        out = []
        for s, prior in zip(S, self.priors):
            if u is None and prior.aux is not None:
                loc, log_s2 = prior.params(self.aux_support, None)  # (C, n)
                lp = prior.log_prob(s[..., None, :], loc, log_s2)  # (B, C)
                out.append(torch.logsumexp(lp + self.aux_log_weights, dim=-1))
            else:
                loc, log_s2 = prior.params(u, s)
                out.append(prior.log_prob(s, loc, log_s2))
        return torch.stack(out) + ladj

    #: the restarts' held-out objective (the model interface's name)
    restart_score_samples = restart_log_prob

    def keep(self, restart):
        """Keep one restart (in place): the flow becomes a single model."""
        self.net.keep(restart)
        self.priors = nn.ModuleList([self.priors[restart]])
        return self

    @property
    def prior(self):
        self._check_single()
        return self.priors[0]

    def loss(self, x, u):
        return -self.restart_log_prob(x, u).mean(0)

    def restart_loss(self, x, u):
        """Each restart's loss, shape ``(R, B)``; its mean over restarts is
        :meth:`loss` (the same floats: negation is exact)."""
        return -self.restart_log_prob(x, u)

    def score_samples(self, x, u):
        return self.restart_log_prob(x, u).mean(0)

    def features(self, x):
        """``s = g(x)`` of a single-restart flow, without the Jacobian."""
        return self.net(x)

    def inverse(self, s):
        """``x = g^-1(s)``: spline inverses and linear solves, exact."""
        return self.net.inverse(s)

    def sample(self, u, n_samples):
        """Draw ``(x, s)``: ``s ~ p(s | u)``, then ``x = g^-1(s)``."""
        like = self.weight.new_zeros(n_samples, self.n_features)
        loc, log_s2 = self.prior.params(u, like)
        s = self.prior.sample(loc.expand_as(like), log_s2.expand_as(like))
        return self.inverse(s), s
