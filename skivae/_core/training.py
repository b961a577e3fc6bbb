"""Mini-batch training loop shared by every skivae model.

:func:`train` minimises ``model.loss`` (a :class:`~skivae._core.base.LatentModel`)
with Adam and a cosine-decayed learning rate, and monitors
``-model.score_samples`` on validation data when it is given. It keeps all
data on the model's device, draws mini-batch orders from its own seeded
:class:`torch.Generator`, and synchronises with the host once per epoch only
(to record the loss, check for divergence and decide when to stop).
"""

import copy
import math
import warnings
from dataclasses import dataclass, field

import torch


class DivergenceError(FloatingPointError):
    """Raised when the training loss becomes NaN, infinite or larger in
    magnitude than :data:`DIVERGED`."""


#: An epoch's mean loss (nats per row of standardised data: a few units to a
#: few hundred) beyond this magnitude has diverged even if it is finite (a
#: learning rate of 10 gave 1e27 and a model that ignored the data).
DIVERGED = 1e12


@dataclass
class TrainHistory:
    """What happened during training.

    Attributes
    ----------
    train_loss : list of float
        Mean training loss per epoch.
    val_loss : list of float or None
        Mean validation loss (``-score_samples``) per epoch, ``None`` without
        validation data.
    n_iter : int
        Number of epochs run.
    n_steps : int
        Number of optimiser steps taken.
    converged : bool
        Whether the stopping rule fired before ``max_iter``.
    best_loss : float
        Best monitored loss (validation loss with validation data).
    restart_train_loss, restart_val_loss : list of list of float or None
        For a model that trains ``R`` restarts at once: each epoch's mean
        training (and validation) loss of every restart, ``R`` values per
        epoch; ``train_loss`` and ``val_loss`` are their means, which the
        stopping rule watches. ``None`` otherwise. :meth:`keep` makes the
        history that of one restart.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = None
    n_iter: int = 0
    n_steps: int = 0
    converged: bool = False
    best_loss: float = math.inf
    restart_train_loss: list = None
    restart_val_loss: list = None

    def keep(self, restart):
        """The history of restart ``restart`` alone (in place): its own
        curves replace the means over restarts; the epochs run and the
        stopping decision, taken on the means, are unchanged."""
        if self.restart_train_loss is not None:
            self.train_loss = [epoch[restart] for epoch in self.restart_train_loss]
            self.restart_train_loss = None
        if self.restart_val_loss is not None:
            self.val_loss = [epoch[restart] for epoch in self.restart_val_loss]
            self.restart_val_loss = None
        return self


def _index(t, idx):
    return None if t is None else t[idx]


def mean_score_loss(model, X, U, batch_size=1024):
    """Mean of ``-model.score_samples`` over the rows ``X``, ``U``, in eval mode.

    The monitored objective of early stopping (on the validation rows) and
    the criterion between restarts (on the validation rows, or the training
    rows without a split). Rows go by batches of at least 1024. Returns a
    Python float (one host sync).
    """
    was_training = model.training
    model.eval()
    total = X.new_zeros(())
    with torch.inference_mode():
        for idx in torch.arange(X.shape[0], device=X.device).split(
            max(batch_size, 1024)
        ):
            total = total - model.score_samples(X[idx], _index(U, idx)).sum()
    model.train(was_training)
    return float(total) / X.shape[0]


def _n_restarts(model):
    """How many restarts a model trains at once (1 for most models)."""
    return getattr(model, "n_restarts", 1)


def _mean_restart_losses(model, X, U, batch_size=1024):
    """:func:`mean_score_loss` of a batched model and the same mean for each
    restart (a list of ``R`` floats), in one pass.

    The first value is computed as :func:`mean_score_loss` computes it
    (``score_samples`` is the mean over restarts of ``restart_score_samples``),
    so it is the same float.
    """
    was_training = model.training
    model.eval()
    total = X.new_zeros(())
    per_restart = X.new_zeros(_n_restarts(model))
    with torch.inference_mode():
        for idx in torch.arange(X.shape[0], device=X.device).split(
            max(batch_size, 1024)
        ):
            lp = model.restart_score_samples(X[idx], _index(U, idx))
            total = total - lp.mean(0).sum()
            per_restart = per_restart - lp.sum(-1)
    model.train(was_training)
    sums = torch.cat([total[None], per_restart]).tolist()  # one host sync
    return sums[0] / X.shape[0], [v / X.shape[0] for v in sums[1:]]


class _Adam:
    """Adam (Kingma and Ba, 2015) on torch's foreach kernels, with its
    learning-rate schedule built in.

    The arithmetic is ``torch.optim.Adam(foreach=True)``'s (betas 0.9 and
    0.999, ``eps=1e-8``, no weight decay), kernel for kernel and in the same
    order: with torch 2.13 the parameters after any number of steps are
    bit-identical to torch's, with or without
    ``torch.optim.lr_scheduler.LambdaLR(schedule)`` stepped after each step,
    and a parameter without a gradient at a step is left alone (its moments
    and step count too), as torch does. It leaves out the machinery around
    those kernels (hooks, state dicts, profiler records, regrouping the
    tensors by device and dtype). A step costs what torch's costs
    (``benchmarks/bench_step.py``); what it saves is once per process:
    ``torch.optim`` imports ``torch._dynamo`` at its first optimizer, about
    0.8 s and 70 MB of every fresh process's first fit.

    Parameters
    ----------
    groups : iterable of Tensor, or of dict
        The parameters, or parameter groups: dicts with ``"params"`` and an
        optional ``"lr"``.
    lr : float
        Learning rate of the groups that give none.
    schedule : callable ``(step) -> float`` or None
        Factor of every group's learning rate at step ``step`` (0 for the
        first step), as :class:`torch.optim.lr_scheduler.LambdaLR` applies
        it; ``None``: constant rates.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, groups, lr=1e-3, schedule=None):
        groups = list(groups)
        if not groups or not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.groups = [
            {"params": list(g["params"]), "lr": g.get("lr", lr)} for g in groups
        ]
        self.schedule = schedule
        self.n_steps = 0
        # per parameter: [step count, first moment, second moment]
        self.state = {}

    def zero_grad(self):
        """Drop every gradient (``set_to_none``)."""
        for group in self.groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self):
        """One Adam step of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        factor = 1.0 if self.schedule is None else self.schedule(self.n_steps)
        self.n_steps += 1
        for group in self.groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            states = [self._state(p) for p in params]
            for state in states:
                state[0] += 1
            m = [state[1] for state in states]
            v = [state[2] for state in states]
            lr = group["lr"] * factor
            torch._foreach_lerp_(m, grads, 1 - beta1)
            torch._foreach_mul_(v, beta2)
            torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
            # bias corrections as torch computes them (floats of the count)
            step_size = [(lr / (1 - beta1 ** float(st[0]))) * -1 for st in states]
            correction2 = [(1 - beta2 ** float(st[0])) ** 0.5 for st in states]
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, correction2)
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, m, denom, step_size)

    def _state(self, p):
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = [
                0,
                torch.zeros_like(p, memory_format=torch.preserve_format),
                torch.zeros_like(p, memory_format=torch.preserve_format),
            ]
        return state


def _cosine_factor(total_steps):
    """Learning-rate factor decaying from 1 to 1% over ``total_steps``."""
    return lambda s: (
        0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
    )


class CompileFallbackWarning(UserWarning):
    """``compile=True`` was asked for but ``torch.compile`` failed here; the
    model trained eagerly instead."""


class _LossStep:
    """Forward and backward of ``model.loss`` on one mini-batch, through
    :func:`torch.compile` when ``compile`` is true.

    The compiled graph is built at the first step. If building or running it
    fails there (no C++ compiler, an unsupported platform or operator), the
    step is redone eagerly, with the random state it started from, and every
    later step stays eager: a :class:`CompileFallbackWarning` says why.
    """

    #: the backend handed to :func:`torch.compile`
    backend = "inductor"

    def __init__(self, model, compile=False):
        self.model = model
        # A batched model's loss per restart and row, (R, B): the step trains
        # on its mean over restarts (the model's ``loss``, the same floats) and
        # the epoch also sums each restart's own loss.
        self.per_restart = _n_restarts(model) > 1
        self.loss = self._eager_loss()
        self.first = compile  # compiled at the first step

    def _eager_loss(self):
        return self.model.restart_loss if self.per_restart else self.model.loss

    def __call__(self, optimizer, x, u):
        if self.first:
            self.first = False
            rng = _rng_state(x.device)
            try:
                with warnings.catch_warnings():
                    # torch's own deprecation notices, raised while it compiles
                    warnings.filterwarnings(
                        "ignore", message=".*torch.jit.*", category=FutureWarning
                    )
                    warnings.filterwarnings(
                        "ignore", message=".*torch.jit.*", category=DeprecationWarning
                    )
                    self.loss = torch.compile(self._eager_loss(), backend=self.backend)
                    return self._step(optimizer, x, u)
            except Exception as exc:  # dynamo, inductor and compilers raise many
                warnings.warn(
                    f"compile=True: torch.compile failed ({_root_cause(exc)}); "
                    "training eagerly instead. Set compile=False to silence "
                    "this warning.",
                    CompileFallbackWarning,
                    stacklevel=2,
                )
                self.loss = self._eager_loss()
                _set_rng_state(x.device, rng)
        return self._step(optimizer, x, u)

    def _step(self, optimizer, x, u):
        """The step's loss: per row ``(B,)``, or per restart and row
        ``(R, B)`` for a batched model (whose gradient is that of the mean
        over restarts)."""
        loss = self.loss(x, u)
        loss_vec = loss.mean(0) if self.per_restart else loss
        optimizer.zero_grad()
        loss_vec.mean().backward()
        return loss


def _root_cause(exc):
    """``Type: first line`` of the innermost exception (torch wraps a
    backend's error in its own)."""
    inner = exc
    while inner is not None:
        exc = inner
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0][:200]}"


