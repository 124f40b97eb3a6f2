"""The layer order: a module may import its own layer or a lower one, never a higher one.

Every ``import`` statement is read, those inside functions included, so a lazy import cannot hide an
upward dependency. The order is documented in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "modalrec"

# lowest first; modules in one group may import each other
LAYERS: list[set[str]] = [
    {"errors", "io_utils", "device", "metric_names", "progress"},
    {"config"},
    {"nn"},
    {"features"},
    {"data"},
    {"models"},
    {"evaluate"},
    {"train"},
    {"experiments"},
    {"serve"},
    {"api", "demo"},
    {"cli", "__main__"},
]


def layer_of(module: str) -> int:
    """Layer index of ``modalrec.<top>...``; the package root (``modalrec``) sits above everything."""
    parts = module.split(".")
    if parts[0] != "modalrec":
        raise ValueError(module)
    if len(parts) == 1:
        return len(LAYERS)
    for index, names in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"modalrec.{parts[1]} is in no layer: add it to LAYERS and ARCHITECTURE.md")


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every modalrec import in ``source``, function-level ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # "from modalrec import train" imports the subpackage train; other names are the root's metadata
            if target == "modalrec":
                found.extend((node.lineno, f"modalrec.{alias.name}") for alias in node.names if _is_module(alias.name))
    # the bare root ("import modalrec" for __version__) is metadata, not a layer
    return [(line, name) for line, name in found if name.startswith("modalrec.")]


def _is_module(name: str) -> bool:
    return (PACKAGE_ROOT / f"{name}.py").exists() or (PACKAGE_ROOT / name / "__init__.py").exists()


def upward_imports(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        own = layer_of(module)
        for line, target in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            if layer_of(target) > own:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {module} imports {target}")
    return problems


def test_no_module_imports_a_higher_layer() -> None:
    assert upward_imports(PACKAGE_ROOT) == []


def test_the_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    package = tmp_path / "modalrec"
    (package / "data").mkdir(parents=True)
    (package / "train").mkdir()
    (package / "__init__.py").write_text("")
    (package / "train" / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "summary.py").write_text(
        "def summarize():\n    from modalrec.train.run import PreparedData\n    return PreparedData\n"
    )
    (package / "data" / "relative.py").write_text("from ..train import run\n")
    assert upward_imports(package) == [
        "modalrec/data/relative.py:1: modalrec.data.relative imports modalrec.train",
        "modalrec/data/summary.py:2: modalrec.data.summary imports modalrec.train.run",
    ]


def test_every_top_level_module_has_a_layer() -> None:
    for path in PACKAGE_ROOT.iterdir():
        if path.name.startswith((".", "_")) and path.name not in {"__main__.py"}:
            continue
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            layer_of(f"modalrec.{path.stem}")


@pytest.mark.parametrize("module", ["modalrec.experiments.benchmark", "modalrec.data.summary"])
def test_layer_of_names_a_known_layer(module: str) -> None:
    assert 0 <= layer_of(module) < len(LAYERS)
