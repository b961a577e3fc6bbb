import doctest
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal

import skivae.preprocessing
from skivae.datasets import make_time_sources
from skivae.preprocessing import lagged_rows

nan = np.nan


def _interleaved():
    """Two groups, interleaved and labelled by strings, with two features."""
    X = np.array(
        [
            [1.0, -1.0],  # a0
            [10.0, -10.0],  # b0
            [2.0, -2.0],  # a1
            [3.0, -3.0],  # a2
            [20.0, -20.0],  # b1
            [30.0, -30.0],  # b2
            [4.0, -4.0],  # a3
        ]
    )
    groups = np.array(["a", "b", "a", "a", "b", "b", "a"])
    return X, groups


def test_one_lag_interleaved_groups_exact():
    X, groups = _interleaved()
    U, keep = lagged_rows(X, groups)
    expected = np.array(
        [
            [nan, nan],
            [nan, nan],
            [1.0, -1.0],
            [2.0, -2.0],
            [10.0, -10.0],
            [20.0, -20.0],
            [3.0, -3.0],
        ]
    )
    assert U.dtype == np.float64 and U.shape == (7, 2)
    assert_array_equal(U, expected)  # NaN in the same places
    assert keep.dtype == bool
    assert_array_equal(keep, [False, False, True, True, True, True, True])


def test_two_lags_interleaved_groups_exact():
    X, groups = _interleaved()
    U, keep = lagged_rows(X, groups, n_lags=2)
    expected = np.array(
        [
            [nan, nan, nan, nan],
            [nan, nan, nan, nan],
            [1.0, -1.0, nan, nan],
            [2.0, -2.0, 1.0, -1.0],
            [10.0, -10.0, nan, nan],
            [20.0, -20.0, 10.0, -10.0],
            [3.0, -3.0, 2.0, -2.0],
        ]
    )
    assert U.shape == (7, 4)
    assert_array_equal(U, expected)
    assert_array_equal(keep, [False, False, False, True, False, True, True])
    # The kept rows have no NaN; the others have some.
    assert not np.isnan(U[keep]).any()
    assert np.isnan(U[~keep]).any(axis=1).all()


def test_group_label_types_and_order_do_not_matter():
    X, groups = _interleaved()
    U, keep = lagged_rows(X, groups, n_lags=2)
    # Integer labels, in decreasing order of first appearance; a Series.
    codes = np.where(groups == "a", 7, -3)
    for g in (codes, pd.Series(codes), list(groups)):
        U2, keep2 = lagged_rows(X, g, n_lags=2)
        assert_array_equal(U2, U)
        assert_array_equal(keep2, keep)


def test_no_groups_is_one_sequence_and_dataframe_input():
    X = np.arange(12, dtype=float).reshape(6, 2)
    U, keep = lagged_rows(pd.DataFrame(X, columns=["p", "q"]), n_lags=3)
    assert isinstance(U, np.ndarray) and U.shape == (6, 6)
    assert_array_equal(keep, [False, False, False, True, True, True])
    for k in (1, 2, 3):
        block = U[:, 2 * (k - 1) : 2 * k]
        assert_array_equal(block[k:], X[:-k])
        assert np.isnan(block[:k]).all()
    # Same as an explicit single group.
    U1, keep1 = lagged_rows(X, np.zeros(6, dtype=int), n_lags=3)
    assert_array_equal(U1, U)
    assert_array_equal(keep1, keep)


def test_nan_in_X_propagates_but_keep_is_about_history():
    X = np.array([[1.0], [nan], [3.0], [4.0]])
    U, keep = lagged_rows(X)
    assert_array_equal(U.ravel(), [nan, 1.0, nan, 3.0])
    assert_array_equal(keep, [False, True, True, True])


