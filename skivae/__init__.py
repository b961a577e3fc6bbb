"""skivae: identifiable VAEs and nonlinear ICA as scikit-learn estimators.

The estimators run a PyTorch core and follow the scikit-learn API: ``fit(X, u)``
takes the auxiliary variable ``u`` in scikit-learn's ``y`` position, so they
work in Pipelines and hyper-parameter searches.
"""

from skivae._aux import IdentifiabilityWarning
from skivae._core.training import CompileFallbackWarning
from skivae._ivae import IdentifiableVAE
from skivae._nica import NonlinearICA
from skivae._persistence import load
from skivae._version import __version__

__all__ = [
    "CompileFallbackWarning",
    "IdentifiableVAE",
    "IdentifiabilityWarning",
    "NonlinearICA",
    "__version__",
    "load",
]
