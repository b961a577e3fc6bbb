"""The public estimator classes by name, for code that must find them without
importing the estimator modules (persistence): each class registers itself
when it is defined (``_BaseLatentEstimator.__init_subclass__``)."""

#: class name -> class, for every public (not underscored) estimator class
ESTIMATORS = {}


def register(cls):
    """Add ``cls`` to :data:`ESTIMATORS` unless its name starts with ``_``."""
    if not cls.__name__.startswith("_"):
        ESTIMATORS[cls.__name__] = cls
    return cls
