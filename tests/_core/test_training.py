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


def test_adam_is_torchs_adam_with_its_schedule():
    # train() and fit_to_latents() step their own Adam (without torch.optim's
    # per-step machinery); it must move the parameters as torch's Adam with a
    # LambdaLR schedule does: two groups with their own learning rates, and a
    # parameter that has no gradient at some steps keeps its moments and step
    # count (a wrong bias correction, moment, schedule offset or group rate
    # fails).
    from skivae._core.training import _Adam, _cosine_factor

    def run(ours):
        torch.manual_seed(1)
        a = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        b = torch.randn(5, dtype=torch.float64, requires_grad=True)
        groups = [{"params": [a], "lr": 0.05}, {"params": [b], "lr": 0.01}]
        schedule = _cosine_factor(30)
        if ours:
            opt, scheduler = _Adam(groups, schedule=schedule), None
        else:
            opt = torch.optim.Adam(groups, foreach=True)
            scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        for t in range(40):
            opt.zero_grad()
            loss = (a.sin() * torch.arange(1.0, 4.0, dtype=a.dtype)).sum()
            if t % 3:  # b has no gradient at every third step
                loss = loss + (b - 1).pow(4).sum()
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
        return a.detach(), b.detach()

    from numpy.testing import assert_allclose

    ours, torchs = run(True), run(False)
    for a, b in zip(ours, torchs):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-14)
    torch.manual_seed(1)
    starts = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    for a, start in zip(ours, starts):
        assert (a - start).abs().min() > 1e-3  # every entry moved


def test_a_fit_does_not_import_torch_dynamo():
    # torch.optim imports torch._dynamo at its first optimizer (about 0.8 s
    # of every fresh process's first fit); the training loop must not need it.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from skivae import NonlinearICA; "
        "rng = np.random.default_rng(0); X = rng.normal(size=(200, 2)); "
        "u = np.repeat(np.arange(4), 50); "
        "NonlinearICA(max_iter=2, n_init=1, random_state=0).fit(X, u); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


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