def _rng_state(device):
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(device, state):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _run_epoch(model, optimizer, X, U, batch_size, generator, grad_clip, step=None):
    """One pass over shuffled mini-batches; returns the mean training loss
    and, for a batched model, each restart's (a list; else None).

    ``step``: a :class:`_LossStep` (``model.loss`` run eagerly by default).
    Raises :class:`DivergenceError` when the mean loss is not finite or
    beyond :data:`DIVERGED`.
    """
    step = _LossStep(model) if step is None else step
    params = [p for p in model.parameters() if p.requires_grad]
    epoch_sum = X.new_zeros(())
    restart_sums = X.new_zeros(_n_restarts(model)) if step.per_restart else None
    order = torch.randperm(X.shape[0], generator=generator).to(X.device)
    for idx in order.split(batch_size):
        loss = step(optimizer, X[idx], _index(U, idx)).detach()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        if restart_sums is None:
            epoch_sum = epoch_sum + loss.sum()
        else:
            epoch_sum = epoch_sum + loss.mean(0).sum()
            restart_sums = restart_sums + loss.sum(-1)
    sums = (
        epoch_sum[None]
        if restart_sums is None
        else torch.cat([epoch_sum[None], restart_sums])
    )
    values = sums.tolist()  # the one host sync of the epoch
    loss = values[0] / X.shape[0]
    if not abs(loss) <= DIVERGED:  # also NaN and inf
        raise DivergenceError(f"training diverged (loss is {loss:.3g} per row).")
    per_restart = None if restart_sums is None else [v / X.shape[0] for v in values[1:]]
    return loss, per_restart


