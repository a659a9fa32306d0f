"""The package layout holds: no import cycles, no imports against the layers, ``_`` means private to
its package, and the CLI and ``import aisec`` stay cheap (see docs/architecture.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.analyse()  # type: ignore[no-any-return]


def test_no_import_cycles(graph: dict[str, object]) -> None:
    assert graph["module_cycles"] == [] and graph["package_cycles"] == []


def test_imports_follow_the_layers(graph: dict[str, object]) -> None:
    assert graph["unlayered"] == [], "a new top-level package needs a layer in scripts/import_graph.py"
    assert graph["upward_imports"] == []


def test_private_names_stay_in_their_package(graph: dict[str, object]) -> None:
    assert graph["private_imports"] == []


def test_the_root_holds_only_the_orchestrator(graph: dict[str, object]) -> None:
    assert graph["root_modules"] == ["aisec.api"]


def test_the_analyser_sees_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    """The checks above cannot pass vacuously: on a tree with a cycle and an upward import they fail."""
    pkg = tmp_path / "aisec"
    (pkg / "core").mkdir(parents=True)
    (pkg / "checks").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "checks" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from aisec.checks.b import x\n")
    (pkg / "checks" / "b.py").write_text("from aisec.core.a import y\nfrom aisec.core._p import z\n")
    (pkg / "core" / "_p.py").write_text("")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--src", str(pkg)],
                         capture_output=True, text=True, check=True).stdout
    assert "module cycles: 1" in out and "upward imports: 1" in out
    assert "private imports across packages: 1" in out


def _imports_torch(code: str) -> bool:
    res = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    return res.stdout.strip().splitlines()[-1] == "True"


def test_import_aisec_and_cli_help_do_not_load_torch() -> None:
    assert not _imports_torch("import aisec")
    assert not _imports_torch(
        "from click.testing import CliRunner\nfrom aisec.cli.main import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0 and 'assess' in r.output"
    )
