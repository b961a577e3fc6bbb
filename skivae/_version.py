"""The package version, in a module of its own so that any module can read it
without importing the package (and, through it, every estimator)."""

__version__ = "0.10.0"
