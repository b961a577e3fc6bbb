"""The importance-weighted bound of IVAEModule (n_importance > 1)."""

import math

import pytest
import torch
from torch.testing import assert_close

from skivae._core.elbo import IVAEModule
from skivae._core.priors import ConditionalPrior

D, N = 3, 2


def _module(aux="categorical", full=True, likelihood="gaussian", n_classes=3, **kw):
    prior = ConditionalPrior(N, "gaussian", aux, n_classes=n_classes, n_aux=2)
    support = log_w = None
    if aux == "categorical":
        support = torch.arange(n_classes)
        log_w = torch.log_softmax(torch.randn(n_classes), 0)
    elif aux == "continuous":
        support, log_w = torch.randn(5, 2), torch.full((5,), -math.log(5))
    m = IVAEModule(
        D,
        N,
        prior,
        hidden_layer_sizes=(8,),
        full_cov=full,
        likelihood=likelihood,
        aux_support=support,
        aux_log_weights=log_w,
        **kw,
    )
    with torch.no_grad():  # away from the all-zero starts (prior table, ...)
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.double()


def _u(aux, n):
    if aux == "categorical":
        return torch.arange(n) % 3
    if aux == "continuous":
        return torch.randn(n, 2, dtype=torch.float64)
    return None


CASES = [
    (aux, full, lik, given)
    for aux in ("categorical", "continuous", None)
    for full in (True, False)
    for lik in ("gaussian", "bernoulli")
    for given in ((True, False) if aux else (True,))
]


@pytest.mark.parametrize("aux, full, likelihood, u_given", CASES)
def test_bound_is_above_the_mean_of_the_same_log_weights(
    aux, full, likelihood, u_given
):
    # Jensen, for every row: log mean exp(w_k) >= mean w_k with the same draws.
    torch.manual_seed(0)
    m = _module(aux, full, likelihood)
    x = torch.randn(40, D, dtype=torch.float64)
    if likelihood == "bernoulli":
        x = (x > 0).double()
    u = _u(aux, 40) if u_given else None
    eps = torch.randn(6, N, dtype=torch.float64)
    lw = m.log_importance_weights(x, u, eps)
    assert lw.shape == (6, 40)
    bound = m.importance_bound(x, u, eps)
    assert bound.shape == (40,) and torch.isfinite(bound).all()
    assert torch.all(bound >= lw.mean(0) - 1e-12)
    assert torch.all(bound > lw.mean(0) + 1e-6)  # strict: the weights vary
    # K = 1: the bound is the single-draw ELBO estimate.
    assert_close(m.importance_bound(x, u, eps[:1]), lw[0])


def test_mean_log_weight_is_the_monte_carlo_elbo():
    # mean_k w_k estimates the ELBO; the closed-form-KL ELBO agrees with it.
    torch.manual_seed(0)
    m = _module("categorical", full=True)
    x, u = torch.randn(5, D, dtype=torch.float64), _u("categorical", 5)
    eps = torch.randn(100_000, N, dtype=torch.float64)
    mc = m.log_importance_weights(x, u, eps).mean(0)
    assert_close(mc, m.elbo(x, u, eps=eps), atol=0.02, rtol=2e-4)
    # without u: the marginal ELBO is the same estimate
    assert_close(
        m.log_importance_weights(x, None, eps[:64]).mean(0),
        m.marginal_elbo(x, eps=eps[:64]),
    )


