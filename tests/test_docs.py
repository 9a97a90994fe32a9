"""Documentation checks: every public name is documented, the docs build, and the examples run.

* ``test_every_public_name_is_on_an_api_page``: every name in ``__all__`` of the documented
  packages is covered by a directive on a ``docs/api`` page (``automodule`` with ``:members:``, or
  an explicit ``autoclass``/``autofunction``/``autodata``) and has a docstring of its own.
* ``test_strict_build_inventory``: the strict, offline Sphinx build succeeds (in a subprocess, a
  few seconds) and its object inventory lists every public name.
* The slow tests run the NumPyro and Pyro quick-start scripts and the README examples (with
  warnings as errors). The Pyro runs get ``OMP_NUM_THREADS=1``: with tiny tensors on a busy
  machine, torch's intra-op threads make them many times slower.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_PAGES = DOCS / "api"
PACKAGES = (
    "ppl_arms.core",
    "ppl_arms.config",
    "ppl_arms.testing",
    "ppl_arms.numpyro",
    "ppl_arms.pyro",
)
BUILD_TIMEOUT_S = 120
EXAMPLE_TIMEOUT_S = 300

_DIRECTIVE = re.compile(r"^\.\. (auto\w+):: +(\S+)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")
_CURRENT_MODULE = re.compile(r"^\.\. (?:py:)?currentmodule:: +(\S+)\s*$")


@dataclasses.dataclass
class Coverage:
    automodules: dict[str, dict[str, str]]
    explicit: set[str]


def _api_coverage() -> Coverage:
    """Parse the autodoc directives (in ``{eval-rst}`` blocks or ``.rst`` pages) under docs/api."""
    automodules: dict[str, dict[str, str]] = {}
    explicit: set[str] = set()
    for page in sorted([*API_PAGES.glob("*.md"), *API_PAGES.glob("*.rst")]):
        current = ""
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if m := _CURRENT_MODULE.match(line):
                current = m.group(1)
                continue
            m = _DIRECTIVE.match(line)
            if not m:
                continue
            kind, target = m.groups()
            options: dict[str, str] = {}
            for option_line in lines[i + 1 :]:
                o = _OPTION.match(option_line)
                if not o:
                    break
                options[o.group(1)] = o.group(2)
            if kind == "automodule":
                if "members" in options:
                    automodules[target] = options
                current = target
            else:
                explicit.add(target if "." in target else f"{current}.{target}")
    return Coverage(automodules, explicit)


def _attribute_docs(module_name: str) -> dict[str, list[str]]:
    from sphinx.pycode import ModuleAnalyzer

    docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    return {name: lines for (scope, name), lines in docs.items() if scope == ""}


def _data_docstring(module_name: str, name: str) -> list[str]:
    """A constant's attribute docstring, in the module or (re-exported) in one of its submodules."""
    docs = _attribute_docs(module_name).get(name)
    if docs:
        return docs
    package = importlib.import_module(module_name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
        docs = _attribute_docs(f"{module_name}.{info.name}").get(name)
        if docs:
            return docs
    return []


def _own_docstring(obj: object) -> str:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    doc = (doc or "").strip()
    if (
        isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and doc.startswith(obj.__name__ + "(")
    ):
        return ""  # the signature that @dataclass writes when a class has no docstring
    return doc


def _is_documented_object(obj: object) -> bool:
    """Classes and callables (including ``functools.cache`` wrappers), as opposed to constants."""
    return inspect.isclass(obj) or callable(obj)


def _public_names() -> list[tuple[str, str]]:
    return [(pkg, name) for pkg in PACKAGES for name in importlib.import_module(pkg).__all__]


def test_every_documented_package_has_an_api_page():
    coverage = _api_coverage()
    missing = [pkg for pkg in PACKAGES if pkg not in coverage.automodules]
    assert not missing, f"no `automodule` with :members: on a docs/api page for {missing}"


@pytest.mark.parametrize(("package", "name"), _public_names())
def test_every_public_name_is_on_an_api_page(package, name):
    coverage = _api_coverage()
    obj = getattr(importlib.import_module(package), name)
    qualified = f"{package}.{name}"
    options = coverage.automodules.get(package, {})
    excluded = {n.strip() for n in options.get("exclude-members", "").split(",") if n.strip()}
    if _is_documented_object(obj):
        doc = _own_docstring(obj)
        assert doc, f"{qualified} has no docstring of its own"
        imported = getattr(obj, "__module__", package) != package
        by_automodule = bool(options) and name not in excluded
        by_automodule &= not imported or "imported-members" in options
    else:
        doc = "\n".join(_data_docstring(package, name)).strip()
        assert doc, f"{qualified} (a constant) has no attribute docstring"
        # autodoc finds a constant's docstring only in the module the directive names.
        by_automodule = bool(options) and name not in excluded
        by_automodule &= bool(_attribute_docs(package).get(name))
    assert by_automodule or qualified in coverage.explicit, (
        f"{qualified} is not documented: add it to the `automodule:: {package}` directive "
        f"(with :members:{'' if not _is_documented_object(obj) else ' :imported-members:'}) or an "
        f"explicit auto* directive on a docs/api page"
    )


def _inventory_names(path: Path) -> set[str]:
    """Object names in a Sphinx ``objects.inv`` (version 2: four header lines, zlib body)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def test_strict_build_inventory(tmp_path):
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    result = subprocess.run(
        [*cmd, "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    names = _inventory_names(out / "objects.inv")
    missing = [f"{pkg}.{name}" for pkg, name in _public_names() if f"{pkg}.{name}" not in names]
    assert not missing, f"missing from the built inventory: {missing}"


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_numpyro_binary_vae_example_runs():
    out = _run(["-W", "error", "docs/examples/numpyro_binary_vae.py"])
    m = re.search(r"ELBO per data point: (\S+) -> (\S+)", out)
    assert m, out
    start, end = map(float, m.groups())
    assert end > start, out


@pytest.mark.slow
def test_numpyro_mixture_example_runs():
    out = _run(["-W", "error", "docs/examples/numpyro_mixture.py"])
    m = re.search(r"points assigned to their true cluster: (\d+)%", out)
    assert m, out
    assert int(m.group(1)) > 50, out  # far above chance (1/3) if the assignments were learned


def _readme_example(marker: str = "readme-example") -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no python block after the `<!-- {marker} -->` marker"
    return m.group(1)


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    script = tmp_path / "readme_example.py"
    script.write_text(_readme_example())
    out = _run(["-W", "error", str(script)])
    m = re.search(r"q\(fair\) = ([0-9.]+) \(exact posterior ([0-9.]+)\)", out)
    assert m, out
    fitted, exact = map(float, m.groups())
    assert abs(fitted - exact) < 0.02, out


PYRO_ENV = {"OMP_NUM_THREADS": "1"}


def _elbo_per_point(out: str) -> tuple[float, float]:
    m = re.search(r"ELBO per data point: (\S+) -> (\S+)", out)
    assert m, out
    start, end = map(float, m.groups())
    return start, end


@pytest.mark.slow
def test_pyro_binary_vae_example_runs():
    out = _run(["-W", "error", "docs/examples/pyro_binary_vae.py"], PYRO_ENV)
    start, end = _elbo_per_point(out)
    assert end > start + 1.0, (start, end)


@pytest.mark.slow
def test_pyro_module_route_example_runs():
    out = _run(["-W", "error", "docs/examples/pyro_module_route.py"], PYRO_ENV)
    start, end = _elbo_per_point(out)
    assert end > start + 1.0, (start, end)


@pytest.mark.slow
def test_pyro_mixture_example_runs():
    out = _run(["-W", "error", "docs/examples/pyro_mixture.py"], PYRO_ENV)
    m = re.search(r"posterior mean locations: (\S+), (\S+), (\S+)", out)
    assert m, out
    locs = [float(v) for v in m.groups()]
    assert all(abs(a - b) < 0.5 for a, b in zip(locs, [-4.0, 0.0, 4.0], strict=True)), out
    m = re.search(r"points assigned to their true cluster: (\d+)%", out)
    assert m, out
    assert int(m.group(1)) > 50, out  # far above chance (1/3) if the assignments were learned


@pytest.mark.slow
def test_readme_pyro_example_runs(tmp_path):
    script = tmp_path / "readme_pyro_example.py"
    script.write_text(_readme_example("readme-example-pyro"))
    out = _run(["-W", "error", str(script)], PYRO_ENV)
    m = re.search(r"q\(fair\) = ([0-9.]+) \(exact posterior ([0-9.]+)\)", out)
    assert m, out
    fitted, exact = map(float, m.groups())
    assert abs(fitted - exact) < 0.02, out
