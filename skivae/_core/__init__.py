"""Pure-PyTorch core of skivae: the models and the loop that trains them.

- ``base.py``: :class:`~skivae._core.base.LatentModel`, the interface every
  model implements (``loss``, ``score_samples``, ``features``).
- The models: ``elbo.py`` (the iVAE) and ``contrastive.py`` (TCL and GCL),
  built from ``nets.py`` (MLPs, Gaussian heads) and ``priors.py`` (p(z|u)).
- ``training.py``: :func:`~skivae._core.training.train`, which fits any
  ``LatentModel`` through that interface.
- ``_torch_utils.py``: devices, scoped seeding and threads, and the
  numpy/tensor conversions the estimators use.

Nothing in this sub-package imports scikit-learn. Models and ``train`` take
and return tensors; numpy arrays cross over only through ``to_tensor`` and
``to_numpy``, which the estimators in :mod:`skivae` call.
"""
