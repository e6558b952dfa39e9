"""sha256 of files, streamed in blocks (release arrays can be tens of GB), recorded as provenance in the stores; and
of the code a module runs, which identifies the code a checkpoint was trained with.

The code a module runs is its import closure within `stacmr`, read statically with `ast` (imports inside functions
included, nothing executed): its imports, recursively, and the `__init__.py` of every package on the way, since
importing `stacmr.a.b` runs `stacmr` and `stacmr.a` too. The DVC deps test reads the same graph.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_BLOCK = 1 << 20
SRC = Path(__file__).resolve().parent.parent  # the folder holding the `stacmr` package


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def module_file(name: str) -> Path | None:
    """The file that module or package `name` ("stacmr.x.y") runs, if it is part of the package."""
    base = SRC.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, package: str) -> set[str]:
    """Names of the stacmr modules `tree` imports anywhere (`package`: the importing module's package, for relative
    imports); `from a import b` counts `a.b` when b is a module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "stacmr" or n.startswith("stacmr.")}


def file_imports(path: Path) -> set[str]:
    """`imported` of the package's file `path` (a module, or a package's __init__.py)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imported(ast.parse(path.read_text(), str(path)), package)


def import_closure(roots: Iterable[str], skip: Mapping[str, str] | None = None) -> set[Path]:
    """Files run by importing the modules `roots`: their imports, recursively, and their parent packages. `skip`:
    module → a module (or package) whose imports by it are not followed."""
    skip = skip or {}
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):  # stacmr, stacmr.a, stacmr.a.b: each runs on import
            path = module_file(".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            skipped = skip.get(module_name(path))
            todo.extend(
                n for n in file_imports(path) if not skipped or not (n == skipped or n.startswith(skipped + "."))
            )
    return seen


class _NoStrings(ast.NodeTransformer):
    """Drops every statement that is a bare string, docstrings among them: only `__doc__` reads one (a stage's
    `--help` text), never a computation."""

    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        is_string = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        return None if is_string else node


def code_sha256(module: str) -> str:
    """Hex sha256 of the code `module` runs: each module of its import closure by name and syntax tree, docstrings
    left out, so that comments, docstrings and formatting never change it, and a module outside the closure neither.
    A training run records it (of the train stage), so that a resume never continues, or reuses, a checkpoint made
    by other code: DVC reruns a train stage when its code changed, and the stage must then train afresh."""
    digest = hashlib.sha256()
    for path in sorted(import_closure([module]), key=module_name):
        tree = _NoStrings().visit(ast.parse(path.read_text(), str(path)))
        digest.update(module_name(path).encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()
