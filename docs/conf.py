"""Sphinx configuration of the docs site: Markdown pages (MyST), the operators' and hooks' reference from their
docstrings, and the `[cronium]` options table read from the provider's own declaration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# autodoc imports the operators, and so Airflow, which writes an airflow.cfg into its home when it has none:
# a build leaves the user's ~/airflow alone
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow_home"))
sys.path.insert(0, str(DOCS.parent))  # this checkout's cronium_provider, for autodoc and the options table
sys.path.insert(0, str(DOCS / "_ext"))

project = "airflow-provider-cronium"
author = "airflow-provider-cronium contributors"
copyright = "the airflow-provider-cronium contributors"

extensions = ["myst_parser", "sphinx.ext.autodoc", "cronium_options"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]

# Headings get anchors as GitHub makes them, so one link works on GitHub and on the site.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False  # a method shows its own docstring, not Airflow's BaseOperator.execute's
autodoc_typehints = "none"  # the signatures and docstrings say it; Airflow's own types are not documented here
autodoc_default_options = {"members": True, "show-inheritance": True}

# Airflow's own classes (the operators' and hooks' bases) are documented on Airflow's site, which a build
# made offline cannot link to: they are named, unlinked.
nitpick_ignore_regex = [("py:class", r"airflow\..*")]

html_theme = "furo"
html_title = "airflow-provider-cronium"
html_static_path: list[str] = []
