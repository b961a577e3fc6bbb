"""The public estimator classes by name, for code that must find them without
importing the estimator modules (persistence): each class registers itself
when it is defined (``_BaseLatentEstimator.__init_subclass__``)."""

#: class name -> class, for every public (not underscored) estimator class
#: of skivae itself
ESTIMATORS = {}


def register(cls):
    """Add ``cls`` to :data:`ESTIMATORS` if it is one of skivae's own public
    classes: a user's subclass is not registered, so saving it is refused
    and a subclass that reuses a name cannot take the place of skivae's class
    when files are saved or loaded."""
    own = cls.__module__ == "skivae" or cls.__module__.startswith("skivae.")
    if own and not cls.__name__.startswith("_"):
        ESTIMATORS[cls.__name__] = cls
    return cls
