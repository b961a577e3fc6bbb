"""Pure-PyTorch core of skivae: networks, priors, the iVAE module and training.

Nothing in this sub-package imports scikit-learn or sees a numpy array; the
estimators in :mod:`skivae` convert their inputs to tensors before calling it.
"""
