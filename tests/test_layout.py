"""The layout: packages by role, and the import rule each package's docstring states, checked.

The rules read the source (every ``import`` statement, at module level or inside a function), so a
new module that breaks one fails here by name. Where a rule is about start-up cost (no TensorFlow,
no Ray), a fresh interpreter imports the package and says what got loaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "zoomdream"
PACKAGES = ("settings", "backbones", "media", "render", "scale", "studio")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules(package: str | None = None) -> list[Path]:
    if package is None:
        return sorted(PACKAGE.rglob("*.py"))
    return sorted((PACKAGE / package).glob("*.py"))


def zoomdream_imports(path: Path) -> set[str]:
    """Every zoomdream module ``path`` imports (``from zoomdream.settings import presets`` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "zoomdream")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoomdream":
            assert node.level == 0, f"{path.name}: a relative import (the package uses absolute ones)"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
    return found


def _outside(package: str, allowed: set[str]) -> dict[str, list[str]]:
    """Per module of ``package``: the zoomdream modules it imports that the rule does not allow."""
    bad = {}
    for path in _modules(package):
        wrong = sorted(m for m in zoomdream_imports(path)
                       if not (m.startswith(f"zoomdream.{package}.") or m == f"zoomdream.{package}")
                       and m not in allowed)
        if wrong:
            bad[_module_name(path)] = wrong
    return bad


def test_settings_imports_only_errors_fileio_motion_and_the_backbone_registry():
    # the registry is read inside a function, for the model names a preset may use
    allowed = {"zoomdream.errors", "zoomdream.fileio", "zoomdream.motion", "zoomdream.backbones"}
    assert _outside("settings", allowed) == {}


def test_backbones_import_only_errors_fileio_and_the_settings_declarations():
    assert _outside("backbones", {"zoomdream.errors", "zoomdream.fileio", "zoomdream.settings"}) == {}


def test_media_imports_only_errors_fileio_and_the_settings_declarations():
    assert _outside("media", {"zoomdream.errors", "zoomdream.fileio", "zoomdream.settings"}) == {}


def test_only_the_command_line_imports_scale_out():
    users = {_module_name(p) for p in _modules() if "zoomdream.scale" in zoomdream_imports(p)
             and not _module_name(p).startswith("zoomdream.scale")}
    assert users == {"zoomdream.cli"}  # zoomdream.render_video_ray is looked up lazily by name


def test_the_functional_core_imports_no_render():
    core = [p for p in _modules() if p.parent == PACKAGE]
    bad = {_module_name(p): sorted(m for m in zoomdream_imports(p) if m.startswith("zoomdream.render"))
           for p in core if _module_name(p) != "zoomdream.cli"}
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize(("package", "heavy"), [("settings", "tensorflow"), ("backbones", "tensorflow"),
                                                ("media", "tensorflow"), ("scale", "ray"),
                                                ("studio", "tensorflow")])
def test_importing_a_package_leaves_the_heavy_library_for_the_work(package, heavy):
    names = [_module_name(p) for p in _modules(package)]
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'ray'))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(names) >= 3 and not [m for m in loaded if m.split(".")[0] == heavy]


def test_no_package_inside_a_package():
    nested = [str(p.parent.relative_to(PACKAGE)) for p in PACKAGE.glob("*/*/__init__.py")]
    assert nested == []
    assert sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")) == sorted(PACKAGES)


@pytest.mark.parametrize("package", ["media", "render"])
def test_a_package_without_an_entry_module_is_a_docstring(package):
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))
    docstring, *rest = tree.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert "may import" in docstring.value.value
    assert [ast.unparse(node) for node in rest] == ["__all__: list[str] = []"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_says_what_it_may_import(package):
    assert "may import" in ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text()))


def test_every_module_declares_all():
    missing = [_module_name(p) for p in _modules() if p.name != "__main__.py"
               and not any(isinstance(n, (ast.Assign, ast.AnnAssign))
                           and "__all__" in ast.unparse(n.targets[0] if isinstance(n, ast.Assign) else n.target)
                           for n in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert missing == []


def test_ci_runs_exactly_the_readmes_test_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index('pip install -e ".[test'):]
    block = block[:block.index("```")].strip().splitlines()
    ci = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.startswith(("python -m pip install --quiet -e", "ruff", "python -m pytest"))]
    assert [line.replace("python -m pip install --quiet", "pip install") for line in ci] == block
    assert block[-2:] == ["ruff check .", "python -m pytest -q --durations=15"]
