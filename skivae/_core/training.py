"""Mini-batch training loop shared by every skivae model.

The loop keeps all data on the module's device, draws mini-batch orders from
its own seeded :class:`torch.Generator`, and synchronises with the host once
per epoch only (to record the loss, check for divergence and decide when to
stop).
"""

import copy
import math
from dataclasses import dataclass, field

import torch


class DivergenceError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclass
class TrainHistory:
    """What happened during training.

    Attributes
    ----------
    train_loss : list of float
        Mean training loss per epoch.
    val_loss : list of float or None
        Mean validation loss per epoch (``None`` without validation data).
    n_iter : int
        Number of epochs run.
    n_steps : int
        Number of optimiser steps taken.
    converged : bool
        Whether the stopping rule fired before ``max_iter``.
    best_loss : float
        Best monitored loss (validation loss with validation data).
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = None
    n_iter: int = 0
    n_steps: int = 0
    converged: bool = False
    best_loss: float = math.inf


def _batches(n, batch_size, generator, device, shuffle=True):
    if shuffle:
        order = torch.randperm(n, generator=generator).to(device)
    else:
        order = torch.arange(n, device=device)
    return order.split(batch_size)


def _index(t, idx):
    return None if t is None else t[idx]


def evaluate_loss(loss_fn, X, U, batch_size):
    """Mean of ``loss_fn(xb, ub)`` (a per-sample loss) over all rows, batched."""
    total = X.new_zeros(())
    with torch.inference_mode():
        for idx in torch.arange(X.shape[0], device=X.device).split(batch_size):
            total = total + loss_fn(X[idx], _index(U, idx)).sum()
    return float(total) / X.shape[0]


def train(
    loss_fn,
    parameters,
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
    warmup_epochs=0,
    lr_decay=True,
    modules=(),
    progress=None,
    divergence_hint="",
):
    """Minimise the mean of a per-sample loss with Adam.

    Parameters
    ----------
    loss_fn : callable ``(xb, ub, epoch_fraction) -> Tensor of shape (batch,)``
        Per-sample loss; ``epoch_fraction`` in [0, 1] lets it anneal terms
        (it is ``1.0`` once warm-up is over and during evaluation).
    parameters : iterable of Parameters
    X, U : Tensor
        Training data (``U`` may be ``None``), already on the device.
    X_val, U_val : Tensor or None
        Validation data. When given, the stopping rule and the returned
        weights follow the validation loss (early stopping) and the best
        weights are restored at the end.
    max_iter : int
        Maximum number of epochs.
    tol, n_iter_no_change
        Stop when the monitored loss has not improved by ``tol`` for
        ``n_iter_no_change`` consecutive epochs.
    warmup_epochs : float
        Length of the warm-up passed to ``loss_fn`` as a fraction.
    lr_decay : bool
        Cosine-decay the learning rate from ``learning_rate`` to 1% of it over
        ``max_iter`` epochs.
    modules : sequence of nn.Module
        Put in train mode during training and eval mode at the end.
    progress : callable ``(epoch, train_loss, val_loss) -> None`` or None
        Called once per epoch (progress bars, verbose printing).

    Returns
    -------
    TrainHistory
    """
    parameters = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    n = X.shape[0]
    batch_size = min(batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = max_iter * steps_per_epoch
    warmup_steps = warmup_epochs * steps_per_epoch
    if lr_decay:
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: (
                0.01
                + 0.99
                * 0.5
                * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
            ),
        )
    else:
        scheduler = None
    history = TrainHistory(val_loss=[] if X_val is not None else None)
    best_state = None
    no_improve = 0
    step = 0
    for m in modules:
        m.train()
    for epoch in range(max_iter):
        epoch_sum = X.new_zeros(())
        for idx in _batches(n, batch_size, generator, X.device):
            frac = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
            loss_vec = loss_fn(X[idx], _index(U, idx), frac)
            loss = loss_vec.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            epoch_sum = epoch_sum + loss_vec.detach().sum()
            step += 1
        train_loss = float(epoch_sum) / n  # one host sync per epoch
        history.n_iter = epoch + 1
        history.n_steps = step
        if not math.isfinite(train_loss):
            raise DivergenceError(
                f"training diverged at epoch {epoch + 1} (loss is {train_loss}). "
                + divergence_hint
            )
        history.train_loss.append(train_loss)
        monitored = train_loss
        val_loss = None
        if X_val is not None:
            for m in modules:
                m.eval()
            val_loss = evaluate_loss(
                lambda xb, ub: loss_fn(xb, ub, 1.0), X_val, U_val, max(batch_size, 1024)
            )
            for m in modules:
                m.train()
            history.val_loss.append(val_loss)
            monitored = val_loss
        if progress is not None:
            progress(epoch + 1, train_loss, val_loss)
        improved = not math.isfinite(history.best_loss) or (
            monitored < history.best_loss - tol * max(1.0, abs(history.best_loss))
        )
        if improved:
            no_improve = 0
        else:
            no_improve += 1
        if monitored < history.best_loss:
            history.best_loss = monitored
            if X_val is not None:
                best_state = [copy.deepcopy(m.state_dict()) for m in modules]
        # Warm-up epochs never count towards convergence.
        if step >= warmup_steps and no_improve >= n_iter_no_change:
            history.converged = True
            break
    if best_state is not None:
        for m, state in zip(modules, best_state):
            m.load_state_dict(state)
    for m in modules:
        m.eval()
    return history
