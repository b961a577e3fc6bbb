"""Sphinx configuration for the skivae documentation.

Build (from the repository root, output outside the source tree)::

    pip install -e ".[docs]"
    python -m sphinx -b html docs /tmp/skivae_docs_build

Set ``SKIVAE_DOCS_PLOT_GALLERY=0`` to build without running the example
scripts (their pages then show code only), which is much faster.
"""

import os
import sys
from datetime import date

# The package is normally installed (``pip install -e .``); fall back to the
# source tree so that a plain checkout can build the docs as well.
sys.path.insert(0, os.path.abspath(".."))

import skivae  # noqa: E402

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
autodoc_default_options = {"members": True, "inherited-members": True}
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
    "n_features_in_",
    "n_components",
    "n_components_",
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

# -- sphinx-gallery ----------------------------------------------------------


def _env_flag(name, default="True"):
    return os.environ.get(name, default).strip().lower() not in {"0", "false", "no", ""}


sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("skivae",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skivae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    # Run the examples (default) or only render their code.
    "plot_gallery": "True" if _env_flag("SKIVAE_DOCS_PLOT_GALLERY") else "False",
}

# -- HTML output -------------------------------------------------------------

html_theme = "alabaster"
html_title = f"skivae {release}"
html_static_path = []
