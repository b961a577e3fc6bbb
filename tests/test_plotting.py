"""skivae.plotting: what each helper draws, on the Agg backend."""

import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from skivae import IdentifiableVAE  # noqa: E402
from skivae.plotting import (  # noqa: E402
    plot_correlation_matrix,
    plot_latents,
    plot_loss_curve,
    plot_sources,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit_tiny(**params):
    from skivae.datasets import make_nonstationary_sources

    X, u, _ = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    est = IdentifiableVAE(max_iter=4, hidden_layer_sizes=(8,), random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, u)


# ---------------------------------------------------------------- loss curve
def test_loss_curve_from_values():
    fig, ax = plt.subplots()
    out = plot_loss_curve([4.0, 3.0, 2.5], ax=ax)
    assert out is ax
    (line,) = ax.lines
    assert_array_equal(line.get_xdata(), [1, 2, 3])
    assert_array_equal(line.get_ydata(), [4.0, 3.0, 2.5])
    assert ax.get_xlabel() == "epoch"


def test_loss_curve_from_estimator_with_validation():
    est = _fit_tiny(early_stopping=True, validation_fraction=0.2)
    ax = plot_loss_curve(est)
    train, val = ax.lines
    assert_allclose(train.get_ydata(), est.loss_curve_)
    assert_array_equal(train.get_xdata(), np.arange(1, est.n_iter_ + 1))
    assert_allclose(val.get_ydata(), -np.asarray(est.validation_scores_))
    assert "IdentifiableVAE" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "training loss",
        "validation loss",
    ]


def test_loss_curve_validation_sits_on_the_epochs_it_was_measured():
    # A warm start that turns early stopping on: the training curve holds
    # every epoch, the validation scores those of the second fit only.
    from skivae.datasets import make_nonstationary_sources

    X, u, _ = make_nonstationary_sources(6, 40, 2, n_layers=1, random_state=0)
    est = _fit_tiny(warm_start=True)
    est.set_params(early_stopping=True, validation_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, u)
    n_train, n_val = len(est.loss_curve_), len(est.validation_scores_)
    assert n_val < n_train
    _, val = plot_loss_curve(est).lines
    assert_array_equal(val.get_xdata(), np.arange(n_train - n_val + 1, n_train + 1))


def test_loss_curve_without_validation_has_one_line():
    est = _fit_tiny()
    ax = plot_loss_curve(est)
    assert len(ax.lines) == 1
    assert_allclose(ax.lines[0].get_ydata(), est.loss_curve_)


