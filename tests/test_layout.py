"""The four import packages resolve into this project, and dependencies point one way."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("chunks", "training", "connecto", "proofreading")
# which project packages each package may import (DESIGN.md: chunks <- training <- connecto,
# chunks <- proofreading <- connecto)
ALLOWED = {
    "chunks": set(),
    "training": {"chunks"},
    "proofreading": {"chunks"},
    "connecto": {"chunks", "training", "proofreading"},
}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_resolves_into_this_project(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(REPO_ROOT / name)


def _imported_project_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO_ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_dependency_direction(package):
    imported = _imported_project_packages(package)
    forbidden = {dep: files for dep, files in imported.items() if dep not in ALLOWED[package]}
    assert not forbidden, f"{package} must not import {forbidden}"


def test_import_connecto_is_cheap():
    code = "import sys, connecto, chunks; print(','.join(m for m in ('torch', 'cloudvolume', 'navis', 'distributed') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing connecto/chunks pulled in heavy modules: {out}"
