"""The only module that imports private or version-specific scikit-learn API.

Supported: scikit-learn 1.6 to 1.9. When scikit-learn moves one of these names,
this file is the one place to change.
"""

from sklearn.base import _fit_context  # noqa: F401  (private; stable 1.6-1.9)
from sklearn.utils import _safe_indexing  # noqa: F401  (documented helper; 1.6-1.9)
from sklearn.utils._param_validation import (  # noqa: F401  (private; stable 1.6-1.9)
    HasMethods,
    Interval,
    Options,
    StrOptions,
)
from sklearn.utils.validation import check_is_fitted, validate_data  # noqa: F401
