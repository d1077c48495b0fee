"""The house's import rules (pyproject.toml, [tool.importlinter]) hold for the whole package."""

from __future__ import annotations

import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


class TestLayers:
    """Stages in pipeline order, a pure core, one home for SQLite and one for SOAP."""

    def test_every_contract_is_kept(self) -> None:
        """lint-imports finds no broken contract."""
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0

    def test_every_stage_package_has_its_layer(self) -> None:
        """Each package in sync/ stands in the layers contract, so no new stage escapes the order."""
        (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
        assert isinstance(layers, list)
        named = {name.strip() for layer in layers for name in str(layer).split("|")}
        packages = {f"sync.{p.parent.name}" for p in (ROOT / "sync").glob("*/__init__.py")}
        modules = {f"sync.{p.stem}" for p in (ROOT / "sync").glob("*.py") if not p.stem.startswith("_")}
        assert packages <= named
        assert named <= packages | modules
