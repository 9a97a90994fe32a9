"""Sphinx configuration for the ppl_arms documentation.

Build (strict, offline): ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
Pages are MyST Markdown; the API reference is autodoc + napoleon (Google docstrings with reST math
and cross-reference roles). No intersphinx: the build never touches the network.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Import the NumPyro adapter with float64 (as the tests do); nothing numerical runs at build time.
os.environ.setdefault("JAX_ENABLE_X64", "1")

from sphinx.errors import PycodeError  # noqa: E402
from sphinx.pycode import ModuleAnalyzer  # noqa: E402

from ppl_arms.version import __version__  # noqa: E402

project = "ppl_arms"
author = "ppl_arms developers"
copyright = "ppl_arms developers, Apache-2.0"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "results/**/*.md", "Thumbs.db", ".DS_Store"]

# --- MyST ---------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- autodoc / napoleon -------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The loose ``Array``/``Shape`` aliases (``Any`` at run time) are shown by name, not expanded.
autodoc_type_aliases = {"Array": "Array", "Shape": "Shape"}
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# ``Attributes:`` sections become ``:ivar:`` fields instead of ``.. attribute::`` directives, which
# would duplicate the class variables autodoc documents itself (e.g. ``SiteEstimator.name``).
napoleon_use_ivar = True
napoleon_use_rtype = False

# --- HTML ---------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"ppl_arms {__version__}"
html_static_path: list[str] = []
pygments_style = "sphinx"
pygments_dark_style = "monokai"


def _canonical_public_name(target: str) -> str | None:
    """Map ``ppl_arms.core.<module>.<name>`` to ``ppl_arms.core.<name>`` for re-exported names.

    The API reference documents every public object once, under the package that re-exports it
    (``ppl_arms.core.ARMS``), while docstrings sometimes name the defining module
    (``ppl_arms.core.copulas.antithetic_pairs``). Such references are resolved here instead of being
    left as unlinked text.
    """
    parts = target.split(".")
    for cut in range(len(parts) - 2, 0, -1):
        package, rest = ".".join(parts[:cut]), parts[cut + 1 :]
        if not package.startswith("ppl_arms"):
            return None
        try:
            exported = getattr(importlib.import_module(package), "__all__", ())
        except ImportError:
            continue
        if rest[0] in exported:
            return ".".join([package, *rest])
    return None


def _resolve_reexported(app, env, node, contnode):
    """Link ``ppl_arms`` references that the Python domain cannot resolve by itself.

    Two cases: a defining-module path of a re-exported name (see :func:`_canonical_public_name`),
    and a bare name used inside a module docstring (``:func:`local_signals``` in
    ``ppl_arms.core.iwae``) that is documented under exactly one ``ppl_arms`` path.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module") or ""
    candidates = [_canonical_public_name(target)]
    if "." not in target and module.startswith("ppl_arms"):
        candidates.append(_canonical_public_name(f"{module}.{target}"))
        matches = [
            name
            for name, _ in env.get_domain("py").objects.items()
            if name.startswith("ppl_arms.") and name.endswith(f".{target}")
        ]
        if len(matches) == 1:
            candidates.append(matches[0])
    domain = env.get_domain("py")
    for canonical in filter(None, candidates):
        for role in ("class", "func", "data", "attr", "meth", "mod", "obj"):
            resolved = domain.resolve_xref(
                env, node["refdoc"], app.builder, role, canonical, node, contnode
            )
            if resolved is not None:
                return resolved
    return None


def _repair_docstring(app, what, name, obj, options, lines):
    if what == "data" and (not lines or _is_type_docstring(obj, lines)):
        lines[:] = _reexported_data_docstring(name)


def _is_type_docstring(obj: object, lines: list[str]) -> bool:
    """Whether autodoc fell back to the docstring of the value's type (``float``, ``tuple``)."""
    own = inspect.getdoc(type(obj)) or ""
    return "\n".join(lines).strip() == own.strip()


def _reexported_data_docstring(name: str) -> list[str]:
    """The ``#:``/string docstring of a constant re-exported by a package from a submodule.

    autodoc looks for a module-level constant's docstring only in the module named by the
    directive (``ppl_arms.core``), not in the submodule that defines it
    (``ppl_arms.core.copulas``).
    """
    package_name, _, attr = name.rpartition(".")
    try:
        package = importlib.import_module(package_name)
    except ImportError:
        return []
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        try:
            docs = ModuleAnalyzer.for_module(f"{package_name}.{info.name}").find_attr_docs()
        except PycodeError:
            continue
        if ("", attr) in docs:
            return list(docs[("", attr)])
    return []


_FORWARD_REF = re.compile(r"TypeAliasForwardRef\('([^']*)'\)")


def _clean_signature(app, what, name, obj, options, signature, return_annotation):
    """Tidy signatures: show ``Array`` instead of ``TypeAliasForwardRef('Array')`` inside composite
    annotations, and dataclass default factories by name.

    Sphinx 9 stringifies an ``autodoc_type_aliases`` entry nested in ``X | None`` or
    ``tuple[X, ...]`` by its ``repr``; top-level annotations are fine.
    """
    if signature is None and return_annotation is None:
        return None
    fix = _FORWARD_REF.sub
    if signature is not None and what == "class" and dataclasses.is_dataclass(obj):
        signature = _show_default_factories(obj, signature)
    return (
        None if signature is None else fix(r"\1", signature),
        None if return_annotation is None else fix(r"\1", return_annotation),
    )


def _show_default_factories(cls: type, signature: str) -> str:
    """Replace ``<factory>`` in a dataclass signature by the factory call, e.g. ``DirichletCopula()``."""
    for field in dataclasses.fields(cls):
        factory = field.default_factory
        if factory is not dataclasses.MISSING:
            pattern = re.compile(rf"(\b{re.escape(field.name)}\b[^,)]*?= )<factory>")
            signature = pattern.sub(rf"\g<1>{getattr(factory, '__name__', 'factory')}()", signature)
    return signature


def setup(app):
    app.connect("missing-reference", _resolve_reexported)
    app.connect("autodoc-process-docstring", _repair_docstring, priority=400)
    app.connect("autodoc-process-signature", _clean_signature)
