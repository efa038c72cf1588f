"""Every third-party package that smart_app imports is declared in pyproject.toml's dependencies.

A package that arrives only through another one (pydantic through fhir.resources, joserfc through
authlib) disappears the day that one stops depending on it; declaring it keeps the install honest.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"smart_app"}


def _normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(pyproject: Path) -> set[str]:
    """The distributions named in [project].dependencies (not the optional extras)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return {_normalise(re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def imported_top_levels(source: str) -> set[str]:
    """Top-level names of the absolute imports in `source`, including `importlib.import_module("x.y")`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value.split(".")[0])
    return names


def undeclared_imports(package: Path, declared: set[str]) -> list[str]:
    """One line per module that imports a third-party package no declared distribution provides."""
    providers = importlib.metadata.packages_distributions()
    problems = []
    for path in sorted(package.rglob("*.py")):
        for name in sorted(imported_top_levels(path.read_text())):
            if name in sys.stdlib_module_names or name in FIRST_PARTY:
                continue
            distributions = {_normalise(d) for d in providers.get(name, [])}
            if not distributions & declared:
                found = ", ".join(sorted(distributions)) or "no installed distribution"
                problems.append(f"{path.relative_to(package.parent)} imports {name!r} ({found}), "
                                "which pyproject.toml does not declare")
    return problems


def test_every_third_party_import_is_declared() -> None:
    problems = undeclared_imports(ROOT / "smart_app", declared_distributions(ROOT / "pyproject.toml"))
    assert problems == [], "\n".join(problems)


def test_an_undeclared_import_is_named_with_its_module(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "a.py").write_text("import json\nfrom joserfc import jwt\nfrom . import b\n")
    (package / "b.py").write_text("import importlib\nmodel = importlib.import_module('pydantic.fields')\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["JoseRFC>=1,<2"]\n')
    problems = undeclared_imports(package, declared_distributions(pyproject))
    assert problems == ["pkg/b.py imports 'pydantic' (pydantic), which pyproject.toml does not declare"]
