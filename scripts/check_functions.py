"""Fail on functions in batch/ longer than 50 lines that do not say why.

A function may run longer when a ``# long: <reason>`` comment stands on its ``def`` line,
on the line above it (above its decorators), or on the first line of its body.

Usage: python scripts/check_functions.py [folder]   (default: batch)
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

LIMIT = 50
REASON = "# long:"


def long_functions(path: Path) -> Iterator[tuple[str, int, int]]:
    """``(name, line, length)`` of each function over the limit without a reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length <= LIMIT:
            continue
        top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        nearby = lines[max(top - 2, 0) : node.body[0].lineno]
        if not any(REASON in line for line in nearby):
            yield node.name, node.lineno, length


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "batch")
    found = [
        f"{path}:{line}: {name} is {length} lines (over {LIMIT}; add '{REASON} <reason>')"
        for path in sorted(root.rglob("*.py"))
        for name, line, length in long_functions(path)
    ]
    print("\n".join(found) if found else f"check_functions: none over {LIMIT} lines in {root}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
