"""Contrastive estimators of nonlinear ICA: TCL and GCL.

Both learn a feature extractor ``h(x)`` without a decoder, by logistic
regression on the auxiliary variable ``u``:

- :class:`TCLModule`, time-contrastive learning (Hyvärinen & Morioka, 2016):
  a multinomial logistic regression predicts the segment label ``u`` from
  the absolute features ``|h(x)|``. Linear ICA applied to ``|h(x)|`` then
  estimates the sources (their sufficient statistics, e.g. ``|s|``).
- :class:`GCLModule`, generalized contrastive learning (Hyvärinen, Sasaki &
  Turner, 2019): a binary logistic regression tells true pairs ``(x, u)``
  from pairs whose ``u`` was shuffled within the mini-batch. The features
  estimate the sources directly (up to component-wise transformations).

Both are :class:`~skivae._core.base.LatentModel` subclasses: ``loss`` is the
per-sample training loss minimised by :func:`skivae._core.training.train`
and ``score_samples`` its deterministic held-out counterpart.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from skivae._core.base import LatentModel
from skivae._core.nets import ACTIVATIONS, make_mlp

AUX_KINDS = ("categorical", "continuous")


def _feature_net(net, n_features, n_components, hidden_layer_sizes, activation):
    """``net``, or a new feature MLP when it is None."""
    if net is None:
        return make_mlp(n_features, hidden_layer_sizes, n_components, activation)
    return net


class TCLModule(LatentModel):
    """Time-contrastive learning: classify the segment of each observation.

    The network is an MLP ``h(x)`` with ``n_components`` linear outputs,
    followed by the fixed nonlinearity ``|.|`` (as in the TCL paper) and a
    multinomial logistic regression layer ``Linear(n_components, n_classes)``
    that predicts the segment label. By the TCL theory, at the optimum
    ``|h(x)|`` is an invertible linear function of the sufficient statistics
    ``q(s_i)`` of the sources (``|s_i|`` for Laplace sources, ``s_i**2`` for
    Gaussian ones), so linear ICA applied to ``|h(x)|`` estimates them.

    Parameters
    ----------
    n_features : int
        Dimension of ``x``.
    n_components : int
        Number of features (estimated sources).
    n_classes : int
        Number of segments; ``u`` holds codes ``0 .. n_classes - 1``.
    hidden_layer_sizes : tuple of int, default=(64, 64)
        Hidden widths of the feature MLP.
    activation : str, default="leaky_relu"
        Hidden activation, a key of :data:`skivae._core.nets.ACTIVATIONS`.
    feature_net : nn.Module or None, default=None
        The feature network ``h``; ``None`` builds an MLP from
        ``hidden_layer_sizes`` and ``activation``. A network with a true
        ``invertible`` attribute (:class:`~skivae._core.flow.InvertibleMLP`)
        cannot fold the signs of the sources.
    zero_classifier : bool, default=False
        Start the classifier's weights at zero instead of uniformly at
        random: its first gradients then leave the features alone, which
        keeps a feature network that starts from a good solution (a fitted
        flow) from being pushed along random directions while the classifier
        is still random.

    Notes
    -----
    :meth:`features` returns ``|h(x)|``, the input of the classifier and
    the feature vector of the TCL paper (the one the official TCL code
    applies FastICA to, comparing the result with ``|s|``); ``h(x)`` itself
    is ``feature_net(x)``. The loss only constrains ``|h(x)|``, so the sign
    of each ``h_i`` is not identified: with zero-mean, scale-modulated
    sources ``h_i`` is often a folded (``|s|``-like) map of the source.
    Apply linear ICA to :meth:`features` to estimate the sources as TCL
    does. With an invertible ``feature_net`` the classifier still sees
    ``|h(x)|``, but :meth:`features` returns ``h(x)``: an invertible map
    cannot fold, so ``h`` keeps the signs of the sources.
    """

    def __init__(
        self,
        n_features,
        n_components,
        n_classes,
        *,
        hidden_layer_sizes=(64, 64),
        activation="leaky_relu",
        feature_net=None,
        zero_classifier=False,
    ):
        super().__init__()
        self.n_features = n_features
        self.n_components = n_components
        self.n_classes = n_classes
        self.feature_net = _feature_net(
            feature_net, n_features, n_components, hidden_layer_sizes, activation
        )
        self.classifier = nn.Linear(n_components, n_classes)
        if zero_classifier:
            nn.init.zeros_(self.classifier.weight)
        else:
            bound = 1.0 / math.sqrt(n_components)
            nn.init.uniform_(self.classifier.weight, -bound, bound)
        nn.init.zeros_(self.classifier.bias)

    @property
    def invertible(self):
        """Whether the feature network is a bijection (no sign folding)."""
        return bool(getattr(self.feature_net, "invertible", False))

    def features(self, x):
        """``|h(x)|``, or ``h(x)`` for an invertible feature network: ``(B, n)``."""
        h = self.feature_net(x)
        return h if self.invertible else h.abs()

    def logits(self, x):
        """Unnormalised segment log-probabilities, shape ``(B, n_classes)``."""
        return self.classifier(self.feature_net(x).abs())

    def loss(self, x, u):
        """Per-sample cross-entropy of the segment labels ``u``, shape ``(B,)``.

        Parameters
        ----------
        x : Tensor of shape (B, n_features)
        u : LongTensor of shape (B,)
            Segment codes in ``0 .. n_classes - 1``.
        """
        return F.cross_entropy(self.logits(x), u, reduction="none")

    def score_samples(self, x, u):
        """Log-probability of the true segment of each sample, shape ``(B,)``."""
        if u is None:
            raise ValueError(
                "score needs u: the TCL objective classifies the segment u."
            )
        return -self.loss(x, u)


class _ComponentwiseMLP(nn.Module):
    """One scalar-to-scalar MLP per component, evaluated in a single batched op.

    ``forward(h)`` maps ``(B, n)`` to ``(B, n)`` with
    ``out[:, i] = sum_k w2[i, k] * act(w1[i, k] * h[:, i] + b1[i, k])``.
    The output weights start at zero, so the term starts switched off.
    """

    def __init__(self, n_components, n_hidden, activation):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_components, n_hidden).uniform_(-1.0, 1.0))
        self.b1 = nn.Parameter(torch.empty(n_components, n_hidden).uniform_(-1.0, 1.0))
        self.w2 = nn.Parameter(torch.zeros(n_components, n_hidden))
        self.act = ACTIVATIONS[activation]()

    def forward(self, h):
        hidden = self.act(h.unsqueeze(-1) * self.w1 + self.b1)  # (B, n, H)
        return (hidden * self.w2).sum(-1)


class GCLModule(LatentModel):
    """Generalized contrastive learning: tell true ``(x, u)`` pairs from shuffled ones.

    A binary logistic regression with logit ``r(x, u)`` separates the true
    pairs ``(x_j, u_j)`` from pairs ``(x_j, u_perm(j))`` whose ``u`` was
    permuted within the mini-batch. The regression function is

    ``r(x, u) = sum_i psi_i(h_i(x), u) + r0(x)``,
    ``psi_i(h_i, u) = a_i(u) h_i**2 + b_i(u) h_i + c_i(u) + m_i(h_i)``,

    with a feature MLP ``h`` (the estimated sources) and:

    - a quadratic form in ``h_i``: the log-density of a Gaussian whose
      variance (through ``a``) and mean (through ``b``) depend on ``u`` --
      the exponential family of iVAE's ``"gaussian"`` prior -- with ``c``
      absorbing its log-normaliser. ``(a, b, c)(u)`` come from a lookup
      table for categorical ``u`` (all zeros at the start) or from an MLP of
      ``u`` for continuous ``u``;
    - ``m_i``, a small MLP of ``h_i`` alone (no ``u``), for non-Gaussian
      marginals;
    - ``r0``, a small MLP of ``x`` alone. The optimal logit is
      ``log p(x | u) - log p(x) = log p(s | u) - log p(s)``, and
      ``-log p(s)`` (the log-density of a mixture over ``u``) does not
      factorise over the sources; without ``r0`` the features bend to fit
      it. Terms free of ``u`` do not affect identifiability, which rests on
      how ``r`` changes with ``u``.

    Both x-only terms start at zero, so with categorical ``u`` the module
    starts at ``r = 0`` (chance, a loss of ``2 log 2``).

    Parameters
    ----------
    n_features : int
        Dimension of ``x``.
    n_components : int
        Number of features (estimated sources).
    aux : {"categorical", "continuous"}
        How ``u`` is given: a LongTensor of codes ``0 .. n_classes - 1`` or a
        float tensor of shape ``(B, n_aux)``.
    n_classes : int, optional
        Number of categories (required with ``aux="categorical"``).
    n_aux : int, optional
        Number of continuous covariates (required with ``aux="continuous"``).
    hidden_layer_sizes : tuple of int, default=(64, 64)
        Hidden widths of the feature MLP.
    activation : str, default="leaky_relu"
        Hidden activation of every MLP, a key of
        :data:`skivae._core.nets.ACTIVATIONS`.
    aux_hidden : tuple of int, default=(32,)
        Hidden widths of the MLP giving ``(a, b, c)`` from continuous ``u``.
    marginal_hidden : int, default=16
        Hidden width of each per-component MLP ``m_i``; 0 leaves ``m`` out.
    baseline_hidden : tuple of int or None, default=(16, 16)
        Hidden widths of the x-only MLP ``r0``; ``None`` leaves it out.
    aux_support, aux_log_weights : Tensor or None
        Training values of ``u`` and their log-weights (the distribution of
        the negatives), needed by :meth:`score_samples`.
    feature_net : nn.Module or None, default=None
        The feature network ``h``; ``None`` builds an MLP from
        ``hidden_layer_sizes`` and ``activation``. A network with a true
        ``invertible`` attribute (:class:`~skivae._core.flow.InvertibleMLP`)
        cannot fold the signs of the sources.

    Notes
    -----
    :meth:`features` returns ``h(x)``, which estimates the sources up to a
    permutation and component-wise invertible maps. When ``u`` modulates
    only the scale of zero-mean sources, ``p(s | u)`` is symmetric in each
    ``s_i`` and the loss cannot tell ``h_i`` from a folded (``|s_i|``-like)
    map: only ``|s_i|`` is identified, and ``h_i`` often correlates with
    ``|s_i|`` rather than ``s_i``. A ``u``-dependent mean identifies the
    sign too.

    The loss draws negatives with :func:`torch.randperm` on ``u``'s device,
    i.e. from torch's global generator: seed it (``torch.manual_seed``) for
    reproducible training. :meth:`score_samples` replaces the shuffle by its
    expectation: every row is contrasted with every training value of ``u``,
    weighted by its frequency, which is deterministic and makes each row's
    score independent of the other rows.
    """

    def __init__(
        self,
        n_features,
        n_components,
        aux,
        *,
        n_classes=None,
        n_aux=None,
        hidden_layer_sizes=(64, 64),
        activation="leaky_relu",
        aux_hidden=(32,),
        marginal_hidden=16,
        baseline_hidden=(16, 16),
        aux_support=None,
        aux_log_weights=None,
        feature_net=None,
    ):
        super().__init__()
        if aux not in AUX_KINDS:
            raise ValueError(f"aux must be one of {AUX_KINDS}, got {aux!r}")
        if aux == "categorical" and n_classes is None:
            raise ValueError("n_classes is required with aux='categorical'")
        if aux == "continuous" and n_aux is None:
            raise ValueError("n_aux is required with aux='continuous'")
        self.n_features = n_features
        self.n_components = n_components
        self.aux = aux
        self.feature_net = _feature_net(
            feature_net, n_features, n_components, hidden_layer_sizes, activation
        )
        n_coef = 3 * n_components
        if aux == "categorical":
            self.table = nn.Parameter(torch.zeros(n_classes, n_coef))
        else:
            self.aux_net = make_mlp(n_aux, aux_hidden, n_coef, activation)
        self.marginal = (
            _ComponentwiseMLP(n_components, int(marginal_hidden), activation)
            if marginal_hidden
            else None
        )
        if baseline_hidden is None:
            self.baseline = None
        else:
            self.baseline = make_mlp(n_features, baseline_hidden, 1, activation)
            nn.init.zeros_(self.baseline[-1].weight)
        self._register_aux_support(aux_support, aux_log_weights)

    def features(self, x):
        """Feature vector ``h(x)``, shape ``(B, n_components)``."""
        return self.feature_net(x)

    def coefficients(self, u):
        """``(a, b, c)(u)``, each of shape ``(B, n_components)``."""
        raw = self.table[u] if self.aux == "categorical" else self.aux_net(u)
        return raw.chunk(3, dim=-1)

    def _x_terms(self, x):
        """``h(x)`` and the u-free part of ``r``: ``sum_i m_i(h_i) + r0(x)``."""
        h = self.features(x)
        free = h.new_zeros(h.shape[0])
        if self.marginal is not None:
            free = free + self.marginal(h).sum(-1)
        if self.baseline is not None:
            free = free + self.baseline(x).squeeze(-1)
        return h, free

    def _regression(self, h, free, u):
        a, b, c = self.coefficients(u)
        return ((a * h + b) * h + c).sum(-1) + free

    def regression(self, x, u):
        """Regression function ``r(x, u)``, shape ``(B,)``: the logit of a true pair."""
        h, free = self._x_terms(x)
        return self._regression(h, free, u)

    def _logistic_loss(self, x, u, u_neg, log_weights=None):
        """``softplus(-r(x, u)) + E[softplus(r(x, u'))]`` over the negatives u'.

        ``u_neg`` holds one negative per row (like ``u``), or, with
        ``log_weights``, C negatives shared by every row whose expectation is
        taken with weights ``exp(log_weights)``.
        """
        h, free = self._x_terms(x)
        r_pos = self._regression(h, free, u)
        if log_weights is None:
            negative = F.softplus(self._regression(h, free, u_neg))
        else:  # (B, 1, n) against (C, n): one logit per row and negative
            r_neg = self._regression(h[:, None], free[:, None], u_neg)
            negative = (F.softplus(r_neg) * log_weights.exp()).sum(-1)
        return F.softplus(-r_pos) + negative

    def loss(self, x, u):
        """Per-sample logistic loss, shape ``(B,)``.

        ``softplus(-r(x_j, u_j)) + softplus(r(x_j, u_perm(j)))``, where
        ``perm`` is a random permutation of the mini-batch.

        Parameters
        ----------
        x : Tensor of shape (B, n_features)
        u : LongTensor of shape (B,) or Tensor of shape (B, n_aux)
        """
        perm = torch.randperm(u.shape[0], device=u.device)
        return self._logistic_loss(x, u, u[perm])

    def score_samples(self, x, u):
        """Minus the expected logistic loss over the training values of u.

        The negatives of each row are all of ``aux_support``, weighted by
        ``aux_log_weights``: the expectation of :meth:`loss` over shuffles.
        """
        if u is None:
            raise ValueError(
                "score needs u: the GCL objective tells true (x, u) pairs from "
                "shuffled ones."
            )
        return -self._logistic_loss(x, u, self.aux_support, self.aux_log_weights)
