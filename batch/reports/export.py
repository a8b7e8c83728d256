"""The flat per-session table as CSV and XLSX, safe to open in a spreadsheet.

Values come from places the tool does not control (an input cell is kept as written in
an ``InvalidSessionId`` row), so, as OWASP's "CSV injection" advice says, a text cell
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is never a formula:
in CSV it gets a leading ``'``; in XLSX it is written as text with Excel's quote prefix.
Numeric columns stay numbers (a negative confidence or coordinate is a number, not text).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from batch.errors import OutputError

__all__ = ["FORMULA_STARTS", "neutralise", "write_csv", "write_xlsx"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _risky(value: object) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose risky text cells start with ``'``; numbers untouched."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or isinstance(safe[column].dtype, pd.StringDtype):
            values = safe[column]
            safe[column] = values.where(~values.map(_risky), "'" + values.astype(str))
    return safe


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV at ``path``, formula-like text neutralised."""
    try:
        neutralise(frame).to_csv(path, index=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None


def write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as XLSX at ``path``; formula-like text stays text (quote prefix)."""
    try:
        with pd.ExcelWriter(path, engine="openpyxl") as writer:
            frame.to_excel(writer, index=False)
            for row in writer.sheets["Sheet1"].iter_rows(min_row=2):
                for cell in row:
                    if _risky(cell.value):
                        cell.data_type = "s"  # openpyxl made any "=..." a formula
                        cell.quotePrefix = True  # and Excel must not either, on edit
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None