def _linear_gaussian(full, n_classes=None):
    """A linear-Gaussian model and an encoder set to its exact posterior (or
    the diagonal part of it), with the exact log p(x|u) in closed form."""
    torch.manual_seed(1)
    aux = None if n_classes is None else "categorical"
    prior = ConditionalPrior(N, "gaussian", aux, n_classes=n_classes)
    support = log_w = None
    if aux:
        support, log_w = torch.arange(n_classes), torch.zeros(n_classes)
    m = IVAEModule(
        D,
        N,
        prior,
        hidden_layer_sizes=(),  # linear encoder and decoder
        decoder_var=0.3,
        full_cov=True,
        aux_support=support,
        aux_log_weights=log_w,
    ).double()
    W, b = m.decoder[0].weight, m.decoder[0].bias
    enc = m.encoder.net[0]
    with torch.no_grad():
        W.copy_(torch.tensor([[1.0, 0.8], [0.5, 1.0], [-0.7, 0.6]]))
        b.copy_(torch.tensor([0.2, -0.1, 0.3]))
        mu, log_s2 = torch.zeros(N, dtype=torch.float64), torch.zeros(N)
        if aux:
            prior.table.copy_(torch.tensor([[0.5, -1.0, 0.4, -0.6]]))
            mu, log_s2 = prior.params(torch.tensor([0]), None)
            mu, log_s2 = mu[0], log_s2[0]
        S_inv = torch.diag(torch.exp(-log_s2)).double()
        post = torch.linalg.inv(S_inv + W.T @ W / 0.3)
        A = post @ W.T / 0.3
        L = torch.linalg.cholesky(post)
        if not full:
            L = torch.diag(torch.diagonal(post).sqrt())
        enc.weight.zero_()
        enc.bias.zero_()
        enc.weight[:N] = A
        enc.bias[:N] = post @ (S_inv @ mu) - A @ b
        enc.bias[N : 2 * N] = 8 * torch.atanh(2 * torch.log(torch.diagonal(L)) / 8)
        enc.bias[2 * N :] = L[1, 0]
        cov = W @ torch.diag(torch.exp(log_s2)).double() @ W.T + 0.3 * torch.eye(D)
        exact = torch.distributions.MultivariateNormal(W @ mu + b, cov)
    return m, exact


@pytest.mark.parametrize("n_classes", [None, 1])
@pytest.mark.parametrize("K", [1, 7])
def test_bound_is_exact_with_the_exact_posterior(n_classes, K):
    # q(z|x) = p(z|x, u): every importance weight equals p(x|u).
    m, exact = _linear_gaussian(full=True, n_classes=n_classes)
    x = torch.randn(50, D, dtype=torch.float64) * 2
    u = None if n_classes is None else torch.zeros(50, dtype=torch.long)
    eps = torch.randn(K, N, dtype=torch.float64)
    with torch.no_grad():
        truth = exact.log_prob(x)
        assert_close(m.importance_bound(x, u, eps), truth)
        if n_classes:  # the marginal prior of one category is the conditional
            assert_close(m.importance_bound(x, None, eps), truth)
        m.set_n_importance(K, 0)
        if K > 1:
            assert_close(m.score_samples(x, u), truth)


def test_bound_tightens_with_K_towards_the_log_likelihood():
    # A diagonal q of a correlated posterior: the ELBO has a gap that the
    # importance-weighted bound closes as K grows. Averaged over rows and over
    # many independent sets of K draws (the bound grows with K in expectation).
    m, exact = _linear_gaussian(full=False)
    gen = torch.Generator().manual_seed(0)
    x = exact.sample((100,))
    with torch.no_grad():
        truth = exact.log_prob(x).mean()
        eps = torch.randn(4096, N, generator=gen, dtype=torch.float64)
        elbo = m.elbo(x, None, eps=eps).mean()
        # 16384 draws in sets of K: log-mean-exp within each set
        lw = m.log_importance_weights(
            x, None, torch.randn(16384, N, generator=gen, dtype=torch.float64)
        )
        means = [
            (torch.logsumexp(lw.reshape(-1, k, lw.shape[1]), 1) - math.log(k)).mean()
            for k in (1, 4, 64)
        ]
        # the same as importance_bound on one set
        assert_close(
            m.importance_bound(x, None, eps[:4]),
            torch.logsumexp(m.log_importance_weights(x, None, eps[:4]), 0)
            - math.log(4),
        )
    assert truth - elbo > 0.05  # the gap is real
    assert_close(means[0], elbo, atol=0.02, rtol=0)  # K = 1: the ELBO
    assert means[0] + 0.05 < means[1] < means[2] < truth + 0.01
    assert truth - means[2] < 0.2 * (truth - elbo)