def test_more_lags_than_rows_and_single_rows():
    X = np.arange(6, dtype=float).reshape(3, 2)
    U, keep = lagged_rows(X, n_lags=5)
    assert U.shape == (3, 10) and not keep.any()
    # The previous rows that exist are filled in, the others are NaN.
    expected = np.full((3, 10), nan)
    expected[1, :2] = X[0]
    expected[2, :2] = X[1]
    expected[2, 2:4] = X[0]
    assert_array_equal(U, expected)
    U, keep = lagged_rows(X, [0, 1, 2])  # every group is a single row
    assert np.isnan(U).all() and not keep.any()
    U, keep = lagged_rows(np.ones((1, 1)))
    assert U.shape == (1, 1) and not keep.any()


def test_time_sources_round_trip():
    # Shuffled rows of stacked sequences: lagged_rows follows each sequence.
    X, _, _, groups = make_time_sources(
        n_sequences=5, n_steps=30, n_sources=2, kind="stationary_ar", random_state=0
    )
    U, keep = lagged_rows(X, groups, n_lags=2)
    assert keep.sum() == 5 * 28
    steps = np.tile(np.arange(30), 5)
    assert_array_equal(keep, steps >= 2)
    assert_array_equal(U[keep][:, :2], X[np.flatnonzero(keep) - 1])
    assert_array_equal(U[keep][:, 2:], X[np.flatnonzero(keep) - 2])
    # Any reordering of the sequences among each other gives the same rows
    # (the order within a sequence is kept).
    perm = np.argsort(np.random.RandomState(0).permutation(5)[groups], kind="stable")
    U_p, keep_p = lagged_rows(X[perm], groups[perm], n_lags=2)
    assert_array_equal(U_p, U[perm])
    assert_array_equal(keep_p, keep[perm])


def test_interleaving_rows_of_sequences():
    # Round-robin interleaving of the sequences' rows: same lagged values.
    X, _, _, groups = make_time_sources(
        n_sequences=4, n_steps=10, n_sources=2, n_segments=2, random_state=1
    )
    U, keep = lagged_rows(X, groups)
    order = np.lexsort((groups, np.tile(np.arange(10), 4)))  # step, then group
    assert not np.all(np.diff(groups[order]) >= 0)
    U_i, keep_i = lagged_rows(X[order], groups[order])
    assert_array_equal(U_i, U[order])
    assert_array_equal(keep_i, keep[order])


BAD = [
    ({"X": np.ones(5)}, "2D|X"),
    ({"X": np.ones((2, 2, 2))}, "X"),
    ({"X": np.array([[1.0], [np.inf]])}, "X"),
    ({"X": np.array([["a"], ["b"]])}, "X"),
    ({"X": np.ones((0, 2))}, "X|sample"),
    ({"groups": [0, 1]}, "groups"),
    ({"groups": np.zeros((4, 1))}, "groups"),
    ({"groups": [0.0, nan, 1.0, 1.0]}, "groups"),
    ({"groups": [0, "a", 1, None]}, "groups"),
    ({"groups": np.array(["a", None, "b", "b"], dtype=object)}, "missing labels"),
    # NaT in a datetime64 array was a sequence of its own
    ({"groups": np.array(["2020-01-01", "NaT", "2020-01-01", "NaT"], "M8[D]")}, "NaT"),
    ({"n_lags": 0}, "n_lags"),
    ({"n_lags": 1.5}, "n_lags"),
    ({"n_lags": True}, "n_lags"),
    ({"n_lags": None}, "n_lags"),
]


@pytest.mark.parametrize("params, match", BAD)
def test_bad_arguments(params, match):
    kw = {"X": np.ones((4, 2)), "groups": None, "n_lags": 1, **params}
    with pytest.raises(ValueError, match=match):
        lagged_rows(**kw)


def test_numpy_integer_n_lags():
    U, keep = lagged_rows(np.ones((4, 1)), n_lags=np.int64(2))
    assert U.shape == (4, 2) and keep.sum() == 2


def test_module_does_not_import_torch():
    # Load the module file on its own (``import skivae`` imports torch).
    path = Path(skivae.preprocessing.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('pre', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_docstring_examples():
    result = doctest.testmod(skivae.preprocessing, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
