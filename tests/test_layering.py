"""The package's layers: lower modules never import higher ones (STYLE.md, issue 29 item 5).

Imports are read from the source with ast (those inside functions too, since torch-era code
imports lazily), so a violation fails here even where no test happens to run that path.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mlcompress

PACKAGE = Path(mlcompress.__file__).resolve().parent

#: module prefix (a folder or a module of the package) -> what it must never import
FORBIDDEN = {
    "codecs": ("train", "bench", "cli"),
    "nn": ("codecs", "train", "bench", "cli"),
    "entropy": ("codecs", "train", "bench", "cli"),
    "weights": ("codecs", "train", "bench", "cli"),
    "fuzz": ("cli",),  # `python -m mlcompress.fuzz` is its own entry point (issue 26)
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["mlcompress", *parts])


def imported_modules(path: Path) -> set[str]:
    """Every mlcompress module ``path`` imports (absolute names; relative imports resolved;
    ``from . import x`` counted as importing ``pkg.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in out if m == "mlcompress" or m.startswith("mlcompress.")}


def _layer_of(module: str) -> str | None:
    rest = module.split(".")[1:]
    return rest[0] if rest else None


def test_the_import_reader_resolves_relative_and_lazy_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "mlcompress"
    (pkg / "codecs").mkdir(parents=True)
    src = pkg / "codecs" / "x.py"
    src.write_text("from ..train.export import a\ndef f():\n    from .. import cli\n    import mlcompress.bench\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    found = imported_modules(src)
    assert {"mlcompress.train.export", "mlcompress.cli", "mlcompress.bench"} <= found


def test_codecs_never_import_train_and_no_lower_layer_imports_a_higher_one():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(_module_name(path))
        for target in sorted(imported_modules(path)):
            if _layer_of(target) in FORBIDDEN.get(layer, ()):
                bad.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert not bad, "\n".join(bad)

