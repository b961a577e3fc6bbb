"""Tests of the identifiable flow's torch core."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skivae._core.flow import FlowModule
from skivae._core.priors import ConditionalPrior


def _flow(D=3, n_classes=4, depth=2, bins=8, bound=3.0, kind="gaussian", seed=0):
    torch.manual_seed(seed)
    prior = ConditionalPrior(D, kind, "categorical", n_classes=n_classes)
    flow = FlowModule(D, prior, depth=depth, bins=bins, bound=bound).double()
    # Move every parameter away from its (identity) initialisation.
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    flow._register_aux_support(
        torch.arange(n_classes), torch.full((n_classes,), -math.log(n_classes))
    )
    return flow.eval()


def test_log_det_matches_autograd_jacobian():
    flow = _flow()
    x = 1.5 * torch.randn(6, 3, dtype=torch.float64)
    _, ladj = flow.unmix(x)
    for i in range(x.shape[0]):
        J = torch.autograd.functional.jacobian(
            lambda r: flow.unmix(r[None])[0][0], x[i]
        )
        assert_allclose(ladj[i].item(), torch.linalg.slogdet(J)[1].item(), atol=1e-8)


def test_inverse_round_trip_including_outside_the_spline_bound():
    flow = _flow()
    x = 3.0 * torch.randn(200, 3, dtype=torch.float64)  # some rows beyond bound
    with torch.no_grad():
        s, _ = flow.unmix(x)
        assert_allclose(flow.inverse(s).numpy(), x.numpy(), atol=1e-8)


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_density_integrates_to_one_in_2d(kind):
    flow = _flow(D=2, depth=1, kind=kind)
    g = torch.linspace(-30, 30, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    x = torch.stack([xx.ravel(), yy.ravel()], 1)
    cell = float(g[1] - g[0]) ** 2
    with torch.no_grad():
        for code in (0, 3):
            u = torch.full((x.shape[0],), code, dtype=torch.long)
            mass = flow.score_samples(x, u).exp().sum().item() * cell
            assert mass == pytest.approx(1.0, abs=2e-3)
        marginal = flow.score_samples(x, None).exp().sum().item() * cell
        assert marginal == pytest.approx(1.0, abs=2e-3)


def test_marginal_score_is_mixture_of_conditionals():
    flow = _flow()
    x = torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        conds = torch.stack(
            [flow.score_samples(x, torch.full((5,), c)) for c in range(4)], 1
        )
        expected = torch.logsumexp(conds, 1) - math.log(4)
        assert_allclose(flow.score_samples(x, None).numpy(), expected.numpy())


def test_sample_follows_prior_and_inverse():
    flow = _flow()
    torch.manual_seed(1)
    u = torch.full((20000,), 2, dtype=torch.long)
    with torch.no_grad():
        x, s = flow.sample(u, 20000)
        loc, log_s2 = flow.prior.params(u[:1], s[:1])
        assert_allclose(s.mean(0).numpy(), loc[0].numpy(), atol=0.06)
        assert_allclose(s.var(0).numpy(), log_s2[0].exp().numpy(), rtol=0.06)
        assert_allclose(flow.features(x).numpy(), s.numpy(), atol=1e-8)


def test_identity_initialisation_is_a_rotation():
    torch.manual_seed(0)
    prior = ConditionalPrior(4, "gaussian", "categorical", n_classes=3)
    flow = FlowModule(4, prior, depth=3)
    x = torch.randn(10, 4)
    s, ladj = flow.unmix(x)
    assert_allclose(ladj.detach().numpy(), 0.0, atol=1e-5)
    assert_allclose(s.norm(dim=1).detach().numpy(), x.norm(dim=1).numpy(), rtol=1e-5)
    # Restarts differ: another seed gives another rotation.
    torch.manual_seed(1)
    other = FlowModule(4, prior, depth=3)
    assert not torch.allclose(other.weight, flow.weight)


def test_loss_shape_and_gradients():
    flow = _flow().float().train()
    x = torch.randn(16, 3)
    u = torch.randint(0, 4, (16,))
    loss = flow.loss(x, u)
    assert loss.shape == (16,)
    loss.mean().backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert np.isfinite(loss.detach().numpy()).all()


def test_batched_restarts_are_independent_models():
    torch.manual_seed(0)
    priors = [ConditionalPrior(3, "gaussian", "categorical", n_classes=4) for _ in "ab"]
    flow = FlowModule(3, priors, depth=2, bins=8).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    assert flow.n_restarts == 2
    x = torch.randn(50, 3, dtype=torch.float64)
    u = torch.randint(0, 4, (50,))
    with torch.no_grad():
        both = flow.restart_log_prob(x, u)
        assert both.shape == (2, 50)
        assert not torch.allclose(both[0], both[1])
        # The objective averages the restarts; each restart's gradient is its own.
        assert_allclose(flow.score_samples(x, u).numpy(), both.mean(0).numpy())
    grads = []
    for r in range(2):
        flow.zero_grad()
        flow.restart_log_prob(x, u)[r].sum().backward()
        grads.append(flow.weight.grad.clone())
    assert grads[0][1].abs().sum() == 0 and grads[1][0].abs().sum() == 0
    # Keeping one restart gives that restart's model, with exact inverse.
    kept = flow.keep(1)
    with torch.no_grad():
        assert_allclose(kept.score_samples(x, u).numpy(), both[1].numpy())
        s = kept.features(x)
        assert_allclose(kept.inverse(s).numpy(), x.numpy(), atol=1e-8)
    assert kept.n_restarts == 1 and len(kept.priors) == 1


def test_single_restart_methods_refuse_a_batched_flow():
    torch.manual_seed(0)
    priors = [ConditionalPrior(2, "gaussian", "categorical", n_classes=2) for _ in "ab"]
    flow = FlowModule(2, priors, depth=1)
    with pytest.raises(RuntimeError, match="keep one"):
        flow.features(torch.zeros(3, 2))


def test_splines_made_at_once_match_one_zuko_transform_per_block(monkeypatch):
    # The stack makes all blocks' splines as one zuko transform and slices its
    # knots per block; each block must be exactly the transform zuko makes from
    # that block's parameters alone (a wrong layer or restart slice fails).
    from zuko.transforms import MonotonicRQSTransform

    from skivae._core import flow as flow_mod

    torch.manual_seed(1)
    priors = [ConditionalPrior(3, "gaussian", "categorical", n_classes=4)] * 2
    flow = FlowModule(3, priors, depth=3, bins=6, bound=3.0).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn_like(p))
    net = flow.net
    x = 2.0 * torch.randn(2, 7, 3, dtype=torch.float64)
    for layer, spline in enumerate(net._splines()):
        alone = MonotonicRQSTransform(
            net.widths[:, layer],
            net.heights[:, layer],
            net.derivatives[:, layer],
            bound=net.bound,
        )
        y, ladj = spline.call_and_ladj(x)
        y_alone, ladj_alone = alone.call_and_ladj(x)
        assert torch.equal(y, y_alone) and torch.equal(ladj, ladj_alone)
        assert torch.equal(spline.inv(y), alone.inv(y))
    s, ladj = net.unmix_all(x[0])
    loss = ladj.sum() + s.square().sum()
    grads = torch.autograd.grad(loss, list(net.parameters()))
    # A zuko that names the knots otherwise gets one transform per block:
    # the same map and the same gradients.
    monkeypatch.setattr(flow_mod, "_KNOTS", ("no_such_knots",))
    s2, ladj2 = net.unmix_all(x[0])
    assert torch.equal(s, s2) and torch.equal(ladj, ladj2)
    loss2 = ladj2.sum() + s2.square().sum()
    for g, g2 in zip(grads, torch.autograd.grad(loss2, list(net.parameters()))):
        assert_allclose(g.numpy(), g2.numpy(), rtol=1e-12, atol=1e-14)


def test_stacked_knot_lookup_is_zukos_spline():
    # The flow's splines find each input's bin on the unbroadcast knots; the
    # map must stay zuko's own: the same outputs, log-Jacobians and inverses
    # bit for bit (a wrong bin, an off-by-one between the left and right
    # knot, or a restart or feature axis mixed up in the transposes changes
    # them), inputs on the knots and outside [-bound, bound] included, and
    # the same gradients up to the order of their sums.
    from zuko.transforms import MonotonicRQSTransform

    from skivae._core.flow import _StackedRQS

    torch.manual_seed(3)
    R, B, D, K = 3, 40, 4, 6
    params = [
        torch.randn(R, 1, D, K, dtype=torch.float64, requires_grad=True),
        torch.randn(R, 1, D, K, dtype=torch.float64, requires_grad=True),
        torch.randn(R, 1, D, K - 1, dtype=torch.float64, requires_grad=True),
    ]
    ours = _StackedRQS(*params, bound=3.0)
    zukos = MonotonicRQSTransform(*params, bound=3.0)
    x = 4.0 * torch.randn(R, B, D, dtype=torch.float64)
    x[:, : K + 1] = ours.horizontal[:, 0].detach().transpose(-1, -2)  # the knots
    x = x.requires_grad_()
    (y, ladj), (y_z, ladj_z) = ours.call_and_ladj(x), zukos.call_and_ladj(x)
    assert torch.equal(y, y_z) and torch.equal(ladj, ladj_z)
    assert torch.equal(ours(x), zukos(x))
    assert torch.equal(ours.inv(y), zukos.inv(y_z))
    assert (ladj != 0).any() and (ladj == 0).any()  # inside and outside
    for a, b in zip(
        torch.autograd.grad(y.sin().sum() + ladj.sum(), [*params, x]),
        torch.autograd.grad(y_z.sin().sum() + ladj_z.sum(), [*params, x]),
    ):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    # any other layout (no restart axis) goes through zuko's lookup
    flat = _StackedRQS(*(p[0, 0] for p in params), bound=3.0)
    alone = MonotonicRQSTransform(*(p[0, 0] for p in params), bound=3.0)
    for a, b in zip(flat.call_and_ladj(x[0]), alone.call_and_ladj(x[0])):
        assert torch.equal(a, b)
