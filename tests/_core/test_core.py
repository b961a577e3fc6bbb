"""Unit tests of the PyTorch core: priors, networks, the iVAE module, torch utils."""

import math

import pytest
import torch
from torch.testing import assert_close

from skivae._core._torch_utils import resolve_device, to_numpy, to_tensor, torch_seed
from skivae._core.elbo import IVAEModule
from skivae._core.nets import GaussianHead, gaussian_sample, make_mlp, marginal_variance
from skivae._core.priors import ConditionalPrior


def _mc_kl(prior, mean, logvar, lower, loc, log_s2, n=200_000):
    """Monte-Carlo KL(q || p) for one row, to check the closed forms."""
    eps = torch.randn(n, mean.shape[-1], dtype=torch.float64)
    L = torch.diag(torch.exp(0.5 * logvar)) + (lower if lower is not None else 0)
    z = mean + eps @ L.T
    log_q = -0.5 * (
        mean.shape[-1] * math.log(2 * math.pi) + logvar.sum() + (eps**2).sum(-1)
    )
    log_p = prior.log_prob(z, loc, log_s2)
    return (log_q - log_p).mean()


@pytest.mark.parametrize("kind", ["gaussian", "gaussian_var", "laplace"])
@pytest.mark.parametrize("full", [False, True])
def test_closed_form_kl_matches_monte_carlo(kind, full):
    torch.manual_seed(0)
    n = 3
    prior = ConditionalPrior(n, kind, "categorical", n_classes=4).double()
    with torch.no_grad():
        prior.table.normal_(0, 0.7)
    u = torch.tensor([2])
    mean = torch.tensor([[0.3, -0.5, 1.2]], dtype=torch.float64)
    logvar = torch.tensor([[-0.4, 0.2, -1.0]], dtype=torch.float64)
    lower = None
    if full:
        lower = torch.tril(torch.randn(n, n, dtype=torch.float64) * 0.4, diagonal=-1)
    loc, log_s2 = prior.params(u, mean)
    kl = prior.kl_from_gaussian(
        mean, logvar, loc, log_s2, marginal_variance(logvar, lower)
    )
    mc = _mc_kl(prior, mean[0], logvar[0], lower, loc[0], log_s2[0])
    assert kl.shape == (1,)
    assert float(kl[0].detach()) == pytest.approx(float(mc.detach()), abs=0.02)


def test_full_covariance_sampling_has_the_stated_covariance():
    torch.manual_seed(0)
    mean = torch.zeros(200_000, 2)
    logvar = torch.log(torch.tensor([[1.0, 0.25]])).expand(200_000, 2)
    lower = torch.zeros(200_000, 2, 2)
    lower[:, 1, 0] = 0.8
    z = gaussian_sample(mean, logvar, lower)
    cov = torch.cov(z.T)
    L = torch.tensor([[1.0, 0.0], [0.8, 0.5]])
    assert_close(cov, L @ L.T, atol=0.02, rtol=0.02)
    assert_close(marginal_variance(logvar[:1], lower[:1])[0], torch.tensor([1.0, 0.89]))


def test_gaussian_head_shapes():
    head = GaussianHead(4, (8,), 3, "leaky_relu", full_cov=True)
    mean, logvar, lower = head(torch.randn(5, 4))
    assert mean.shape == logvar.shape == (5, 3)
    assert lower.shape == (5, 3, 3)
    assert torch.all(torch.triu(lower) == 0)  # strictly lower
    _, _, none = GaussianHead(4, (8,), 3, "tanh", full_cov=False)(torch.randn(5, 4))
    assert none is None


def test_make_mlp_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        make_mlp(2, (4,), 2, "nope")


def test_unconditional_prior_is_standard_normal():
    prior = ConditionalPrior(2, "gaussian", None)
    z = torch.tensor([[0.0, 1.0]])
    loc, log_s2 = prior.params(None, z)
    expected = -math.log(2 * math.pi) - 0.5
    assert float(prior.log_prob(z, loc, log_s2)) == pytest.approx(expected)


def test_continuous_prior_depends_on_u():
    torch.manual_seed(0)
    prior = ConditionalPrior(2, "gaussian_var", "continuous", n_aux=1)
    z = torch.zeros(2, 2)
    loc, a = prior.params(torch.tensor([[0.0], [3.0]]), z)
    assert torch.all(loc == 0)
    assert not torch.allclose(a[0], a[1])


def _module(aux="categorical", full=True, likelihood="gaussian"):
    prior = ConditionalPrior(2, "gaussian", aux, n_classes=3)
    return IVAEModule(
        3, 2, prior, hidden_layer_sizes=(8,), full_cov=full, likelihood=likelihood
    )


def test_elbo_is_per_sample_and_shared_eps_makes_rows_independent():
    torch.manual_seed(0)
    m = _module()
    x, u = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert m.elbo(x, u).shape == (6,)
    eps = torch.randn(4, 2)
    full = m.elbo(x, u, eps=eps)
    part = m.elbo(x[2:4], u[2:4], eps=eps)
    assert_close(full[2:4], part)


def test_marginal_elbo_equals_conditional_with_a_single_category():
    torch.manual_seed(0)
    prior = ConditionalPrior(2, "gaussian", "categorical", n_classes=1)
    m = IVAEModule(3, 2, prior, hidden_layer_sizes=(8,))
    with torch.no_grad():
        prior.table.normal_()
    x = torch.randn(5, 3)
    eps = torch.randn(200_000 // 5, 2)
    # A one-component mixture is the conditional prior: both bounds agree in
    # expectation (closed-form KL vs its Monte-Carlo estimate).
    cond = m.elbo(x, torch.zeros(5, dtype=torch.long), eps=eps)
    m._register_aux_support(torch.tensor([0]), torch.zeros(1))
    marg = m.marginal_elbo(x, eps=eps)
    assert_close(cond, marg, atol=0.05, rtol=0.01)


def test_learned_decoder_variance_has_a_floor():
    prior = ConditionalPrior(2, "gaussian", None)
    m = IVAEModule(3, 2, prior, decoder_var=None, min_decoder_var=1e-3)
    with torch.no_grad():
        m.raw_log_var.fill_(-50.0)
    assert torch.all(m.decoder_log_var() >= math.log(1e-3) - 1e-6)


def test_bernoulli_decoder_outputs_probabilities():
    m = _module(likelihood="bernoulli")
    p = m.decode(torch.randn(4, 2))
    assert torch.all((p >= 0) & (p <= 1))
    x = torch.bernoulli(torch.full((4, 3), 0.5))
    assert torch.all(torch.isfinite(m.elbo(x, torch.tensor([0, 1, 2, 0]))))


def test_torch_seed_restores_global_state_and_is_reproducible():
    state = torch.get_rng_state()
    with torch_seed(3, torch.device("cpu")):
        a = torch.randn(3)
    with torch_seed(3, torch.device("cpu")):
        b = torch.randn(3)
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("banana")
    with pytest.raises(ValueError, match="not supported"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_tensor_round_trip():
    import numpy as np

    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = to_tensor(a, torch.device("cpu"))
    assert t.dtype == torch.float32
    assert to_numpy(t, np.float64).tolist() == a.tolist()
    assert to_tensor([1, 2], torch.device("cpu"), dtype=torch.long).dtype == torch.long
