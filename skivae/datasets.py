"""Synthetic data for nonlinear ICA with an auxiliary variable.

The generators draw independent sources whose distribution is modulated by an
observed auxiliary variable ``u`` and mix them with a random invertible (or, in
the undercomplete case, injective) multilayer perceptron, as in the simulations
of Khemakhem et al. (2020) and of their official code.

Most functions return ``(X, u, S)``: the observations, the auxiliary variable
and the true sources. :func:`make_time_sources` draws time series and returns
``(X, u, S, groups)``, with ``groups`` the sequence index of each row, and
:func:`make_spatial_sources` returns ``(X, coords, S)``, whose auxiliary
variable is the two-dimensional location of each sample. They use only numpy,
scipy and scikit-learn.
"""

import functools
import numbers

import numpy as np
from scipy.signal import lfilter
from sklearn.utils import check_random_state

__all__ = [
    "make_continuous_aux_sources",
    "make_nonstationary_sources",
    "make_spatial_sources",
    "make_time_sources",
]

_ACTIVATIONS = ("xtanh", "leaky_relu")
_SOURCES = ("gaussian", "laplace")
_MIXINGS = ("uniform", "orthogonal")
_SCALE_TYPES = ("std", "var")
_AUX_MAPS = ("fourier", "periodic", "monotone")
_TIME_KINDS = ("segment_ar", "stationary_ar", "ar_variance")
_SEGMENT_AR_BOUND = 0.9  # segment_ar: coefficients uniform in [-0.9, 0.9]
_STATIONARY_AR_BOUND = 0.8  # stationary_ar, ar_variance: coefficients in [-0.8, 0.8]
_AR_SPACING = 0.2  # their minimum spacing (shrunk for more than 8 sources)
_INNOVATION_SCALE_RANGE = (0.5, 3.0)  # ar_variance: per-segment std multipliers
_SLOPE = 0.1  # slope of xtanh's linear part and of the leaky ReLU
_N_THRESHOLD_DRAWS = 5000  # matrices drawn to estimate the condition-number threshold
# Shapes whose SVD work (rows * cols * min(rows, cols)) exceeds this use fewer draws,
# in proportion, but never fewer than _MIN_THRESHOLD_DRAWS: a 400 x 400 mixing took
# 100 s with 5000 draws. Every shape up to 50 x 100 (or 62 x 62) keeps 5000 draws.
_THRESHOLD_WORK = 250_000
_MIN_THRESHOLD_DRAWS = 100
_THRESHOLD_PERCENTILE = 25.0
_THRESHOLD_SEED = 0  # fixed: the threshold is a property of the shape, not of the draw
_MAX_REJECTIONS = 10_000