def test_loss_curve_of_a_pipeline_or_search_is_its_estimators():
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skivae.datasets import make_nonstationary_sources

    X, u, _ = make_nonstationary_sources(4, 40, 2, random_state=0)
    pipe = make_pipeline(StandardScaler(), IdentifiableVAE(max_iter=2, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(
            pipe, {"identifiablevae__max_iter": [2, 3]}, cv=KFold(2)
        ).fit(X, u)
    best = search.best_estimator_[-1]
    for fitted in (search, search.best_estimator_):
        ax = plot_loss_curve(fitted)
        assert_allclose(ax.lines[0].get_ydata(), best.loss_curve_)
        assert ax.get_title() == "IdentifiableVAE training"
    with pytest.raises(ValueError, match="IdentifiableVAE has no loss_curve_"):
        plot_loss_curve(pipe)  # unfitted: names the estimator, not the Pipeline


def test_loss_curve_rejects_unfitted_estimator_and_2d():
    with pytest.raises(ValueError, match="no loss_curve_: fit it first"):
        plot_loss_curve(IdentifiableVAE())
    with pytest.raises(ValueError, match="1-D"):
        plot_loss_curve(np.ones((3, 2)))
    # not "contains NaN" (None) or a numpy TypeError (a number)
    for bad in (None, 3.0):
        with pytest.raises(ValueError, match="a fitted estimator .* or a 1-D"):
            plot_loss_curve(bad)


# ------------------------------------------------------------------- latents
def test_latents_scatter_points_and_label_colours(rng):
    Z = rng.normal(size=(60, 3))
    u = np.array(["b", "a", "c"] * 20)
    ax = plot_latents(Z, u, components=(2, 0))
    (points,) = ax.collections
    assert_allclose(points.get_offsets(), Z[:, [2, 0]])
    # Labels become codes 0..n-1 in sorted order: a=0, b=1, c=2.
    assert_array_equal(points.get_array(), np.tile([1, 0, 2], 20))
    assert ax.get_xlabel() == "latent 2" and ax.get_ylabel() == "latent 0"
    colorbar = points.colorbar
    assert [t.get_text() for t in colorbar.ax.get_yticklabels()] == ["a", "b", "c"]


def test_latents_continuous_u_and_no_u(rng):
    Z = rng.normal(size=(40, 2))
    t = np.linspace(0.0, 1.0, 40)
    ax = plot_latents(Z, t)
    assert_allclose(ax.collections[0].get_array(), t)
    ax = plot_latents(Z)
    assert ax.collections[0].get_array() is None
    assert ax.collections[0].get_offsets().shape == (40, 2)


def test_latents_bad_input(rng):
    Z = rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="out of range"):
        plot_latents(Z, components=(0, 2))
    for bad in [(0.7, 1.2), (0, True), 1, (0, 1, 1)]:
        with pytest.raises(ValueError, match="components must be a pair"):
            plot_latents(Z, components=bad)
    with pytest.raises(ValueError, match="one value per row"):
        plot_latents(Z, u=np.arange(9))
    # Labels that cannot be sorted or are missing: errors naming u.
    for labels, match in [
        (np.array(["a", None] * 5, dtype=object), "missing labels"),
        (np.array(["a", 1] * 5, dtype=object), "one comparable type"),
        (np.array(["2020-01-01", "NaT"] * 5, dtype="datetime64[D]"), "missing"),
    ]:
        with pytest.raises(ValueError, match=match):
            plot_latents(Z, u=labels)
    # A negative index counts from the end; the label names the real column.
    ax = plot_latents(Z, components=(-1, 0))
    assert ax.get_xlabel() == "latent 1"
    assert_allclose(ax.collections[0].get_offsets()[:, 0], Z[:, 1])


# -------------------------------------------------------- correlation matrix
def test_correlation_matrix_image_and_matching(rng):
    S = rng.laplace(size=(400, 3))
    # Component 0 estimates source 1, component 1 source 2, component 2 source 0.
    Z = np.column_stack([-2 * S[:, 1], S[:, 2] + 0.5 * S[:, 0], S[:, 0]])
    ax = plot_correlation_matrix(S, Z)
    expected = np.abs(np.corrcoef(S, Z, rowvar=False)[:3, 3:])
    assert_allclose(ax.images[0].get_array(), expected, atol=1e-12)
    # Each matched cell is outlined by a unit square centred on
    # (x, y) = (estimated component, true source).
    assert all(p.get_width() == 1 and p.get_height() == 1 for p in ax.patches)
    centres = [(p.get_x() + 0.5, p.get_y() + 0.5) for p in ax.patches]
    assert sorted(centres) == [
        (0, 1),
        (1, 2),
        (2, 0),
    ]
    mcc = (expected[1, 0] + expected[2, 1] + expected[0, 2]) / 3
    assert ax.get_title() == f"MCC (pearson) = {mcc:.3f}"
    assert len(ax.texts) == 9


def test_correlation_matrix_spearman_rectangular(rng):
    S = rng.normal(size=(300, 2))
    Z = np.column_stack([np.exp(S[:, 0]), rng.normal(size=300), S[:, 1] ** 3])
    ax = plot_correlation_matrix(S, Z, method="spearman", annotate=False)
    C = ax.images[0].get_array()
    assert C.shape == (2, 3)
    assert_allclose(C[0, 0], 1.0) and assert_allclose(C[1, 2], 1.0)
    assert len(ax.texts) == 0
    with pytest.raises(ValueError, match="method"):
        plot_correlation_matrix(S, Z, method="kendall")


# ------------------------------------------------------------------- sources
def test_sources_pairs_flipped_and_subsampled(rng):
    S = rng.laplace(size=(500, 2))
    Z = np.column_stack([np.tanh(S[:, 1]), -S[:, 0]])
    axes = plot_sources(S, Z, max_points=100)
    assert len(axes) == 2
    ax0, ax1 = axes
    xy0 = np.asarray(ax0.collections[0].get_offsets())
    assert xy0.shape == (100, 2)
    # Source 0 is matched with component 1, flipped: y = -(-s0) = s0.
    assert_allclose(xy0[:, 1], xy0[:, 0])
    assert ax0.get_ylabel() == "-component 1"
    assert ax0.get_xlabel() == "true source 0"
    assert ax0.get_title() == "|r| = 1.00"
    xy1 = np.asarray(ax1.collections[0].get_offsets())
    assert_allclose(xy1[:, 1], np.tanh(xy1[:, 0]))
    assert ax1.get_ylabel() == "component 0"


def test_sources_flip_by_the_sign_of_the_chosen_correlation():
    # A monotone component whose Pearson r is negative but Spearman's is
    # positive: with method="spearman" it is shown as it is, not flipped.
    s = np.linspace(0.01, 1, 200)
    z = s.copy()
    z[-3:] = -1e4  # three outliers turn Pearson's r negative
    assert np.corrcoef(s, z)[0, 1] < 0
    (ax,) = plot_sources(s[:, None], z[:, None], method="spearman")
    assert ax.get_ylabel() == "component 0"
    assert_allclose(ax.collections[0].get_offsets()[:, 1], z)
    (ax,) = plot_sources(s[:, None], z[:, None])
    assert ax.get_ylabel() == "-component 0"


def test_sources_uses_given_axes():
    S = np.random.RandomState(1).normal(size=(50, 3))
    fig, axes = plt.subplots(3, 1)
    out = plot_sources(S, S, axes=axes, max_points=None)
    assert all(a is b for a, b in zip(out, axes))
    assert np.asarray(out[2].collections[0].get_offsets()).shape == (50, 2)
    with pytest.raises(ValueError, match="one Axes per matched pair"):
        plot_sources(S, S, axes=axes[:2])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_points must be a positive"):
            plot_sources(S, S, axes=axes, max_points=bad)


# ------------------------------------------------------- missing matplotlib
@pytest.mark.parametrize(
    "call",
    [
        lambda: plot_loss_curve([1.0, 0.5]),
        lambda: plot_latents(np.ones((3, 2))),
        lambda: plot_correlation_matrix(np.eye(3), np.eye(3)),
        lambda: plot_sources(np.eye(3), np.eye(3)),
    ],
)
def test_missing_matplotlib_names_the_extra(monkeypatch, call):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install skivae\[plot\]"):
        call()
