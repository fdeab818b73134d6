"""The layers of docs/architecture.md, read from the source: who may import what.

- the web framework (fastapi, starlette, uvicorn, prometheus) only in ``service/api/``;
- no torch anywhere in ``service/`` (the server installs without it);
- ``service/`` never imports ``training/``; only ``service/api/`` imports ``service/api/``;
- nothing outside ``service/`` imports a private (underscored) name of ``service/``;
- ``service/`` has no function-level imports of its own modules (they hide import cycles).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ("fastapi", "starlette", "uvicorn", "prometheus_client", "fastapi_offline", "multipart")
SERVICE = "latent_bridge.service"


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def _imports(tree: ast.AST) -> Iterator[tuple[ast.AST, str, list[str]]]:
    """(node, module, imported names) for every import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node, node.module, [a.name for a in node.names]


def _top(module: str) -> str:
    return module.split(".")[0]


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", _sources("service", "training", "latent_bridge"), ids=_relative)
def test_the_web_framework_is_imported_only_by_the_api_layer(path: Path) -> None:
    if _relative(path).startswith("service/api/"):
        return
    found = [m for _, m, _ in _imports(ast.parse(path.read_text())) if _top(m) in WEB]
    assert not found, f"{_relative(path)} imports {found}: only service/api/ may"


@pytest.mark.parametrize("path", _sources("service"), ids=_relative)
def test_the_service_needs_neither_torch_nor_training(path: Path) -> None:
    found = [m for _, m, _ in _imports(ast.parse(path.read_text()))
             if _top(m) == "torch" or m.startswith("latent_bridge.training")]
    assert not found, f"{_relative(path)} imports {found}"


@pytest.mark.parametrize("path", _sources("service"), ids=_relative)
def test_only_the_api_layer_imports_the_api_layer(path: Path) -> None:
    if _relative(path).startswith("service/api/"):
        return
    found = [m for _, m, _ in _imports(ast.parse(path.read_text())) if m.startswith(f"{SERVICE}.api")]
    assert not found, f"{_relative(path)} imports {found}: the engine, bundle, galleries and inputs sit below the API"


@pytest.mark.parametrize("path", _sources("training", "latent_bridge", "bench", "tests"), ids=_relative)
def test_no_private_name_of_the_service_is_imported_from_outside(path: Path) -> None:
    found = [f"{m}.{n}" for _, m, names in _imports(ast.parse(path.read_text()))
             if m.startswith(SERVICE) for n in names if n.startswith("_")]
    assert not found, f"{_relative(path)} imports private names {found}"


@pytest.mark.parametrize("path", _sources("service"), ids=_relative)
def test_the_service_imports_its_own_modules_at_the_top(path: Path) -> None:
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    nested = [m for node, m, _ in _imports(tree) if m.startswith(SERVICE) and id(node) not in top_level]
    assert not nested, f"{_relative(path)} imports {nested} inside a function: a hidden import cycle"


def test_the_rules_see_a_violation() -> None:
    """The walk above finds imports at all: a planted file with each violation is caught by each rule."""
    planted = ast.parse("import fastapi\nfrom torch import nn\nfrom latent_bridge.service.x import _y\n"
                        "def f():\n    from latent_bridge.service.z import w\n")
    modules = [m for _, m, _ in _imports(planted)]
    assert modules == ["fastapi", "torch", "latent_bridge.service.x", "latent_bridge.service.z"]
    top_level = {id(n) for n in planted.body}
    assert [m for node, m, _ in _imports(planted) if id(node) not in top_level] == ["latent_bridge.service.z"]