# --------------------------------------------------------------------------- #
# Argument validation
# --------------------------------------------------------------------------- #
def _is_int(value):
    """A Python or numpy integer, and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_int(value, name, min_value):
    if not _is_int(value) or value < min_value:
        raise ValueError(f"{name} must be an integer >= {min_value}, got {value!r}.")
    return int(value)


def _check_bool(value, name):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be a bool, got {value!r}.")


def _check_option(value, name, options):
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}.")
    return value


def _check_noise(noise):
    if (
        isinstance(noise, bool)
        or not isinstance(noise, numbers.Real)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}.")
    return float(noise)


def _check_pair(value, name, what):
    """``(low, high)`` floats from a list, tuple or 1-D array of two real
    numbers (not strings, bools, mappings or sets); ``what`` describes the
    pair in the error."""
    ok = isinstance(value, (tuple, list, np.ndarray)) and np.ndim(value) == 1
    ok = ok and len(value) == 2
    ok = ok and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
        for v in value
    )
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    lo, hi = (float(v) for v in value)
    if not np.isfinite(hi - lo):  # also catches infinite or NaN bounds
        raise ValueError(
            f"{name} must have finite bounds whose difference is finite, got "
            f"{tuple(value)!r}."
        )
    return lo, hi


def _check_scale_range(scale_range, name="scale_range"):
    lo, hi = _check_pair(scale_range, name, "a pair (low, high) of numbers")
    if not 0 < lo <= hi:
        raise ValueError(
            f"{name} must satisfy 0 < low <= high (finite), got {tuple(scale_range)!r}."
        )
    return lo, hi


def _check_mean_range(mean_range):
    if mean_range is None:
        return None
    what = "None or a pair (low, high) of numbers"
    lo, hi = _check_pair(mean_range, "mean_range", what)
    if not lo <= hi:
        raise ValueError(
            f"mean_range must satisfy low <= high (finite), got {tuple(mean_range)!r}."
        )
    return lo, hi


def _check_mixing_args(n_sources, n_features, n_layers, activation, reuse_weights):
    n_sources = _check_int(n_sources, "n_sources", 1)
    if n_features is None:
        n_features = n_sources
    n_features = _check_int(n_features, "n_features", 1)
    if n_features < n_sources:
        raise ValueError(
            f"n_features must be >= n_sources (the mixing must be injective), "
            f"got n_features={n_features} < n_sources={n_sources}."
        )
    n_layers = _check_int(n_layers, "n_layers", 1)
    activation = _check_option(activation, "activation", _ACTIVATIONS)
    reuse_weights = _check_bool(reuse_weights, "reuse_weights")
    return n_sources, n_features, n_layers, activation, reuse_weights


# --------------------------------------------------------------------------- #
# Random mixing MLP
# --------------------------------------------------------------------------- #
def _unit_column_matrices(n_matrices, n_rows, n_cols, rng):
    """Draw matrices with entries uniform in [-1, 1] and unit-norm columns."""
    W = rng.uniform(-1.0, 1.0, size=(n_matrices, n_rows, n_cols))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    return W


def _condition_numbers(W):
    """Condition numbers (largest / smallest singular value) of a matrix stack."""
    s = np.linalg.svd(W, compute_uv=False)
    return s[..., 0] / s[..., -1]


def _n_threshold_draws(n_rows, n_cols):
    """How many matrices estimate the threshold of one shape.

    ``_N_THRESHOLD_DRAWS`` for every shape up to ``_THRESHOLD_WORK`` (the
    paper's and every benchmark's), fewer for wide ones, so that the estimate
    costs about as much as that of a 50 x 100 shape.
    """
    work = n_rows * n_cols * min(n_rows, n_cols)
    if work <= _THRESHOLD_WORK:
        return _N_THRESHOLD_DRAWS
    scaled = _N_THRESHOLD_DRAWS * _THRESHOLD_WORK // work
    return max(_MIN_THRESHOLD_DRAWS, scaled)


@functools.lru_cache(maxsize=64)
def _condition_threshold(n_rows, n_cols):
    """25th percentile of the condition number of random unit-column matrices.

    Estimated once per shape from ``_n_threshold_draws(n_rows, n_cols)``
    matrices drawn with a fixed seed, so the value never depends on
    ``random_state`` or on the cache.
    """
    rng = np.random.RandomState(_THRESHOLD_SEED)
    n_draws = _n_threshold_draws(n_rows, n_cols)
    # Chunks keep memory bounded for large shapes (about 32 MB per chunk).
    chunk = max(1, min(n_draws, 4_000_000 // (n_rows * n_cols)))
    conds = []
    for start in range(0, n_draws, chunk):
        n = min(chunk, n_draws - start)
        conds.append(_condition_numbers(_unit_column_matrices(n, n_rows, n_cols, rng)))
    return float(np.percentile(np.concatenate(conds), _THRESHOLD_PERCENTILE))


def _well_conditioned_matrix(n_rows, n_cols, rng):
    """Draw a unit-column matrix whose condition number is at most the threshold."""
    threshold = _condition_threshold(n_rows, n_cols)
    for _ in range(_MAX_REJECTIONS):
        W = _unit_column_matrices(1, n_rows, n_cols, rng)[0]
        if _condition_numbers(W) <= threshold:
            return W
    raise RuntimeError(  # pragma: no cover - probability ~0.75**10000
        f"Could not draw a well-conditioned {n_rows}x{n_cols} matrix."
    )


def _orthogonal_matrix(n_rows, n_cols, rng):
    """Draw a matrix with orthonormal rows (``n_rows <= n_cols``), Haar-distributed."""
    G = rng.standard_normal((n_cols, n_rows))
    Q, R = np.linalg.qr(G)
    Q = Q * np.sign(np.diag(R))  # sign fix: uniform over the orthogonal group
    return Q.T


def _draw_mixing_weights(
    n_sources, n_features, n_layers, reuse_weights, rng, mixing="uniform"
):
    """Weight matrices of the mixing MLP, first layer first.

    The first matrix has shape ``(n_sources, n_features)``, the others
    ``(n_features, n_features)``. With ``reuse_weights``, one square matrix is
    drawn and used for every square layer (the first one too when
    ``n_sources == n_features``), as in the official iVAE code.
    """
    draw = _orthogonal_matrix if mixing == "orthogonal" else _well_conditioned_matrix
    first = draw(n_sources, n_features, rng)
    weights = [first]
    if n_layers == 1:
        return weights
    if reuse_weights:
        if n_sources == n_features:
            square = first
        else:
            square = draw(n_features, n_features, rng)
        weights.extend([square] * (n_layers - 1))
    else:
        weights.extend(draw(n_features, n_features, rng) for _ in range(n_layers - 1))
    return weights


def _activate(a, activation):
    if activation == "xtanh":
        return np.tanh(a) + _SLOPE * a
    return np.where(a > 0, a, _SLOPE * a)  # leaky_relu


def _apply_mlp(S, weights, activation):
    """Apply the mixing MLP: activation between layers, none after the last."""
    X = S
    for layer, W in enumerate(weights):
        X = X @ W
        if layer < len(weights) - 1:
            X = _activate(X, activation)
    return X


def _unit_variance_noise(n_samples, n_sources, source, rng):
    if source == "gaussian":
        return rng.standard_normal(size=(n_samples, n_sources))
    # Laplace with scale b has variance 2 b**2: b = 1/sqrt(2) gives unit variance.
    return rng.laplace(loc=0.0, scale=np.sqrt(0.5), size=(n_samples, n_sources))


def _observe(X, noise, binary, rng):
    """Add Gaussian noise and optionally draw Bernoulli observations."""
    if noise > 0:
        X = X + noise * rng.standard_normal(size=X.shape)
    if not np.all(np.isfinite(X)):
        raise ValueError(
            "The simulated X is not finite (it overflowed float64): lower noise "
            "and the range of the sources' scales or means."
        )
    if binary:
        p = 0.5 * (1.0 + np.tanh(0.5 * X))  # numerically stable sigmoid
        X = (rng.uniform(size=X.shape) < p).astype(np.float64)
    return np.ascontiguousarray(X, dtype=np.float64)


# --------------------------------------------------------------------------- #
# Public generators
# --------------------------------------------------------------------------- #
def make_nonstationary_sources(
    n_segments=40,
    n_per_segment=1000,
    n_sources=5,
    *,
    n_features=None,
    n_layers=3,
    activation="xtanh",
    source="gaussian",
    scale_range=(0.5, 3.0),
    scale_type="std",
    mean_range=None,
    reuse_weights=True,
    mixing="uniform",
    noise=0.0,
    binary=False,
    random_state=None,
):
    """Generate segment-wise nonstationary sources mixed by a random MLP.

    This is the "nonstationary sources" simulation of Khemakhem et al. (2020):
    the data are split into ``n_segments`` segments, the auxiliary variable ``u``
    is the segment index, and within each segment every source is zero-mean
    (unless ``mean_range`` is given) with a segment- and component-specific
    scale. The observations are ``X = f(S)`` for a random injective multilayer
    perceptron ``f``.

    Parameters
    ----------
    n_segments : int, default=40
        Number of segments (distinct values of ``u``).

    n_per_segment : int, default=1000
        Number of samples in each segment.

    n_sources : int, default=5
        Number of independent sources (latent dimension).

    n_features : int, default=None
        Number of observed features. ``None`` means ``n_sources``. Must be
        ``>= n_sources`` (undercomplete mixing is allowed).

    n_layers : int, default=3
        Number of layers of the mixing MLP. ``1`` gives a linear mixing
        (linear ICA).

    activation : {"xtanh", "leaky_relu"}, default="xtanh"
        Nonlinearity between layers: ``tanh(a) + 0.1 * a`` or a leaky ReLU with
        slope 0.1. No nonlinearity follows the last layer.

    source : {"gaussian", "laplace"}, default="gaussian"
        Distribution of the sources within a segment (unit variance before
        scaling).

    scale_range : tuple of float, default=(0.5, 3.0)
        Bounds ``(low, high)`` of the uniform distribution of the per-segment,
        per-component scales, with ``0 < low <= high``.

    scale_type : {"std", "var"}, default="std"
        What the number drawn in ``scale_range`` is: ``"std"``, the standard
        deviation of the source in that segment (the official iVAE code's
        convention: with the default range the variances span ``[0.25, 9]``,
        a strong modulation), or ``"var"``, its variance (variances in
        ``[0.5, 3]``: a weaker modulation, so a harder problem). The same
        ``random_state`` gives the same mixing and the same draws under
        both conventions. Never compare results across conventions.

        .. versionadded:: 0.2

    mean_range : tuple of float or None, default=None
        Bounds ``(low, high)``, with ``low <= high``, of the uniform
        distribution of per-segment, per-component means added to the
        sources, so that ``u`` modulates their means as well as their scales
        (the official code's ``uncentered`` option draws them in
        ``(-5, 5)``). ``None`` keeps every source zero-mean. The means are
        drawn after the sources, so with the same ``random_state`` the mixing,
        the scales and the centred sources are the same as with ``None``:
        ``S`` is the ``None`` output plus the segment's means (the
        observation noise and Bernoulli draws of ``X`` differ).

        .. versionadded:: 0.3

    reuse_weights : bool, default=True
        If True, draw one square matrix and use it in every square layer (the
        official code's behaviour). If False, draw every layer afresh, which
        gives a much harder problem.

    mixing : {"uniform", "orthogonal"}, default="uniform"
        How the mixing matrices are drawn: ``"uniform"`` entries in [-1, 1]
        with unit-norm columns and a condition number below the 25th
        percentile (the iVAE paper's code), or ``"orthogonal"`` (Haar-random
        orthogonal matrices, orthonormal rows in the undercomplete first
        layer; the kind used by the TCL and ICE-BeeM simulations).

    noise : float, default=0.0
        Standard deviation of additive Gaussian noise on ``f(S)``.

    binary : bool, default=False
        If True, ``X`` holds Bernoulli draws (0. or 1.) with success
        probability ``sigmoid(f(S) + noise)``.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for all random draws. Pass an int for reproducible
        output.

    Returns
    -------
    X : ndarray of shape (n_segments * n_per_segment, n_features)
        Observations (float64).

    u : ndarray of shape (n_segments * n_per_segment,)
        Segment index (int64, from 0 to ``n_segments - 1``); samples are ordered
        by segment.

    S : ndarray of shape (n_segments * n_per_segment, n_sources)
        True sources (float64).

    See Also
    --------
    make_continuous_aux_sources : Sources modulated by a continuous ``u``.

    Notes
    -----
    By default (``scale_type="std"``), following the official iVAE code, the
    number drawn uniformly in ``scale_range`` multiplies unit-variance noise,
    so it is the standard deviation: with the default range the variances span
    ``[0.25, 9]``. With ``scale_type="var"`` it is the variance, and its square
    root multiplies the noise.

    Each layer's matrix has entries uniform in ``[-1, 1]`` and unit-norm columns,
    and is redrawn until its condition number is at most the 25th percentile of
    the condition numbers of such matrices (estimated once per shape from 5000
    draws with a fixed seed; fewer, at least 100, for shapes wider than about
    60 x 60, whose SVDs would otherwise take minutes). With
    ``n_sources == n_features`` every matrix is invertible and both
    activations are strictly increasing, so ``f`` is invertible.

    The mixing is drawn before the sources, so with the same ``random_state``
    changing ``n_segments`` or ``n_per_segment`` keeps the same mixing function.

    References
    ----------
    I. Khemakhem, D. P. Kingma, R. P. Monti, A. Hyvärinen, "Variational
    Autoencoders and Nonlinear ICA: A Unifying Framework", AISTATS 2020.

    Examples
    --------
    >>> from skivae.datasets import make_nonstationary_sources
    >>> X, u, S = make_nonstationary_sources(
    ...     n_segments=3, n_per_segment=10, n_sources=2, random_state=0
    ... )
    >>> X.shape, u.shape, S.shape
    ((30, 2), (30,), (30, 2))
    >>> u[:12]
    array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    """
    n_segments = _check_int(n_segments, "n_segments", 1)
    n_per_segment = _check_int(n_per_segment, "n_per_segment", 1)
    n_sources, n_features, n_layers, activation, reuse_weights = _check_mixing_args(
        n_sources, n_features, n_layers, activation, reuse_weights
    )
    source = _check_option(source, "source", _SOURCES)
    lo, hi = _check_scale_range(scale_range)
    scale_type = _check_option(scale_type, "scale_type", _SCALE_TYPES)
    mean_range = _check_mean_range(mean_range)
    noise = _check_noise(noise)
    binary = _check_bool(binary, "binary")
    rng = check_random_state(random_state)

    n_samples = n_segments * n_per_segment
    mixing = _check_option(mixing, "mixing", _MIXINGS)
    weights = _draw_mixing_weights(
        n_sources, n_features, n_layers, reuse_weights, rng, mixing
    )
    scales = rng.uniform(lo, hi, size=(n_segments, n_sources))
    if scale_type == "var":
        scales = np.sqrt(scales)
    u = np.repeat(np.arange(n_segments, dtype=np.int64), n_per_segment)
    S = scales[u] * _unit_variance_noise(n_samples, n_sources, source, rng)
    if mean_range is not None:
        S = S + rng.uniform(*mean_range, size=(n_segments, n_sources))[u]
    X = _observe(_apply_mlp(S, weights, activation), noise, binary, rng)
    return X, u, S


def make_continuous_aux_sources(
    n_samples=10000,
    n_sources=5,
    *,
    n_features=None,
    n_aux=1,
    n_layers=3,
    activation="xtanh",
    source="gaussian",
    scale_type="std",
    aux_map="fourier",
    reuse_weights=True,
    mixing="uniform",
    noise=0.0,
    random_state=None,
):
    """Generate sources modulated by a continuous auxiliary variable.

    The auxiliary variable ``u`` is drawn uniformly in ``[0, 1]^n_aux``. Given
    ``u``, the sources are independent and zero-mean, and the log standard
    deviation of source ``i`` is a smooth random function ``g_i(u)`` (by
    default a random combination of random Fourier features: cosines of
    random frequencies and phases; see ``aux_map``), rescaled so that the
    standard deviation spans ``[0.5, 3]`` over the sample, as in
    :func:`make_nonstationary_sources`. Each component gets its own
    function, so the modulation is strong and differs between components, which
    is what identifiability needs. The observations are ``X = f(S)`` with the
    same random mixing MLP as in :func:`make_nonstationary_sources`.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of samples.

    n_sources : int, default=5
        Number of independent sources (latent dimension).

    n_features : int, default=None
        Number of observed features. ``None`` means ``n_sources``. Must be
        ``>= n_sources``.

    n_aux : int, default=1
        Dimension of the auxiliary variable ``u``.

    n_layers : int, default=3
        Number of layers of the mixing MLP. ``1`` gives a linear mixing.

    activation : {"xtanh", "leaky_relu"}, default="xtanh"
        Nonlinearity between layers (see :func:`make_nonstationary_sources`).

    source : {"gaussian", "laplace"}, default="gaussian"
        Conditional distribution of each source given ``u`` (unit variance
        before scaling).

    scale_type : {"std", "var"}, default="std"
        Whether the modulated scale, spanning ``[0.5, 3]`` over the sample, is
        the standard deviation (as in :func:`make_nonstationary_sources`'s
        default) or the variance (a weaker modulation).

        .. versionadded:: 0.2

    aux_map : {"fourier", "periodic", "monotone"}, default="fourier"
        The kind of random function ``g_i`` that maps ``u`` to the log-scale
        of source ``i`` (before the rescaling to ``[log 0.5, log 3]``):

        - ``"fourier"``: random Fourier features of non-integer frequencies,
          half a cycle to two cycles over the unit interval (neither periodic
          on ``[0, 1]`` nor monotone);
        - ``"periodic"``: cosines of integer frequencies, at most two cycles
          per unit along each coordinate, so ``g_i`` has period 1 in every
          coordinate of ``u`` (``u`` behaves as an angle, e.g. a time of
          day): its values at ``u_j = 0`` and ``u_j = 1`` agree;
        - ``"monotone"``: a logistic function of a random projection
          ``w_i . u``, of random steepness (from nearly linear to a clear
          S-shape), so ``g_i`` is monotone in every coordinate of ``u``.

        Each component draws its own function, so they differ. See Notes.

        .. versionadded:: 0.3

    reuse_weights : bool, default=True
        If True, one square matrix is used in every square layer; if False,
        every layer is drawn afresh.

    mixing : {"uniform", "orthogonal"}, default="uniform"
        How the mixing matrices are drawn: ``"uniform"`` entries in [-1, 1]
        with unit-norm columns and a condition number below the 25th
        percentile (the iVAE paper's code), or ``"orthogonal"`` (Haar-random
        orthogonal matrices, orthonormal rows in the undercomplete first
        layer; the kind used by the TCL and ICE-BeeM simulations).

    noise : float, default=0.0
        Standard deviation of additive Gaussian noise on ``f(S)``.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for all random draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Observations (float64).

    u : ndarray of shape (n_samples, n_aux)
        Continuous auxiliary variable (float64), uniform in ``[0, 1]``.

    S : ndarray of shape (n_samples, n_sources)
        True sources (float64).

    See Also
    --------
    make_nonstationary_sources : Sources modulated by a segment index.

    Notes
    -----
    With ``aux_map="fourier"``, each ``g_i`` uses 8 random Fourier features
    ``cos(w_k . u + b_k)`` with ``|w_k|`` uniform in ``[pi, 4 pi]`` (half a
    cycle to two cycles over the unit interval), random directions, phases
    uniform in ``[0, 2 pi]`` and standard normal weights. With
    ``aux_map="periodic"``, the 8 features are ``cos(2 pi m_k . u + b_k)``
    with integer frequency vectors ``m_k``, entries drawn in ``{-2, ..., 2}``
    (not all zero). With ``aux_map="monotone"``,
    ``g_i(u) = sigmoid(a_i (w_i . u - w_i . c_i))`` with ``w_i`` a random
    unit vector, ``c_i`` uniform in ``[0.25, 0.75]^n_aux`` (the inflection
    point lies inside the unit cube) and ``a_i`` uniform in ``[2, 10]``.
    In every case ``g_i`` is then min-max rescaled over the drawn sample to
    ``[log 0.5, log 3]``.

    Examples
    --------
    >>> from skivae.datasets import make_continuous_aux_sources
    >>> X, u, S = make_continuous_aux_sources(
    ...     n_samples=50, n_sources=2, n_features=3, n_aux=2, random_state=0
    ... )
    >>> X.shape, u.shape, S.shape
    ((50, 3), (50, 2), (50, 2))
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_sources, n_features, n_layers, activation, reuse_weights = _check_mixing_args(
        n_sources, n_features, n_layers, activation, reuse_weights
    )
    n_aux = _check_int(n_aux, "n_aux", 1)
    source = _check_option(source, "source", _SOURCES)
    scale_type = _check_option(scale_type, "scale_type", _SCALE_TYPES)
    aux_map = _check_option(aux_map, "aux_map", _AUX_MAPS)
    noise = _check_noise(noise)
    rng = check_random_state(random_state)

    mixing = _check_option(mixing, "mixing", _MIXINGS)
    weights = _draw_mixing_weights(
        n_sources, n_features, n_layers, reuse_weights, rng, mixing
    )
    u = rng.uniform(0.0, 1.0, size=(n_samples, n_aux))
    log_std = _random_smooth_log_std(u, n_sources, rng, aux_map=aux_map)
    if scale_type == "var":
        log_std = 0.5 * log_std  # the rescaled function is the log-variance
    S = np.exp(log_std) * _unit_variance_noise(n_samples, n_sources, source, rng)
    X = _observe(_apply_mlp(S, weights, activation), noise, False, rng)
    return X, u, S


def _random_smooth_log_std(
    u,
    n_sources,
    rng,
    n_basis=8,
    std_range=(0.5, 3.0),
    aux_map="fourier",
    cycles=(0.5, 2.0),
):
    """Per-component smooth random functions of ``u``, valued in log(std_range)."""
    n_aux = u.shape[1]
    if aux_map == "monotone":
        directions = rng.standard_normal(size=(n_aux, n_sources))
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        centres = rng.uniform(0.25, 0.75, size=(n_aux, n_sources))
        steepness = rng.uniform(2.0, 10.0, size=n_sources)
        offsets = np.sum(directions * centres, axis=0)
        g = 0.5 * (1.0 + np.tanh(0.5 * steepness * (u @ directions - offsets)))
    else:
        if aux_map == "periodic":
            freqs = np.zeros((n_aux, n_basis))
            for k in range(n_basis):  # integer frequencies, not all zero
                while not freqs[:, k].any():
                    freqs[:, k] = rng.randint(-2, 3, size=n_aux)
            freqs *= 2 * np.pi
        else:
            directions = rng.standard_normal(size=(n_aux, n_basis))
            directions /= np.linalg.norm(directions, axis=0, keepdims=True)
            low, high = 2 * np.pi * cycles[0], 2 * np.pi * cycles[1]
            freqs = directions * rng.uniform(low, high, size=n_basis)
        phases = rng.uniform(0.0, 2 * np.pi, size=n_basis)
        coefs = rng.standard_normal(size=(n_basis, n_sources))
        g = np.cos(u @ freqs + phases) @ coefs
    g_min, g_max = g.min(axis=0), g.max(axis=0)
    span = np.where(g_max > g_min, g_max - g_min, 1.0)
    unit = np.where(g_max > g_min, (g - g_min) / span, 0.5)
    lo, hi = np.log(std_range[0]), np.log(std_range[1])
    return lo + (hi - lo) * unit


# --------------------------------------------------------------------------- #
# Time series and spatial data
# --------------------------------------------------------------------------- #
def _spaced_coefficients(n_sources, rng, bound=_STATIONARY_AR_BOUND):
    """Distinct AR coefficients in ``[-bound, bound]``, at least a spacing apart.

    The spacing is ``min(0.2, 2 * bound / n_sources)``: 0.2 for up to 8 sources
    with the default bound, shrunk beyond so that the draw stays random. The
    sorted values are uniform among all such configurations (sorted uniform
    draws on a shortened interval, the k-th shifted by ``k * spacing``), and
    they are assigned to the components in a random order. No rejection.
    """
    spacing = min(_AR_SPACING, 2.0 * bound / n_sources)
    free = 2.0 * bound - (n_sources - 1) * spacing  # > 0 by the choice of spacing
    sorted_coefs = (
        -bound
        + np.sort(rng.uniform(0.0, free, size=n_sources))
        + spacing * np.arange(n_sources)
    )
    return sorted_coefs[rng.permutation(n_sources)]


def _ar_sources(noise, coefs, scales, step_segment):
    """First-order autoregressive sources, one filter run per segment and component.

    ``noise`` has shape ``(n_sequences, n_steps, n_sources)`` and unit variance;
    ``coefs`` and ``scales`` have shape ``(n_segments, n_sources)``; step ``t``
    uses row ``step_segment[t]``. In segment ``k`` the source follows
    ``s_t = a s_{t-1} + m sqrt(1 - a**2) e_t`` (stationary variance ``m**2``),
    and ``s_0 = m e_0`` starts every sequence afresh.
    """
    n_sequences, n_steps, n_sources = noise.shape
    S = np.empty_like(noise)
    S[:, 0] = scales[step_segment[0]] * noise[:, 0]
    # Runs of consecutive steps with the same segment (steps 1, 2, ...).
    change = np.flatnonzero(np.diff(step_segment)) + 1
    starts = np.concatenate([[1], change[change > 1]])
    stops = np.concatenate([starts[1:], [n_steps]])
    for start, stop in zip(starts, stops):
        if stop <= start:
            continue
        k = step_segment[start]
        for j in range(n_sources):
            a = coefs[k, j]
            drive = scales[k, j] * np.sqrt(1.0 - a * a) * noise[:, start:stop, j]
            S[:, start:stop, j], _ = lfilter(
                [1.0], [1.0, -a], drive, axis=1, zi=a * S[:, start - 1, j : j + 1]
            )
    return S


def make_time_sources(
    n_sequences=20,
    n_steps=1000,
    n_sources=3,
    *,
    kind="segment_ar",
    n_segments=10,
    n_features=None,
    n_layers=2,
    activation="leaky_relu",
    innovation="gaussian",
    mixing="uniform",
    noise=0.0,
    random_state=None,
):
    """Generate autoregressive time series of sources mixed by a random MLP.

    Each of the ``n_sequences`` sequences holds ``n_steps`` time steps. Every
    source is a first-order autoregressive process, independent of the other
    sources and of the other sequences::

        s_t = a * s_{t-1} + m * sqrt(1 - a**2) * e_t,

    with ``e_t`` unit-variance innovations, so that the stationary variance is
    ``m**2`` (1 unless ``kind="ar_variance"``). What is informative about the
    sources depends on ``kind``:

    - ``"segment_ar"``: each sequence is cut into ``n_segments`` consecutive
      segments and the coefficient ``a`` depends on the segment and the
      component (uniform in ``[-0.9, 0.9]``), the same in every sequence;
      ``m = 1``, so every marginal has unit variance (exactly ``N(0, 1)``
      with Gaussian innovations) and only the temporal dependence carries
      information about the segment index ``u``.
    - ``"stationary_ar"``: one coefficient per component, fixed over time and
      distinct between components; ``u`` is None. Identifiable from the
      temporal dependence with non-Gaussian (``"laplace"``) innovations: use
      the previous time steps as the auxiliary variable
      (:func:`skivae.preprocessing.lagged_rows`).
    - ``"ar_variance"``: fixed coefficients as in ``"stationary_ar"``, and the
      innovations of segment ``k`` and component ``j`` are scaled by ``m``
      uniform in ``[0.5, 3]``: the variance changes between segments, as in
      :func:`make_nonstationary_sources`, on top of the temporal dependence.

    The observations are ``X = f(S)`` with the random mixing MLP of
    :func:`make_nonstationary_sources` (one square matrix reused in every
    square layer, its ``reuse_weights=True``).

    Parameters
    ----------
    n_sequences : int, default=20
        Number of independent sequences.

    n_steps : int, default=1000
        Number of time steps in each sequence.

    n_sources : int, default=3
        Number of independent sources (latent dimension).

    kind : {"segment_ar", "stationary_ar", "ar_variance"}, default="segment_ar"
        How the sources depend on time (see above).

    n_segments : int, default=10
        Number of segments of each sequence (distinct values of ``u``), at
        most ``n_steps``. Ignored when ``kind="stationary_ar"``.

    n_features : int, default=None
        Number of observed features. ``None`` means ``n_sources``. Must be
        ``>= n_sources``.

    n_layers : int, default=2
        Number of layers of the mixing MLP. ``1`` gives a linear mixing.

    activation : {"xtanh", "leaky_relu"}, default="leaky_relu"
        Nonlinearity between layers (see :func:`make_nonstationary_sources`).

    innovation : {"gaussian", "laplace"}, default="gaussian"
        Distribution of the innovations ``e_t`` (unit variance before scaling).

    mixing : {"uniform", "orthogonal"}, default="uniform"
        How the mixing matrices are drawn (see
        :func:`make_nonstationary_sources`).

    noise : float, default=0.0
        Standard deviation of additive Gaussian noise on ``f(S)``.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for all random draws.

    Returns
    -------
    X : ndarray of shape (n_sequences * n_steps, n_features)
        Observations (float64).

    u : ndarray of shape (n_sequences * n_steps,) or None
        Segment index within the sequence (int64, from 0 to
        ``n_segments - 1``), or None when ``kind="stationary_ar"``.

    S : ndarray of shape (n_sequences * n_steps, n_sources)
        True sources (float64).

    groups : ndarray of shape (n_sequences * n_steps,)
        Sequence index of each row (int64). The sequences are stacked one after
        the other, each in time order: row ``i * n_steps + t`` is step ``t``
        of sequence ``i``.

    See Also
    --------
    make_nonstationary_sources : Independent samples modulated by a segment
        index.
    skivae.preprocessing.lagged_rows : The previous rows of each sequence, as
        a continuous auxiliary variable.

    Notes
    -----
    Segment ``k`` covers the steps ``t`` with
    ``floor(t * n_segments / n_steps) == k``, so the segment lengths differ
    by at most one when ``n_steps`` is not a multiple of ``n_segments``.

    The coefficients of ``"stationary_ar"`` and ``"ar_variance"`` lie in
    ``[-0.8, 0.8]`` and differ pairwise by at least
    ``min(0.2, 1.6 / n_sources)``: 0.2 for up to 8 sources, less beyond (at
    most 9 values in the interval can be 0.2 apart). They are drawn uniformly
    among such configurations, without rejection.

    The first value of every sequence is ``m * e_0``, a draw of the innovation
    law with the stationary variance of the first segment: the stationary law
    itself for Gaussian innovations (for Laplace innovations the stationary
    law is not Laplace, but has the same variance). Nothing carries over from
    one sequence to the next.

    The random draws come in this order: the mixing, the coefficients (and
    for ``"ar_variance"`` the scales), the innovations, the observation
    noise. So the same ``random_state`` gives the same mixing whatever the
    data's size or ``kind``.

    Examples
    --------
    >>> from skivae.datasets import make_time_sources
    >>> X, u, S, groups = make_time_sources(
    ...     n_sequences=2, n_steps=6, n_sources=2, n_segments=3, random_state=0
    ... )
    >>> X.shape, u.shape, S.shape, groups.shape
    ((12, 2), (12,), (12, 2), (12,))
    >>> u
    array([0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])
    >>> groups
    array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> _, u, _, _ = make_time_sources(2, 6, 2, kind="stationary_ar", random_state=0)
    >>> u is None
    True
    """
    n_sequences = _check_int(n_sequences, "n_sequences", 1)
    n_steps = _check_int(n_steps, "n_steps", 1)
    n_sources, n_features, n_layers, activation, _ = _check_mixing_args(
        n_sources, n_features, n_layers, activation, True
    )
    kind = _check_option(kind, "kind", _TIME_KINDS)
    segmented = kind != "stationary_ar"
    # (ignored, so not checked, without segments)
    n_segments = _check_int(n_segments, "n_segments", 1) if segmented else 1
    if segmented and n_segments > n_steps:
        raise ValueError(
            f"n_segments must be <= n_steps (every segment needs a step), got "
            f"n_segments={n_segments} > n_steps={n_steps}."
        )
    innovation = _check_option(innovation, "innovation", _SOURCES)
    mixing = _check_option(mixing, "mixing", _MIXINGS)
    noise = _check_noise(noise)
    rng = check_random_state(random_state)

    weights = _draw_mixing_weights(n_sources, n_features, n_layers, True, rng, mixing)
    if kind == "segment_ar":
        coefs = rng.uniform(
            -_SEGMENT_AR_BOUND, _SEGMENT_AR_BOUND, size=(n_segments, n_sources)
        )
        scales = np.ones((n_segments, n_sources))
    else:
        coefs = _spaced_coefficients(n_sources, rng)[np.newaxis, :]
        if kind == "ar_variance":
            scales = rng.uniform(*_INNOVATION_SCALE_RANGE, size=(n_segments, n_sources))
            coefs = np.repeat(coefs, n_segments, axis=0)
        else:
            scales = np.ones((1, n_sources))
    n_blocks = n_segments if segmented else 1
    step_segment = (np.arange(n_steps, dtype=np.int64) * n_blocks) // n_steps

    n_samples = n_sequences * n_steps
    E = _unit_variance_noise(n_samples, n_sources, innovation, rng)
    S = _ar_sources(
        E.reshape(n_sequences, n_steps, n_sources), coefs, scales, step_segment
    ).reshape(n_samples, n_sources)
    X = _observe(_apply_mlp(S, weights, activation), noise, False, rng)
    u = np.tile(step_segment, n_sequences) if segmented else None
    groups = np.repeat(np.arange(n_sequences, dtype=np.int64), n_steps)
    return X, u, S, groups


def make_spatial_sources(
    n_samples=6000,
    n_sources=3,
    *,
    n_features=None,
    n_layers=2,
    activation="leaky_relu",
    source="gaussian",
    n_basis=8,
    cycles=(0.5, 2.0),
    std_range=(0.5, 3.0),
    mixing="uniform",
    noise=0.0,
    random_state=None,
):
    """Generate spatially modulated sources mixed by a random MLP.

    The samples lie at locations ``coords`` drawn uniformly in the unit square.
    Given its location, every source is zero-mean and independent of the
    others, with a standard deviation that varies smoothly over space: the log
    standard deviation of source ``i`` is a random combination of ``n_basis``
    random Fourier features of the coordinates (by default half a cycle to
    two cycles across the square: a few bumps, not white noise), rescaled so that the
    standard deviation spans ``std_range`` over the sample. The locations are
    the auxiliary variable: ``est.fit(X, coords)``. The observations are
    ``X = f(S)`` with the random mixing MLP of
    :func:`make_nonstationary_sources` (one square matrix reused in every
    square layer, its ``reuse_weights=True``).

    Parameters
    ----------
    n_samples : int, default=6000
        Number of samples (locations).

    n_sources : int, default=3
        Number of independent sources (latent dimension).

    n_features : int, default=None
        Number of observed features. ``None`` means ``n_sources``. Must be
        ``>= n_sources``.

    n_layers : int, default=2
        Number of layers of the mixing MLP. ``1`` gives a linear mixing.

    activation : {"xtanh", "leaky_relu"}, default="leaky_relu"
        Nonlinearity between layers (see :func:`make_nonstationary_sources`).

    source : {"gaussian", "laplace"}, default="gaussian"
        Conditional distribution of each source given its location (unit
        variance before scaling).

    n_basis : int, default=8
        Number of random Fourier features in each log standard deviation:
        more gives a more irregular field.

    cycles : tuple of float, default=(0.5, 2.0)
        Bounds ``(low, high)``, with ``0 < low <= high``, of the number of
        cycles each Fourier feature makes across the unit square (its
        frequency is drawn uniformly between them, in a random direction):
        higher gives a rougher field, with more and smaller bumps.

        .. versionadded:: 0.6

    std_range : tuple of float, default=(0.5, 3.0)
        Bounds ``(low, high)``, with ``0 < low <= high``, of the standard
        deviations over the sample (the field is min-max rescaled to
        ``[log low, log high]``).

    mixing : {"uniform", "orthogonal"}, default="uniform"
        How the mixing matrices are drawn (see
        :func:`make_nonstationary_sources`).

    noise : float, default=0.0
        Standard deviation of additive Gaussian noise on ``f(S)``.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for all random draws. The mixing is drawn first, so
        the same seed gives the same mixing whatever ``n_samples``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Observations (float64).

    coords : ndarray of shape (n_samples, 2)
        Locations (float64), uniform in ``[0, 1]^2``.

    S : ndarray of shape (n_samples, n_sources)
        True sources (float64).

    See Also
    --------
    make_continuous_aux_sources : The same kind of modulation by a continuous
        ``u`` of any dimension.

    Examples
    --------
    >>> from skivae.datasets import make_spatial_sources
    >>> X, coords, S = make_spatial_sources(
    ...     n_samples=100, n_sources=2, n_features=4, random_state=0
    ... )
    >>> X.shape, coords.shape, S.shape
    ((100, 4), (100, 2), (100, 2))
    >>> bool(coords.min() >= 0 and coords.max() <= 1)
    True
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    n_sources, n_features, n_layers, activation, _ = _check_mixing_args(
        n_sources, n_features, n_layers, activation, True
    )
    source = _check_option(source, "source", _SOURCES)
    n_basis = _check_int(n_basis, "n_basis", 1)
    cycles = _check_scale_range(cycles, "cycles")
    if not np.isfinite(2 * np.pi * cycles[1]):
        raise ValueError(f"cycles must be at most 1e307, got {cycles!r}.")
    std_range = _check_scale_range(std_range, "std_range")
    mixing = _check_option(mixing, "mixing", _MIXINGS)
    noise = _check_noise(noise)
    rng = check_random_state(random_state)

    weights = _draw_mixing_weights(n_sources, n_features, n_layers, True, rng, mixing)
    coords = rng.uniform(0.0, 1.0, size=(n_samples, 2))
    log_std = _random_smooth_log_std(
        coords, n_sources, rng, n_basis=n_basis, std_range=std_range, cycles=cycles
    )
    S = np.exp(log_std) * _unit_variance_noise(n_samples, n_sources, source, rng)
    X = _observe(_apply_mlp(S, weights, activation), noise, False, rng)
    return X, coords, S
