"""Imports run only downward: every module of `stacmr` imports modules of its own layer or of a lower one, and no
two modules import each other, directly or round a circle. Imports are read as `stacmr.checksum` reads them (with
`ast`, those inside functions included). docs/architecture.md, the map of the package, lists the same layers."""

from __future__ import annotations

import re

from stacmr.checksum import SRC, file_imports, module_file, module_name
from tests.helpers import REPO

# Lowest first. An entry names a module, or a package and everything under it; a module belongs to its longest entry
# (so `stacmr.data.sources` sits in the bottom layer while the rest of `stacmr.data` sits above `params`). The root
# package `stacmr` names its own __init__.py only.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "stacmr",
            "stacmr.errors",
            "stacmr.atomic",
            "stacmr.checksum",
            "stacmr.jsonfile",
            "stacmr.yamlfile",
            "stacmr.text",
            "stacmr.progress",
            "stacmr.prefetch",
            "stacmr.tokens",
            "stacmr.workspace",
            "stacmr.data.sources",
        ),
    ),
    ("params", ("stacmr.params",)),
    ("data", ("stacmr.data",)),
    ("models", ("stacmr.models", "stacmr.losses")),
    ("features", ("stacmr.features", "stacmr.extract")),
    ("evaluation", ("stacmr.evaluation",)),
    ("training", ("stacmr.training",)),
    ("reporting", ("stacmr.reporting", "stacmr.tracking")),
    ("stages", ("stacmr.stages",)),
    ("cli", ("stacmr.cli", "stacmr.__main__")),
]
ROOT = "stacmr"
MAP = REPO / "docs" / "architecture.md"


def layer_of(module: str) -> int | None:
    """The index in `LAYERS` of `module`'s layer (None: no entry covers it)."""
    best: tuple[int, int] | None = None  # (entry length, layer index)
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            covers = module == entry or (entry != ROOT and module.startswith(entry + "."))
            if covers and (best is None or len(entry) > best[0]):
                best = (len(entry), index)
    return None if best is None else best[1]


def import_graph() -> dict[str, set[str]]:
    """Every module of the package → the package's modules it imports, each by its own name (`from stacmr.a import
    b, C`: `stacmr.a.b` when b is a module, `stacmr.a` for C)."""
    graph = {}
    for path in sorted(SRC.joinpath(ROOT).rglob("*.py")):
        module = module_name(path)
        graph[module] = {name for name in file_imports(path) if module_file(name) is not None} - {module}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """One line per import of a higher layer, `importer (its layer) → imported (its layer)`; modules without a layer
    are left to `test_every_module_has_a_layer`."""
    layers = {module: layer_of(module) for module in graph}
    return sorted(
        f"{module} ({LAYERS[layers[module]][0]}) → {target} ({LAYERS[layers[target]][0]})"
        for module, targets in graph.items()
        for target in targets
        if None not in (layers[module], layers[target]) and layers[target] > layers[module]
    )


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that reach each other through imports (each group sorted, at least two modules)."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        reach[start] = seen
    groups = {frozenset({m, *(n for n in reach[m] if m in reach[n])}) for m in graph}
    return sorted(sorted(group) for group in groups if len(group) > 1)


GRAPH = import_graph()


def test_every_module_has_a_layer():
    assert not [module for module in GRAPH if layer_of(module) is None]


def test_every_layer_entry_names_a_module():
    assert not [entry for _, entries in LAYERS for entry in entries if entry not in GRAPH]


def test_imports_run_only_downward():
    assert not upward_imports(GRAPH)


def test_no_import_cycles():
    assert not import_cycles(GRAPH)


def map_layers() -> list[tuple[int, str, set[str]]]:
    """The layer table of docs/architecture.md, `| <index> | <layer> | <its modules, in backticks> | <job> |`: per
    row the index, the layer and the modules named."""
    rows = []
    for line in MAP.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], set(re.findall(r"`([\w.]+)`", cells[2]))))
    return rows


def test_the_map_lists_the_layers_and_their_modules():
    assert map_layers() == [(index, name, set(entries)) for index, (name, entries) in enumerate(LAYERS)]
