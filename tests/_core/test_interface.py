"""Every torch model implements LatentModel: loss, score_samples, features."""

import math

import pytest
import torch
from torch.testing import assert_close

from skivae._core.base import LatentModel
from skivae._core.contrastive import GCLModule, TCLModule
from skivae._core.elbo import IVAEModule
from skivae._core.priors import ConditionalPrior

N_FEATURES, N_COMPONENTS, N_CLASSES, N_AUX = 3, 2, 4, 2


def _support(aux):
    if aux == "categorical":
        return torch.arange(N_CLASSES), torch.full((N_CLASSES,), -math.log(N_CLASSES))
    return torch.randn(6, N_AUX), torch.full((6,), -math.log(6))


def _ivae(aux, n_importance=1):
    prior = ConditionalPrior(
        N_COMPONENTS,
        "gaussian",
        aux,
        n_classes=N_CLASSES,
        n_aux=N_AUX,
        hidden_layer_sizes=(8,),
    )
    support, log_w = _support(aux) if aux else (None, None)
    return IVAEModule(
        N_FEATURES,
        N_COMPONENTS,
        prior,
        hidden_layer_sizes=(8,),
        input_noise_std=0.1,
        score_seed=3,
        n_importance=n_importance,
        aux_support=support,
        aux_log_weights=log_w,
    )


def _gcl(aux):
    support, log_w = _support(aux)
    return GCLModule(
        N_FEATURES,
        N_COMPONENTS,
        aux,
        n_classes=N_CLASSES,
        n_aux=N_AUX,
        hidden_layer_sizes=(8,),
        aux_support=support,
        aux_log_weights=log_w,
    )


MODELS = {
    "ivae-categorical": (lambda: _ivae("categorical"), "categorical"),
    "ivae-continuous": (lambda: _ivae("continuous"), "continuous"),
    "vae": (lambda: _ivae(None), None),
    # score_samples is the importance-weighted bound (n_importance > 1)
    "iwae-categorical": (lambda: _ivae("categorical", 5), "categorical"),
    "iwae-continuous": (lambda: _ivae("continuous", 5), "continuous"),
    "iwae-vae": (lambda: _ivae(None, 5), None),
    "tcl": (lambda: TCLModule(N_FEATURES, N_COMPONENTS, N_CLASSES), "categorical"),
    "gcl-categorical": (lambda: _gcl("categorical"), "categorical"),
    "gcl-continuous": (lambda: _gcl("continuous"), "continuous"),
}


def _data(aux, n=12):
    x = torch.randn(n, N_FEATURES)
    if aux == "categorical":
        return x, torch.randint(0, N_CLASSES, (n,))
    return x, (torch.randn(n, N_AUX) if aux == "continuous" else None)


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model_and_data(request):
    torch.manual_seed(0)
    make, aux = MODELS[request.param]
    model = make()
    with torch.no_grad():  # away from the all-zero starts of the tables
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model, *_data(aux)


def test_is_a_latent_model_with_per_sample_outputs(model_and_data):
    model, x, u = model_and_data
    assert isinstance(model, LatentModel)
    loss = model.loss(x, u)
    assert loss.shape == (12,) and loss.requires_grad
    assert torch.isfinite(loss).all()
    assert model.score_samples(x, u).shape == (12,)
    assert model.features(x).shape == (12, N_COMPONENTS)


def test_score_samples_is_deterministic_and_batch_invariant(model_and_data):
    model, x, u = model_and_data
    torch.manual_seed(1)
    s = model.score_samples(x, u)
    torch.manual_seed(2)  # the global RNG does not matter
    assert torch.equal(model.score_samples(x, u), s)
    parts = torch.cat(
        [
            model.score_samples(x[i : i + 5], None if u is None else u[i : i + 5])
            for i in range(0, 12, 5)
        ]
    )
    assert_close(parts, s)
    perm = torch.randperm(12)
    assert_close(model.score_samples(x[perm], None if u is None else u[perm]), s[perm])


def test_float64_copy_scores_the_same(model_and_data):
    model, x, u = model_and_data
    s64 = model.double().score_samples(
        x.double(), None if u is None else (u if u.dtype == torch.long else u.double())
    )
    assert s64.dtype == torch.float64
    assert_close(s64.float(), model.float().score_samples(x, u), atol=1e-4, rtol=1e-4)


def test_loss_uses_the_global_rng_only_where_it_should(model_and_data):
    model, x, u = model_and_data
    torch.manual_seed(5)
    a = model.loss(x, u)
    torch.manual_seed(5)
    assert torch.equal(model.loss(x, u), a)  # seeded: reproducible


@pytest.mark.parametrize(
    "name",
    ["ivae-categorical", "ivae-continuous", "vae", "iwae-continuous", "iwae-vae"],
)
def test_ivae_scores_without_u_and_has_the_optional_methods(name):
    torch.manual_seed(0)
    make, aux = MODELS[name]
    model = make()
    x, u = _data(aux)
    s = model.score_samples(x, None)
    assert s.shape == (12,) and torch.isfinite(s).all()
    assert_close(
        torch.cat([model.score_samples(x[:5], None), model.score_samples(x[5:], None)]),
        s,
    )
    assert model.log_density
    assert model.inverse(model.features(x)).shape == (12, N_FEATURES)
    xs, zs = model.sample(u, 12)
    assert xs.shape == (12, N_FEATURES) and zs.shape == (12, N_COMPONENTS)


@pytest.mark.parametrize("name", ["tcl", "gcl-categorical", "gcl-continuous"])
def test_contrastive_models_need_u_to_score(name):
    model = MODELS[name][0]()
    with pytest.raises(ValueError, match="needs u"):
        model.score_samples(torch.randn(3, N_FEATURES), None)
    assert not model.log_density
    assert not hasattr(model, "inverse") and not hasattr(model, "sample")


def test_score_draws_come_from_the_seed():
    a, b, c = _ivae("categorical"), _ivae("categorical"), _ivae(None)
    assert torch.equal(a.score_eps, b.score_eps)  # score_seed=3 for both
    assert a.score_eps.shape == (8, N_COMPONENTS)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(c.score_eps, torch.randn(8, N_COMPONENTS, generator=gen))


def test_input_noise_is_in_the_training_loss_only():
    torch.manual_seed(0)
    model = _ivae("categorical")
    x, u = _data("categorical")
    noisy = torch.stack([model.loss(x, u) for _ in range(200)]).mean(0)
    model.input_noise_std = 0.0
    clean = torch.stack([model.loss(x, u) for _ in range(200)]).mean(0)
    assert not torch.allclose(noisy, clean, rtol=0.01)
    s = model.score_samples(x, u)
    model.input_noise_std = 0.1
    assert torch.equal(model.score_samples(x, u), s)


def test_a_model_must_implement_the_interface():
    class Incomplete(LatentModel):
        def loss(self, x, u):
            return x.sum(-1)

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
