"""Every Python folder is packaged under the one import root, and the plugins are registered."""

import importlib
import tomllib
from importlib.metadata import entry_points

import pytest

from conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIR = PYPROJECT["tool"]["setuptools"]["package-dir"]
PACKAGES = set(PYPROJECT["tool"]["setuptools"]["packages"])
SKIP = {".venv", "tests", "bench", "scripts", ".git", "target", "dbt_packages", ".social311", "logs"}


def package_of(folder):
    """The dotted package a repository folder maps to, from pyproject's package-dir."""
    rel = folder.relative_to(REPO).as_posix()
    for package, root in sorted(PACKAGE_DIR.items(), key=lambda kv: -len(kv[1])):
        if rel == root or rel.startswith(root + "/"):
            rest = rel[len(root):].strip("/")
            return package + ("." + rest.replace("/", ".") if rest else "")
    return None


def python_folders():
    for path in REPO.rglob("*.py"):
        parts = path.relative_to(REPO).parts
        if SKIP.intersection(parts) or "__pycache__" in parts:
            continue
        if len(parts) > 1:
            yield path.parent


@pytest.mark.parametrize("folder", sorted(set(python_folders())), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_python_folder_is_a_declared_package(folder):
    package = package_of(folder)
    assert package is not None, f"{folder} is not under any package-dir root"
    assert package in PACKAGES, f"{package} ({folder}) is missing from [tool.setuptools] packages"
    assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_declared_package_imports_from_its_folder(package):
    module = importlib.import_module(package)
    folder = REPO / PACKAGE_DIR.get(package, "") if package in PACKAGE_DIR else None
    if folder is not None:
        assert module.__file__.startswith(str(folder)), f"{package} imported from {module.__file__}, not {folder}"


@pytest.mark.parametrize("group,name", [("social311.sources", "file_drop"), ("social311.gis", "geojson"),
                                        ("social311.ticketing", "open311")])
def test_builtin_plugins_register_through_entry_points(group, name):
    eps = {ep.name: ep for ep in entry_points(group=group)}
    assert name in eps
    cls = eps[name].load()
    assert hasattr(cls, "config_model")


def test_dbt_project_ships_with_the_package():
    from social311.transforms import PROJECT_DIR

    assert (PROJECT_DIR / "dbt_project.yml").exists()
    assert (PROJECT_DIR / "profiles.yml").exists()
