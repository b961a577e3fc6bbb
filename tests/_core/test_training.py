"""The training loop: it drives any LatentModel through its interface only."""

import pytest
import torch

from skivae._core.base import LatentModel
from skivae._core.elbo import IVAEModule
from skivae._core.priors import ConditionalPrior
from skivae._core.training import DivergenceError, mean_score_loss, train


class _Recording(LatentModel):
    """A linear model that records which methods are called, and how."""

    def __init__(self, value=None):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.value = value  # a constant loss, or None for a real one
        self.calls = []

    def loss(self, x, u):
        self.calls.append(("loss", self.training, torch.is_grad_enabled()))
        if self.value is not None:
            return (self.lin.bias.sum() * 0 + self.value).expand(x.shape[0])
        return ((self.lin(x) - u[:, None].float()) ** 2).sum(-1)

    def score_samples(self, x, u):
        self.calls.append(("score_samples", self.training, torch.is_grad_enabled()))
        return -((self.lin(x) - u[:, None].float()) ** 2).sum(-1)

    def features(self, x):  # pragma: no cover - train must not call it
        self.calls.append(("features",))
        return self.lin(x)


def _toy_problem():
    torch.manual_seed(0)
    X = torch.randn(256, 3)
    U = torch.randint(0, 3, (256,))
    return X, U


def _ivae(n_classes=3):
    prior = ConditionalPrior(2, "gaussian", "categorical", n_classes=n_classes)
    return IVAEModule(3, 2, prior, hidden_layer_sizes=(8,))


def _train(model, X, U, X_val=None, U_val=None, **kw):
    kw = {
        "max_iter": 15,
        "batch_size": 32,
        "learning_rate": 1e-2,
        "n_iter_no_change": 100,
        "generator": torch.Generator().manual_seed(0),
        **kw,
    }
    return train(model, X, U, X_val, U_val, **kw)


def test_train_calls_only_the_interface():
    X, U = _toy_problem()
    model = _Recording()
    hist = _train(model, X[:192], U[:192], X[192:], U[192:], max_iter=3)
    names = [c[0] for c in model.calls]
    # One loss call per step (in train mode, with gradients), one held-out
    # pass per epoch (eval mode, no gradients), nothing else.
    assert names.count("loss") == hist.n_steps == 3 * 6
    assert names.count("score_samples") == 3
    assert "features" not in names
    assert all(c[1:] == (True, True) for c in model.calls if c[0] == "loss")
    assert all(c[1:] == (False, False) for c in model.calls if c[0] != "loss")
    assert hist.val_loss[-1] == pytest.approx(mean_score_loss(model, X[192:], U[192:]))


def test_train_reduces_loss_and_reports_history():
    X, U = _toy_problem()
    m = _ivae()
    hist = _train(m, X, U)
    assert hist.n_iter == 15 and hist.n_steps == 15 * 8
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert not hist.converged and hist.val_loss is None
    assert not m.training  # eval mode at the end


def test_train_early_stopping_restores_best_weights():
    X, U = _toy_problem()
    m = _ivae()
    # A huge learning rate makes the validation loss bounce: the restored
    # weights must be those of the best validation epoch.
    hist = _train(
        m,
        X[:200],
        U[:200],
        X[200:],
        U[200:],
        max_iter=30,
        learning_rate=0.3,
        n_iter_no_change=3,
    )
    assert hist.converged and hist.n_iter < 30
    assert min(hist.val_loss) < hist.val_loss[-1]  # the last epoch was not best
    val = mean_score_loss(m, X[200:], U[200:])
    assert val == pytest.approx(min(hist.val_loss), rel=1e-6)
    assert hist.best_loss == min(hist.val_loss)


def test_mean_score_loss_is_minus_the_mean_score():
    X, U = _toy_problem()
    m = _ivae()
    with torch.no_grad():
        expected = -float(m.score_samples(X, U).mean())
    assert mean_score_loss(m, X, U, batch_size=7) == pytest.approx(expected, rel=1e-5)
    assert m.training  # mode restored


def test_train_stops_when_converged():
    X, U = _toy_problem()
    # The loss is constant: no improvement, so training stops after
    # n_iter_no_change epochs.
    hist = _train(_Recording(value=1.0), X, U, max_iter=50, n_iter_no_change=3)
    assert hist.converged and hist.n_iter == 4


