"""Tables (column name -> (N,) values) written as CSV without pandas, byte for byte as pandas' ``to_csv``
writes them: a float in the shortest text that reads back to the same value in its own precision
(NumPy's ``astype(str)``: ``0.5``, ``100.0``, ``1e-05``), a count column as integers, blank for NaN, rows
ending in ``os.linesep``. Optional comment lines (``# ...``) come first."""

from __future__ import annotations

import csv
import os

import numpy as np

__all__ = ["write_csv"]

CHUNK_ROWS = 10_000  # rows formatted at a time (the text of every cell is not held at once)


def _cells(values: np.ndarray, count: bool = False) -> np.ndarray:
    """(N,) values -> (N,) CSV cells (module docstring); ``count``: floats rounded to integers."""
    if values.dtype.kind != "f":
        return values.astype(str)
    missing = np.isnan(values)
    if count:
        values = np.where(missing, 0, np.round(values)).astype(np.int64)
    cells = values.astype(str).astype(object)
    cells[missing] = ""
    return cells


def write_csv(path, table: dict[str, np.ndarray], comments=(), counts=()) -> None:
    """``comments`` (lines written as given, each ending in ``\\n``), then ``table`` (column name -> (N,)
    values; the columns named in ``counts`` as integers) as CSV with a row of column names."""
    rows = len(next(iter(table.values())))
    with open(path, "w", newline="") as f:
        f.write("".join(line + "\n" for line in comments))
        writer = csv.writer(f, lineterminator=os.linesep)
        writer.writerow(table)
        for start in range(0, rows, CHUNK_ROWS):
            chunk = slice(start, start + CHUNK_ROWS)
            writer.writerows(zip(*(_cells(values[chunk], name in counts) for name, values in table.items())))
