"""Sphinx configuration of the docs site: Markdown pages (MyST), the reference from the docstrings.

Build: `sphinx-build -W --keep-going -n -b html docs <out>` (what `.ci/run` runs); needs the ``docs`` extra.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from docutils import nodes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # the package as checked out, installed or not

project = "attempt"
author = "the attempt maintainers"
copyright = "the attempt maintainers, Apache-2.0"
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# The pictures in docs/ belong to the README; the site shows them only where a page names them.
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# The docstrings are Google-style with `single backticks` for code, as in Markdown: render those as code
# rather than as the reST default (a citation-styled italic).
default_role = "code"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True

# Intersphinx is off (the build runs offline), so references to other projects (torch, transformers, the
# standard library) have nowhere to point. Nitpicky checks what can work: every reference into `attempt`.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!attempt\.).*")]
# A TypeVar has no page of its own to point to.
nitpick_ignore = [("py:class", "attempt.modeling.families.Model")]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "attempt"
html_static_path: list[str] = []
html_show_sourcelink = False


def resolve_reexport(app, env, node, contnode):
    """A reference by the public path of a re-exported name (`attempt.tasks.UnknownTaskError`) resolves to
    the page of the module that defines it (`attempt.tasks.base`), where autodoc documents it."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not target.startswith("attempt."):
        return None
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    home = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if home == target:
        return None
    py = env.get_domain("py")
    return py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], home, node, contnode)


def last_change(path: str) -> str:
    """ "commit abc1234 of 2026-12-02": the last commit that changed a repository file's content (a commit that
    only moved it does not count), with what the working tree adds ("not committed yet", "changed since");
    "" where git cannot tell."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args, "--", path], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout if done.returncode == 0 else ""

    changed = git("status", "--porcelain").strip()
    # Each commit as "\0<sha> <date>" then its "<status>\t<path>..." line; R100 is a move with no change.
    for entry in git("log", "--follow", "-M", "--name-status", "--format=%x00%h %cs").split("\0")[1:]:
        stamp, _, files = entry.partition("\n")
        if not files.strip().startswith("R100"):
            sha, date = stamp.split()
            return f"commit {sha} of {date}" + (" (changed since, not committed)" if changed else "")
    return "not committed yet" if changed else ""


def last_change_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{last-change}`repo/path` ``: when a committed file (a benchmark's report) last changed, so a results
    page is dated by the file it includes and cannot go stale when the report is rebuilt."""
    path = text.strip()
    if not (ROOT / path).is_file():
        message = f"last-change: no file {path!r} in the repository; give a path from its root"
        return [], [inliner.reporter.error(message, line=lineno)]
    stamp = last_change(path)
    if not stamp:
        message = f"last-change: git cannot date {path!r}; build the docs from a git checkout"
        return [], [inliner.reporter.error(message, line=lineno)]
    return [nodes.Text(stamp)], []


def setup(app):
    app.connect("missing-reference", resolve_reexport)
    app.add_role("last-change", last_change_role)
