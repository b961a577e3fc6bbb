"""scikit-learn's estimator checks on every public estimator."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skivae import IdentifiableVAE, NonlinearICA

FAST = dict(max_iter=3, hidden_layer_sizes=(8,), batch_size=16, random_state=0)


def _expected_failures(estimator):
    return {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(
    [
        IdentifiableVAE(**FAST),
        NonlinearICA(**FAST),
        NonlinearICA(method="tcl", **FAST),
        NonlinearICA(method="gcl", **FAST),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_api(estimator, check):
    check(estimator)
