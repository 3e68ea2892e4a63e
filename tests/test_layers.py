"""The package layers, checked from the imports: lower layers never import higher ones.

    errors, files, runtime          (everyone may use them)
    nn, data                        (the network, its files, inputs)
    training, optvis, analysis      (computations)
    figures                         (results to pictures)
    app                             (CLI, report, explorer, user-text parsing)

Every `import` and `from ... import` in every module counts, also the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnnscope

ROOT = Path(cnnscope.__file__).parent
RANK = {"errors": 0, "files": 0, "runtime": 0, "nn": 1, "data": 1,
        "training": 2, "optvis": 2, "analysis": 2, "figures": 3, "app": 4}


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name.split(".")[1] for name in names if name.startswith("cnnscope.")}


def test_every_module_belongs_to_a_layer():
    for path in ROOT.rglob("*.py"):
        top = path.relative_to(ROOT).parts[0].removesuffix(".py")
        assert top in RANK or top in ("__init__", "__main__"), f"{path} is in no layer"


def test_lower_layers_never_import_higher_ones():
    offences = []
    for path in ROOT.rglob("*.py"):
        top = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if top not in RANK:
            continue
        for package in imported_packages(path):
            if RANK.get(package, -1) > RANK[top]:
                offences.append(f"{path.relative_to(ROOT)} imports cnnscope.{package}")
    assert not offences, "\n".join(sorted(offences))


def test_no_relative_imports():
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.ImportFrom) and node.level), f"{path}: relative import"