def test_train_raises_on_divergence():
    X, U = _toy_problem()
    with pytest.raises(DivergenceError, match="diverged .loss is nan"):
        _train(_Recording(value=float("nan")), X, U, max_iter=3)
    # A finite loss far beyond any real one (a learning rate of 10 gave
    # 1e27 and a model that ignored the data) has diverged too.
    with pytest.raises(DivergenceError, match="diverged .loss is 1e.13 per row"):
        _train(_Recording(value=1e13), X, U, max_iter=3)
    hist = _train(_Recording(value=-1e11), X, U, max_iter=1)  # (float32 sums)
    assert hist.train_loss == [pytest.approx(-1e11, rel=1e-6)]


def test_same_generator_and_seed_same_training():
    X, U = _toy_problem()

    def run():
        torch.manual_seed(1)
        m = _ivae()
        return _train(m, X, U, max_iter=3).train_loss, m.features(X)

    (loss_a, z_a), (loss_b, z_b) = run(), run()
    assert loss_a == loss_b
    assert torch.equal(z_a, z_b)


def test_cpu_adam_uses_foreach_kernels_with_the_same_arithmetic():
    # train() and fit_to_latents() build Adam through _adam: on the CPU it
    # must ask for the foreach kernels (less per-step overhead than torch's
    # default Python loop there), and those must give the very parameters
    # the default gives, so no fitted model changes with the switch.
    from skivae._core.training import _adam

    X, U = _toy_problem()

    def run(make_optimizer):
        torch.manual_seed(1)
        m = _ivae()
        opt = make_optimizer(list(m.parameters()))
        for idx in torch.arange(256).split(32):
            opt.zero_grad()
            m.loss(X[idx], U[idx]).mean().backward()
            opt.step()
        return opt, [p.detach().clone() for p in m.parameters()]

    opt, fast = run(lambda ps: _adam(ps, "cpu", lr=1e-2))
    assert opt.defaults["foreach"] is True
    _, plain = run(lambda ps: torch.optim.Adam(ps, lr=1e-2))
    assert all(torch.equal(a, b) for a, b in zip(fast, plain))
    elsewhere = _adam([torch.zeros(1, requires_grad=True)], "meta")
    assert elsewhere.defaults["foreach"] is None  # torch chooses


def _batched_flow():
    from skivae._core.flow import FlowModule

    torch.manual_seed(0)
    priors = [ConditionalPrior(3, "gaussian", "categorical", n_classes=3) for _ in "ab"]
    return FlowModule(3, priors, depth=1, bins=4)


def test_batched_restarts_report_each_restarts_curves():
    X, U = _toy_problem()
    flow = _batched_flow()
    hist = train(flow, X[:200], U[:200], X[200:], U[200:], max_iter=3, batch_size=64)
    assert len(hist.restart_train_loss) == len(hist.restart_val_loss) == 3
    pairs = [(hist.train_loss, hist.restart_train_loss)]
    pairs.append((hist.val_loss, hist.restart_val_loss))
    for means, per in pairs:
        for mean, (a, b) in zip(means, per):
            assert a != b  # two models, two losses
            assert mean == pytest.approx((a + b) / 2, rel=1e-5)
    # An epoch's validation losses are those of the model at its end: the
    # restored model (best mean) has those of the best epoch.
    best = min(range(3), key=hist.val_loss.__getitem__)
    with torch.no_grad():
        restored = -flow.restart_score_samples(X[200:], U[200:]).mean(1)
    assert hist.restart_val_loss[best] == pytest.approx(restored.tolist(), rel=1e-5)
    assert hist.val_loss[best] == mean_score_loss(flow, X[200:], U[200:])
    train_1 = [epoch[1] for epoch in hist.restart_train_loss]
    val_1 = [epoch[1] for epoch in hist.restart_val_loss]
    kept = hist.keep(1)
    assert kept.train_loss == train_1 and kept.val_loss == val_1
    assert kept.restart_train_loss is None and kept.restart_val_loss is None
    assert kept.n_iter == 3


def test_batched_restarts_train_on_the_mean_loss_unchanged(monkeypatch):
    # Per-restart bookkeeping must not change the training: the same model
    # trained through its mean ``loss`` (as if it were one model) ends with
    # bit-identical parameters.
    from skivae._core import training

    X, U = _toy_problem()
    flows = [_batched_flow(), _batched_flow()]
    train(
        flows[0],
        X,
        U,
        max_iter=2,
        batch_size=64,
        generator=torch.Generator().manual_seed(0),
    )
    monkeypatch.setattr(training, "_n_restarts", lambda model: 1)
    train(
        flows[1],
        X,
        U,
        max_iter=2,
        batch_size=64,
        generator=torch.Generator().manual_seed(0),
    )
    for a, b in zip(flows[0].parameters(), flows[1].parameters()):
        assert torch.equal(a, b)
