"""The run's phases hand each other records (issue 19 item 5): no phase of
:class:`~batch.run.audit.AuditRun` sets an attribute of the run that a later phase
reads. Checked on the source: an assignment ``self.x = ...`` (or ``self.x += ...``)
outside ``__init__`` is what made one phase's output another's hidden input.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batch.run.audit

AUDIT = Path(batch.run.audit.__file__)


def attributes_set_by_phases(source: str, cls: str) -> list[str]:
    """``method: self.x`` for every attribute of self assigned outside ``__init__`` (the
    state of a part, ``self.tally.total``, is the part's own)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for method in node.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if method.name == "__init__":
                continue
            for inner in ast.walk(method):
                targets: list[ast.expr] = []
                if isinstance(inner, ast.Assign):
                    targets = inner.targets
                elif isinstance(inner, ast.AugAssign | ast.AnnAssign):
                    targets = [inner.target]
                for target in _flat(targets):
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        found.append(f"{method.name}: self.{target.attr}")
    return found


def _flat(targets: list[ast.expr]) -> list[ast.expr]:
    """Assignment targets with tuples and lists unpacked (``self.a, x = ...``)."""
    flat: list[ast.expr] = []
    for target in targets:
        if isinstance(target, ast.Tuple | ast.List):
            flat.extend(_flat(target.elts))
        else:
            flat.append(target)
    return flat


def test_no_phase_of_a_run_sets_an_attribute_of_the_run() -> None:
    assert attributes_set_by_phases(AUDIT.read_text(), "AuditRun") == []


def test_the_check_sees_a_phase_that_sets_an_attribute() -> None:
    source = (
        "class AuditRun:\n"
        "    def __init__(self):\n        self.a = 1\n"
        "    async def resume(self):\n        self.remote, x = 1, 2\n"
    )
    assert attributes_set_by_phases(source, "AuditRun") == ["resume: self.remote"]
