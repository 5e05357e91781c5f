"""Scalar rows of a segment, appended in batches by its one writer and read by any number
of concurrent readers.

Invariant: :meth:`RowTable.table` always holds every batch appended before the call began,
so a reader that read the segment's row count ``n`` first gets a table of at least ``n``
rows. Merging the batches into one single-chunk table is done by readers (a ``take`` from a
chunked column would concatenate its chunks on every call); a merge that races an append
keeps the appended batch — only the merged prefix is replaced, and only when no other merge
replaced it first.
"""

from __future__ import annotations

import threading

import pyarrow as pa


class RowTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the two fields below; never held while merging
        self._merged: pa.Table | None = None  # the first batches, as one single-chunk table
        self._parts: list[pa.Table] = []  # batches appended after the merged prefix

    def append(self, rows: pa.Table) -> None:
        with self._lock:
            self._parts.append(rows)

    @property
    def nbytes(self) -> int:
        with self._lock:
            tables = ([self._merged] if self._merged is not None else []) + self._parts
        return sum(t.nbytes for t in tables)

    def table(self) -> pa.Table:
        """Every batch appended so far, as one table of single-chunk columns."""
        with self._lock:
            merged, parts = self._merged, list(self._parts)
        if not parts:
            return merged if merged is not None else pa.table({})
        tables = ([merged] if merged is not None else []) + parts
        # batches from before a field was added lack its column: it reads as null there
        combined = pa.concat_tables(tables, promote_options="default").combine_chunks()
        with self._lock:
            if self._merged is merged:  # nobody merged meanwhile: our parts are the prefix
                self._merged = combined
                del self._parts[: len(parts)]
        return combined
