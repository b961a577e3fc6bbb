"""Plotting helpers for fitted estimators and recovered sources.

Each function draws on a matplotlib Axes (a new figure when ``ax=None``) and
returns it, so plots can be combined and restyled. The functions take numpy
arrays (or a fitted estimator, for :func:`plot_loss_curve`) and do not import
torch. matplotlib is an optional dependency: install it with
``pip install skivae[plot]``.
"""

import numpy as np
from scipy.stats import rankdata
from sklearn.utils import check_array, check_random_state

from skivae.datasets import _is_int
from skivae.metrics import _abs_corr, _check_method, _check_sources, match_components
from skivae.preprocessing import _label_codes

__all__ = [
    "plot_correlation_matrix",
    "plot_latents",
    "plot_loss_curve",
    "plot_sources",
]


def _pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "skivae.plotting needs matplotlib, which is not installed. Install it "
            "with: pip install skivae[plot]  (or: pip install matplotlib)"
        ) from exc
    return plt


def _get_ax(ax, **subplots_kwargs):
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(**subplots_kwargs)
    return ax


def _signed_corr(a, b, method):
    """The correlation of two columns by ``method`` (its sign decides which
    way a scatter plot shows a matched component)."""
    if method == "spearman":
        a, b = rankdata(a), rankdata(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.corrcoef(a, b)[0, 1]


def _unwrap(estimator):
    """The estimator inside a fitted search (``best_estimator_``) and at the
    end of a Pipeline, so that their loss curves can be drawn directly."""
    from sklearn.pipeline import Pipeline

    for _ in range(8):  # searches of pipelines of searches, not cycles
        if hasattr(estimator, "best_estimator_"):
            estimator = estimator.best_estimator_
        elif isinstance(estimator, Pipeline):
            estimator = estimator.steps[-1][1]
        else:
            break
    return estimator


def plot_loss_curve(estimator_or_curve, ax=None):
    """Plot the training loss per epoch.

    Parameters
    ----------
    estimator_or_curve : estimator or array-like of shape (n_epochs,)
        A fitted skivae estimator (its ``loss_curve_`` is drawn, and its
        held-out loss, minus ``validation_scores_``, when it was fitted with
        ``early_stopping=True``), a fitted Pipeline ending in one or a fitted
        search (its ``best_estimator_``), or a sequence of loss values.

    ax : matplotlib Axes, default=None
        Axes to draw on; ``None`` creates a new figure.

    Returns
    -------
    ax : matplotlib Axes
        The Axes, with one line per curve: x is the epoch (1, 2, ...), y the
        loss.

    See Also
    --------
    plot_latents : Scatter plot of two latent components.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skivae.plotting import plot_loss_curve
    >>> ax = plot_loss_curve([3.0, 2.0, 1.5, 1.4])
    >>> ax.lines[0].get_ydata().tolist()
    [3.0, 2.0, 1.5, 1.4]
    """
    estimator_or_curve = _unwrap(estimator_or_curve)
    if hasattr(estimator_or_curve, "loss_curve_"):
        curve = estimator_or_curve.loss_curve_
        validation = getattr(estimator_or_curve, "validation_scores_", None)
        name = type(estimator_or_curve).__name__
    elif hasattr(estimator_or_curve, "fit"):
        raise ValueError(
            f"This {type(estimator_or_curve).__name__} has no loss_curve_: fit it "
            "first, or pass the loss values themselves."
        )
    elif estimator_or_curve is None or np.ndim(estimator_or_curve) != 1:
        raise ValueError(
            "plot_loss_curve takes a fitted estimator (or a Pipeline or search "
            "ending in one) or a 1-D sequence of loss values, got "
            f"{type(estimator_or_curve).__name__}"
            + (
                f" of shape {np.shape(estimator_or_curve)}."
                if estimator_or_curve is not None
                else "."
            )
        )
    else:
        curve, validation, name = estimator_or_curve, None, None
    curve = check_array(
        curve, ensure_2d=False, dtype=np.float64, input_name="loss curve"
    )
    ax = _get_ax(ax)
    epochs = np.arange(1, curve.size + 1)
    ax.plot(epochs, curve, label="training loss")
    if validation is not None:
        held_out = -np.asarray(validation, dtype=np.float64)
        # The last epochs: a warm start that turned early stopping on has
        # validation scores for the epochs of its own fit only.
        first = max(curve.size - held_out.size, 0) + 1
        ax.plot(
            np.arange(first, first + held_out.size), held_out, label="validation loss"
        )
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (lower is better)")
    if name is not None:
        ax.set_title(f"{name} training")
    return ax


def plot_latents(Z, u=None, ax=None, *, components=(0, 1), s=4, alpha=0.6, cmap=None):
    """Scatter plot of two latent components, coloured by ``u``.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Latents, e.g. the output of ``transform``.

    u : array-like of shape (n_samples,), default=None
        Colour of each point: labels (any dtype; one colour per distinct
        value) or a continuous covariate (floats; a colour map with a colour
        bar). ``None`` draws every point in one colour.

    ax : matplotlib Axes, default=None
        Axes to draw on; ``None`` creates a new figure.

    components : tuple of (int, int), default=(0, 1)
        Columns of ``Z`` on the x and y axes.

    s : float, default=4
        Marker size.

    alpha : float, default=0.6
        Marker opacity.

    cmap : str or Colormap, default=None
        Colour map; ``None`` uses ``"tab10"``/``"tab20"`` for up to 20 labels
        and ``"viridis"`` otherwise.

    Returns
    -------
    ax : matplotlib Axes
        The Axes, with the points in ``ax.collections[0]``.

    See Also
    --------
    plot_sources : True against recovered sources, one panel per pair.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skivae.plotting import plot_latents
    >>> rng = np.random.RandomState(0)
    >>> ax = plot_latents(rng.normal(size=(50, 3)), u=np.arange(50) % 5)
    >>> ax.collections[0].get_offsets().shape
    (50, 2)
    """
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    try:
        i, j = components
    except (TypeError, ValueError):
        raise ValueError(
            f"components must be a pair of column indices, got {components!r}."
        ) from None
    for c in (i, j):
        if not _is_int(c):
            raise ValueError(
                f"components must be a pair of integer column indices, got "
                f"{tuple(components)!r}."
            )
        if not -Z.shape[1] <= c < Z.shape[1]:
            raise ValueError(
                f"components={tuple(components)!r} is out of range for Z with "
                f"{Z.shape[1]} columns."
            )
    i, j = int(i) % Z.shape[1], int(j) % Z.shape[1]  # labels name real columns
    ax = _get_ax(ax)
    kwargs = dict(s=s, alpha=alpha, linewidths=0)
    continuous = False
    if u is not None:
        u = np.asarray(u)
        if u.ndim != 1 or u.shape[0] != Z.shape[0]:
            raise ValueError(
                f"u must be 1-D with one value per row of Z ({Z.shape[0]}), got "
                f"shape {u.shape}."
            )
        continuous = u.dtype.kind in "fc"
        if continuous:
            kwargs.update(c=u, cmap=cmap or "viridis")
        else:
            labels, codes = _label_codes(u, "u")
            default = "tab10" if labels.size <= 10 else "tab20"
            cmap = cmap or (default if labels.size <= 20 else "viridis")
            kwargs.update(c=codes, cmap=cmap, vmin=-0.5, vmax=labels.size - 0.5)
    points = ax.scatter(Z[:, i], Z[:, j], **kwargs)
    if u is not None:
        bar = ax.figure.colorbar(points, ax=ax)
        bar.set_label("u")
        if not continuous and labels.size <= 20:
            bar.set_ticks(np.arange(labels.size))
            bar.set_ticklabels([str(v) for v in labels])
    ax.set_xlabel(f"latent {i}")
    ax.set_ylabel(f"latent {j}")
    return ax


def plot_correlation_matrix(
    sources_true, sources_pred, ax=None, method="pearson", *, annotate=True
):
    """Heat map of the absolute correlations between true and estimated sources.

    Rows are the true sources, columns the estimated components. The cells
    of the one-to-one matching found by
    :func:`~skivae.metrics.match_components` are outlined; the mean of those
    cells is the MCC (:func:`~skivae.metrics.mean_corr_coef`), shown in the
    title.

    Parameters
    ----------
    sources_true : array-like of shape (n_samples, k_true)
        True sources.

    sources_pred : array-like of shape (n_samples, k_pred)
        Estimated sources.

    ax : matplotlib Axes, default=None
        Axes to draw on; ``None`` creates a new figure.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation coefficient (Spearman's forgives monotone warpings).

    annotate : bool, default=True
        Write each correlation in its cell.

    Returns
    -------
    ax : matplotlib Axes
        The Axes. ``ax.images[0]`` holds the ``(k_true, k_pred)`` matrix of
        absolute correlations; ``ax.patches`` the outlines of the matched
        cells, one unit square centred on ``(pred_idx[j], true_idx[j])``
        each.

    See Also
    --------
    skivae.metrics.mean_corr_coef : The strong MCC.
    skivae.metrics.match_components : The matching.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skivae.plotting import plot_correlation_matrix
    >>> rng = np.random.RandomState(0)
    >>> S = rng.laplace(size=(300, 3))
    >>> ax = plot_correlation_matrix(S, -S[:, [2, 0, 1]])
    >>> ax.get_title()
    'MCC (pearson) = 1.000'
    """
    S, Z = _check_sources(sources_true, sources_pred)
    method = _check_method(method)
    C = _abs_corr(S, Z, method)
    true_idx, pred_idx = match_components(S, Z, method=method)
    ax = _get_ax(ax)
    image = ax.imshow(C, vmin=0.0, vmax=1.0, cmap="viridis", aspect="equal")
    ax.figure.colorbar(image, ax=ax, label=f"|{method} correlation|")
    from matplotlib.patches import Rectangle

    for r, c in zip(true_idx, pred_idx):
        ax.add_patch(
            Rectangle(
                (c - 0.5, r - 0.5),
                1.0,
                1.0,
                fill=False,
                edgecolor="red",
                linewidth=2.5,
                label="matching",
            )
        )
    if annotate:
        for r in range(C.shape[0]):
            for c in range(C.shape[1]):
                ax.text(
                    c,
                    r,
                    f"{C[r, c]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if C[r, c] > 0.6 else "white",
                )
    ax.set_xticks(np.arange(C.shape[1]))
    ax.set_yticks(np.arange(C.shape[0]))
    ax.set_xlabel("estimated component")
    ax.set_ylabel("true source")
    ax.set_title(f"MCC ({method}) = {C[true_idx, pred_idx].mean():.3f}")
    return ax


def plot_sources(
    sources_true,
    sources_pred,
    axes=None,
    *,
    method="pearson",
    max_points=2000,
    random_state=0,
    s=3,
    alpha=0.4,
):
    """Scatter each true source against its matched estimated component.

    The components are matched to the sources by
    :func:`~skivae.metrics.match_components`, and each estimated component
    is flipped so that it correlates positively with its source. A
    component recovered up to a component-wise invertible map, as the
    identifiability theory allows, lies on a thin monotone curve.

    Parameters
    ----------
    sources_true : array-like of shape (n_samples, k_true)
        True sources.

    sources_pred : array-like of shape (n_samples, k_pred)
        Estimated sources.

    axes : array-like of matplotlib Axes, default=None
        One Axes per matched pair (``min(k_true, k_pred)``); ``None`` creates
        a figure with one row of panels.

    method : {"pearson", "spearman"}, default="pearson"
        Correlation used for the matching and shown in each panel's title.

    max_points : int or None, default=2000
        Draw at most this many rows (a random subset, the same in every
        panel); ``None`` draws all.

    random_state : int, RandomState instance or None, default=0
        Seed of the subset of rows.

    s : float, default=3
        Marker size.

    alpha : float, default=0.4
        Marker opacity.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One Axes per matched pair, in the order of the true sources.

    See Also
    --------
    plot_correlation_matrix : All correlations at once.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skivae.plotting import plot_sources
    >>> rng = np.random.RandomState(0)
    >>> S = rng.laplace(size=(300, 2))
    >>> axes = plot_sources(S, np.tanh(-S[:, ::-1]))
    >>> [ax.get_ylabel() for ax in axes]
    ['-component 1', '-component 0']
    """
    S, Z = _check_sources(sources_true, sources_pred)
    method = _check_method(method)
    C = _abs_corr(S, Z, method)
    true_idx, pred_idx = match_components(S, Z, method=method)
    n_pairs = true_idx.size
    if axes is None:
        plt = _pyplot()
        _, axes = plt.subplots(1, n_pairs, figsize=(2.6 * n_pairs, 2.8), squeeze=False)
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != n_pairs:
        raise ValueError(
            f"axes must hold one Axes per matched pair ({n_pairs}), got {axes.size}."
        )
    if max_points is not None and (not _is_int(max_points) or max_points < 1):
        raise ValueError(
            f"max_points must be a positive integer or None, got {max_points!r}."
        )
    rows = np.arange(S.shape[0])
    if max_points is not None and S.shape[0] > max_points:
        rng = check_random_state(random_state)
        rows = np.sort(rng.choice(S.shape[0], size=int(max_points), replace=False))
    for ax, i, j in zip(axes, true_idx, pred_idx):
        flip = _signed_corr(S[:, i], Z[:, j], method) < 0
        z_j = -Z[rows, j] if flip else Z[rows, j]
        ax.scatter(S[rows, i], z_j, s=s, alpha=alpha, linewidths=0)
        ax.set_title(f"|r| = {C[i, j]:.2f}", fontsize=9)
        ax.set_xlabel(f"true source {i}")
        ax.set_ylabel(f"-component {j}" if flip else f"component {j}")
    return axes
