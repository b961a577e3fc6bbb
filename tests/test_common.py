"""scikit-learn's estimator checks on every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skivae import IdentifiableVAE, NonlinearICA

FAST = dict(max_iter=3, hidden_layer_sizes=(8,), batch_size=16, random_state=0)


_SQUARE = (
    "this check sets n_components=1 on data with several features, and "
    "method='flow' is square (n_components must equal n_features): it raises "
    "the ValueError that tells the user to use method='ivae'"
)


def _expected_failures(estimator):
    if isinstance(estimator, NonlinearICA) and estimator.method == "flow":
        return {
            "check_dont_overwrite_parameters": _SQUARE,
            "check_methods_sample_order_invariance": _SQUARE,
            "check_methods_subset_invariance": _SQUARE,
            "check_fit2d_predict1d": _SQUARE,
        }
    return {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(
    [
        IdentifiableVAE(**FAST),
        NonlinearICA(**FAST),  # method="flow", the default
        NonlinearICA(method="ivae", **FAST),
        NonlinearICA(method="tcl", **FAST),
        NonlinearICA(method="gcl", **FAST),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_api(estimator, check):
    check(estimator)
