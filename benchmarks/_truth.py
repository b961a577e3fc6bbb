"""The true model's log-likelihood on simulated data, for benchmarks.

For square, noiseless draws of :func:`skivae.datasets.make_nonstationary_sources`
the generative model is known exactly, so log p(x | u) of the true model can be
computed and compared with a fitted flow's: a fitted likelihood well below the
truth's points to an optimisation failure (the truth is in the flow's family),
one at or above it with a low MCC to an identifiability failure.
"""

import numpy as np
from sklearn.utils import check_random_state

from skivae import datasets


def _inverse_activation(y, activation, slope=0.1):
    if activation == "leaky_relu":
        return np.where(y > 0, y, y / slope)
    # xtanh(a) = tanh(a) + slope * a: Newton from the asymptote's inverse.
    a = np.where(np.abs(y) > 1, (y - np.sign(y)) / slope, y / (1 + slope))
    for _ in range(60):
        t = np.tanh(a)
        a = a - (t + slope * a - y) / (1 - t**2 + slope)
    return a


def _activation_derivative(a, activation, slope=0.1):
    if activation == "leaky_relu":
        return np.where(a > 0, 1.0, slope)
    return 1 - np.tanh(a) ** 2 + slope


def true_log_likelihood(
    X,
    u,
    *,
    random_state,
    n_segments,
    n_sources,
    n_layers=3,
    activation="xtanh",
    source="gaussian",
    scale_range=(0.5, 3.0),
    scale_type="std",
    reuse_weights=True,
    mixing="uniform",
    **_ignored,
):
    """Per-sample log p(x | u) (nats, original scale) under the true model.

    Takes the arguments given to ``make_nonstationary_sources`` (square and
    noiseless only) and replays its random draws.
    """
    rng = check_random_state(random_state)
    weights = datasets._draw_mixing_weights(
        n_sources, n_sources, n_layers, reuse_weights, rng, mixing
    )
    scales = rng.uniform(*scale_range, size=(n_segments, n_sources))
    if scale_type == "var":
        scales = np.sqrt(scales)
    h = np.asarray(X, dtype=np.float64)
    log_det = np.zeros(h.shape[0])
    for layer in range(n_layers - 1, -1, -1):
        h = h @ np.linalg.inv(weights[layer])
        log_det -= np.log(abs(np.linalg.det(weights[layer])))
        if layer > 0:
            a = _inverse_activation(h, activation)
            log_det -= np.log(_activation_derivative(a, activation)).sum(1)
            h = a
    sd = scales[u]
    if source == "gaussian":
        lp = -0.5 * np.log(2 * np.pi) - np.log(sd) - 0.5 * (h / sd) ** 2
    else:
        b = sd / np.sqrt(2)
        lp = -np.log(2 * b) - np.abs(h) / b
    return lp.sum(1) + log_det
