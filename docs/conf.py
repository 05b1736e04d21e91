"""Sphinx configuration: MyST pages executed by myst-nb, the API reference by autodoc.

Build (warnings are errors, every code cell runs):
    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The pages' kernels import this checkout's code, installed or not.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), str(ROOT / "docs"), os.environ.get("PYTHONPATH")) if p
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

project = "jaxnets"
author = "jaxnets authors"
copyright = "jaxnets authors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "README.md"]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}

# Every code cell runs at build time, and an error stops the build: a page cannot drift.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
nb_render_markdown_format = "myst"
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = "jaxnets"
html_static_path = ["_static"]
html_css_files = ["jaxnets.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
