"""Fail when modules of batch/ import each other in a cycle, naming each cycle.

import-linter's contracts (pyproject.toml, run by ``lint-imports``) check packages; this
checks single modules, with grimp (the graph library import-linter is built on). Imports
under ``if TYPE_CHECKING:`` are left out: they never run.

Usage: python scripts/check_imports.py [package]   (default: batch)
"""

from __future__ import annotations

import sys

import grimp


def module_cycles(package: str) -> list[list[str]]:
    """One shortest cycle through each import that closes one, without repeats."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    cycles: dict[frozenset[str], list[str]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = [importer, *back]
                cycles.setdefault(frozenset(cycle), cycle)
    return list(cycles.values())


def main() -> int:
    package = sys.argv[1] if len(sys.argv) > 1 else "batch"
    cycles = module_cycles(package)
    for cycle in cycles:
        print(f"import cycle: {' -> '.join(cycle)}")
    if cycles:
        return 1
    print(f"check_imports: no import cycles among the modules of {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