def improves(value, best, tol):
    """Whether ``value`` beats ``best`` by at least ``tol`` (relative)."""
    return not math.isfinite(best) or value < best - tol * max(1.0, abs(best))


def train(
    model,
    X,
    U=None,
    X_val=None,
    U_val=None,
    *,
    max_iter=100,
    batch_size=256,
    learning_rate=1e-3,
    tol=1e-4,
    n_iter_no_change=10,
    generator=None,
    grad_clip=10.0,
    progress=None,
    compile=False,
):
    """Minimise the mean of ``model.loss`` with Adam.

    Parameters
    ----------
    model : LatentModel
        Trained in place; left in eval mode.
    X, U : Tensor
        Training data (``U`` may be ``None``), already on the model's device.
    X_val, U_val : Tensor or None
        Validation data. When given, the stopping rule and the returned
        weights follow the validation loss ``-model.score_samples`` (early
        stopping), and the best weights are restored at the end.
    max_iter : int
        Maximum number of epochs. The learning rate decays from
        ``learning_rate`` to 1% of it over ``max_iter`` epochs (cosine).
    batch_size : int
        Mini-batch size (clipped to the number of rows).
    tol, n_iter_no_change
        Stop when the monitored loss has not improved by ``tol`` (relative)
        for ``n_iter_no_change`` consecutive epochs.
    generator : torch.Generator or None
        Draws the order of the mini-batches.
    grad_clip : float or None
        Maximum norm of the gradient at each step.
    progress : callable ``(epoch, train_loss, val_loss) -> None`` or None
        Called once per epoch (progress bars, verbose printing).
    compile : bool
        Run ``model.loss`` (forward and backward) through
        :func:`torch.compile` if the model's ``compile_pays``, falling back
        to eager execution with a :class:`CompileFallbackWarning` where that
        fails (see :class:`_LossStep`).

    Returns
    -------
    TrainHistory
        Raises :class:`DivergenceError` instead when an epoch's training loss
        is not finite.
    """
    batch_size = min(batch_size, X.shape[0])
    steps_per_epoch = math.ceil(X.shape[0] / batch_size)
    optimizer = _Adam(
        [p for p in model.parameters() if p.requires_grad],
        lr=learning_rate,
        schedule=_cosine_factor(max_iter * steps_per_epoch),
    )
    history = TrainHistory(val_loss=None if X_val is None else [])
    batched = _n_restarts(model) > 1
    if batched:
        history.restart_train_loss = []
        history.restart_val_loss = None if X_val is None else []
    best_state, no_improve = None, 0
    model.train()
    step = _LossStep(model, compile and model.compile_pays)
    for epoch in range(max_iter):
        train_loss, restart_losses = _run_epoch(
            model, optimizer, X, U, batch_size, generator, grad_clip, step
        )
        history.n_iter, history.n_steps = epoch + 1, (epoch + 1) * steps_per_epoch
        history.train_loss.append(train_loss)
        if batched:
            history.restart_train_loss.append(restart_losses)
        val_loss = None
        if X_val is not None:
            if batched:
                val_loss, restart_val = _mean_restart_losses(
                    model, X_val, U_val, batch_size
                )
                history.restart_val_loss.append(restart_val)
            else:
                val_loss = mean_score_loss(model, X_val, U_val, batch_size)
            history.val_loss.append(val_loss)
        if progress is not None:
            progress(epoch + 1, train_loss, val_loss)
        monitored = train_loss if val_loss is None else val_loss
        improved = improves(monitored, history.best_loss, tol)
        no_improve = 0 if improved else no_improve + 1
        if monitored < history.best_loss:
            history.best_loss = monitored
            if X_val is not None:
                best_state = copy.deepcopy(model.state_dict())
        if no_improve >= n_iter_no_change:
            history.converged = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def fit_to_latents(
    model,
    X,
    U,
    Z,
    *,
    seed,
    epochs,
    steps,
    batch_size,
    learning_rate,
    prior_learning_rate,
    **loss_kwargs,
):
    """Move a new ``model`` onto known latents ``Z`` of the rows ``X``, ``U``.

    Minimises ``model.latent_regression_loss(x, u, z, **loss_kwargs)`` (a
    per-row loss; for the iVAE: its encoder's mean learns ``z``, its decoder
    ``x`` from ``z`` and its prior ``log p(z|u)``) by Adam on random
    mini-batches, ``epochs`` passes over the data clipped to ``steps =
    (min, max)`` optimiser steps. The prior's parameters (``model.prior``,
    where the model has one) learn at ``prior_learning_rate``, the others at
    ``learning_rate``. In place, on ``X``'s device, without host
    synchronisation; leaves the model in eval mode. The rows are drawn from
    a generator seeded by ``seed``.
    """
    model.to(X.device).train()
    prior = getattr(model, "prior", None)
    prior_params = [] if prior is None else list(prior.parameters())
    own = {id(p) for p in prior_params}
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    groups = [{"params": other, "lr": learning_rate}]
    if prior_params:
        groups.append({"params": prior_params, "lr": prior_learning_rate})
    optimizer = _Adam(groups)
    gen = torch.Generator().manual_seed(int(seed))
    n = X.shape[0]
    batch = min(batch_size, n)
    lo, hi = steps
    n_steps = min(hi, max(lo, -(-epochs * n // batch)))
    rows = torch.randint(0, n, (n_steps, batch), generator=gen).to(X.device)
    for idx in rows:
        loss = model.latent_regression_loss(
            X[idx], _index(U, idx), Z[idx], **loss_kwargs
        )
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    model.eval()
