"""Sphinx configuration of the API reference (``.ci/steps/post-40-docs.sh`` builds it).

Build: ``pip install -e ".[docs]" && python -m sphinx -W --keep-going docs/api build/api``.
The pages are made from the docstrings (autodoc), written in Google style (napoleon) with
Sphinx's cross-reference roles (``:class:`EchoServer```), which autodoc turns into links.
"""

from __future__ import annotations

import os
import sys

# The checkout, whether or not it is installed (an editable install adds the same folder).
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import mesiboscript

project = "mesiboscript"
release = version = mesiboscript.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    # Members a public class gets from a private base (addEventListener from _eventtarget), not
    # those of builtins (int.to_bytes on the IntEnums, Exception.args).
    "inherited-members": "int,Enum,IntEnum,BaseException,Exception,OSError,str,tuple,dict",
    "show-inheritance": True,
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" sections as :ivar: fields, so they do not repeat the members autodoc documents.
napoleon_use_ivar = True

html_theme = "alabaster"  # ships with Sphinx: no theme dependency
html_title = f"mesiboscript {release} API reference"
exclude_patterns = ["_build"]