def test_score_samples_follows_n_importance():
    torch.manual_seed(0)
    m = _module("categorical")
    x, u = torch.randn(9, D, dtype=torch.float64), _u("categorical", 9)
    assert m.n_importance == 1 and m.iwae_eps.shape == (1, N)
    assert torch.equal(m.score_samples(x, u), m.elbo(x, u, eps=m.score_eps))
    m.set_n_importance(12, 5)
    assert m.iwae_eps.shape == (12, N) and m.iwae_eps.dtype == torch.float64
    gen = torch.Generator().manual_seed(6)
    assert torch.equal(m.iwae_eps, torch.randn(12, N, generator=gen).double())
    assert torch.equal(m.score_samples(x, u), m.importance_bound(x, u, m.iwae_eps))
    assert torch.equal(
        m.score_samples(x, None), m.importance_bound(x, None, m.iwae_eps)
    )
    assert "iwae_eps" in m.state_dict()
    with pytest.raises(ValueError, match="n_importance"):
        m.set_n_importance(0, 0)


def test_bound_is_batch_invariant_and_chunked_draws_agree():
    torch.manual_seed(0)
    m = _module("continuous", n_importance=40)
    x, u = torch.randn(30, D, dtype=torch.float64), _u("continuous", 30)
    for uu in (u, None):
        full = m.score_samples(x, uu)
        parts = torch.cat(
            [
                m.score_samples(x[i : i + 7], None if uu is None else uu[i : i + 7])
                for i in range(0, 30, 7)
            ]
        )
        assert_close(parts, full)
    # the draws are processed in chunks to bound memory: same result
    m._draw_chunk = lambda n_rows, u: 3
    assert_close(m.score_samples(x, None), full)


def test_weights_without_importance_draws_still_load():
    # state dicts written before n_importance existed have no iwae_eps
    m = _module("categorical", n_importance=4)
    old = {k: v for k, v in m.state_dict().items() if k != "iwae_eps"}
    other = _module("categorical", n_importance=4, score_seed=9)
    draws = other.iwae_eps.clone()
    other.load_state_dict(old)  # strict
    assert torch.equal(other.iwae_eps, draws)
    assert torch.equal(other.score_eps, m.score_eps)


def test_training_loss_is_the_weighted_bound_with_n_importance_train_draws():
    # The training loss with K draws is minus the importance-weighted bound:
    # on average it rises with K from the ELBO towards log p(x) (diagonal q
    # of a correlated posterior, so the ELBO has a gap). A loss that ignored
    # K, or averaged the log-weights instead of log-mean-exp, fails.
    m, exact = _linear_gaussian(full=False)
    torch.manual_seed(0)
    x = exact.sample((100,))
    with torch.no_grad():
        truth = exact.log_prob(x).mean()
        elbo = m.elbo(x, None, eps=torch.randn(4096, N, dtype=torch.float64)).mean()
        means = []
        for k in (1, 4, 64):
            m.n_importance_train = k
            means.append(-torch.stack([m.loss(x, None) for _ in range(200)]).mean())
    assert_close(means[0], elbo, atol=0.02, rtol=0)  # K = 1: the ELBO
    assert means[0] + 0.05 < means[1] < means[2] < truth + 0.01
    assert truth - means[2] < 0.2 * (truth - elbo)


@pytest.mark.parametrize("full", [True, False])
def test_training_draws_are_fresh_for_every_row(full):
    # Identical rows get their own draws (a set shared by the batch would
    # give them the same loss), and the loss is differentiable through them.
    torch.manual_seed(0)
    m = _module("categorical", full=full, n_importance_train=5)
    x = torch.randn(1, D, dtype=torch.float64).expand(30, D)
    u = torch.zeros(30, dtype=torch.long)
    loss = m.loss(x, u)
    assert loss.shape == (30,) and torch.isfinite(loss).all()
    assert loss.std() > 1e-3
    loss.mean().backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_n_importance_train_must_be_positive():
    with pytest.raises(ValueError, match="n_importance_train"):
        _module("categorical", n_importance_train=0)
