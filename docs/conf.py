"""Sphinx configuration for the skivae documentation.

Build (from the repository root, output outside the source tree)::

    pip install -e ".[docs]"
    python -m sphinx -b html docs /tmp/skivae_docs_build

Environment variables:

``SKIVAE_DOCS_PLOT_GALLERY=0``
    Build without running the example scripts (their pages then show code
    only), which is much faster.
``SKIVAE_DOCS_OFFLINE=1``
    Do not fetch the intersphinx inventories (for machines without network
    access; CI builds this way); links to numpy, scikit-learn and torch are
    then not resolved, and the cross-references inside the docstrings of
    methods inherited from scikit-learn (``set_output``,
    ``set_fit_request``, ...) are rendered as plain text.
"""

import os
import re
import sys
from datetime import date

# The package is normally installed (``pip install -e .``); fall back to the
# source tree so that a plain checkout can build the docs as well.
sys.path.insert(0, os.path.abspath(".."))

import skivae  # noqa: E402


def _env_flag(name, default):
    value = os.environ.get(name, default).strip().lower()
    return value not in {"0", "false", "no", ""}


OFFLINE = _env_flag("SKIVAE_DOCS_OFFLINE", "0")
PLOT_GALLERY = _env_flag("SKIVAE_DOCS_PLOT_GALLERY", "1")

# -- Project information -----------------------------------------------------

project = "skivae"
author = "skivae developers"
copyright = f"{date.today().year}, {author}"
version = skivae.__version__
release = skivae.__version__

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"

# autodoc / autosummary: one generated page per public object.
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"

# numpydoc renders the Parameters/Attributes sections; the autosummary
# class template already lists the methods, so numpydoc must not add a
# second member table.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = True
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "array-like": ":term:`array-like <array_like>`",
    "RandomState": "numpy.random.RandomState",
    "Module": "torch.nn.Module",
    "FastICA": "sklearn.decomposition.FastICA",
}
numpydoc_xref_ignore = {
    "of",
    "shape",
    "or",
    "default",
    "optional",
    "instance",
    "n_samples",
    "n_features",
    "n_components",
    "n_aux",
    "k_true",
    "k_pred",
    "min",
}

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "torch": ("https://pytorch.org/docs/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
}

if OFFLINE:
    intersphinx_mapping = {}
    # Type cross-references would point at the missing inventories.
    numpydoc_xref_param_type = False

# :ref:`text <label>`, :ref:`label`, :term:`text <term>`, :term:`term`
_SKLEARN_ROLE = re.compile(r":(?:ref|term):`(?:([^`<]*?)\s*<[^`>]*>|([^`]*))`")


def _plain_sklearn_refs(app, what, name, obj, options, lines):
    """Offline: unlink the roles in docstrings that scikit-learn wrote.

    Inherited methods such as ``set_output`` point at labels and glossary
    terms of scikit-learn's own documentation, which only its intersphinx
    inventory resolves. skivae's own docstrings are left alone, so a broken
    reference of ours still fails the build.
    """
    module = getattr(obj, "__module__", None) or ""
    if not OFFLINE or not module.startswith("sklearn"):
        return
    # A role may span lines: substitute in the joined text.
    text = _SKLEARN_ROLE.sub(lambda m: m.group(1) or m.group(2), "\n".join(lines))
    lines[:] = text.split("\n")


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_refs)

# -- sphinx-gallery ----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("skivae",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skivae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    # Show printed output only, not the repr of a cell's last expression
    # (the Axes or Text objects that matplotlib calls return).
    "capture_repr": (),
    # Keep the build's timing table out of the source tree.
    "write_computation_times": False,
    # Run the examples (default) or only render their code.
    "plot_gallery": "True" if PLOT_GALLERY else "False",
}

# -- HTML output -------------------------------------------------------------

html_theme = "alabaster"
# Wide enough for the gallery's code lines (88 characters) without scrolling.
html_theme_options = {"page_width": "1180px", "sidebar_width": "240px"}
html_title = f"skivae {release}"
html_static_path = []
