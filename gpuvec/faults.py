"""Test-only fault points: where a crash test parks a process before killing it.

A process started with ``GPUVEC_FAULT=<point>`` pauses when it reaches that point: it
writes the point's name to the file ``GPUVEC_FAULT_MARKER`` (if set), so the test knows it
got there, then sleeps ``GPUVEC_FAULT_PAUSE_S`` seconds (default 120) — long enough to be
``kill -9``-ed. Unset, a fault point costs one string comparison.

Points:
* ``shard.after-wal-append`` — a write is in the WAL but not yet applied or acknowledged;
* ``wal.torn-batch`` — half of a multi-record WAL batch's bytes are written, the rest not;
* ``import.chunk`` — a bulk-import chunk task is about to run (on the data node);
* ``import.before-commit`` — every chunk of an import is written, nothing committed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_ARMED = os.environ.get("GPUVEC_FAULT", "")


def armed(point: str) -> bool:
    """Whether this process was started to stop at ``point``."""
    return point == _ARMED


def pause(point: str) -> None:
    """Stop here (for the test to kill the process) if ``point`` is armed."""
    if point != _ARMED:
        return
    marker = os.environ.get("GPUVEC_FAULT_MARKER")
    if marker:
        Path(marker).write_text(point)
    time.sleep(float(os.environ.get("GPUVEC_FAULT_PAUSE_S", "120")))
