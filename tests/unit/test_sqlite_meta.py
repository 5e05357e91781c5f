"""SQLite meta store specifics: persistence across reopen and kill -9, and watches that
see writes made by another process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gpuvec.storage.meta.base import EventType
from gpuvec.storage.meta.sqlite import SqliteMetaStore

_CHILD = textwrap.dedent(
    """
    import sys
    from gpuvec.storage.meta.sqlite import SqliteMetaStore
    m = SqliteMetaStore(sys.argv[1])
    i = 0
    while True:
        rev = m.put(f"k/{i:06d}", str(i).encode())
        print(i, rev, flush=True)
        i += 1
    """
)


def test_acknowledged_puts_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db)], stdout=subprocess.PIPE, text=True
    )
    acked: list[tuple[int, int]] = []
    assert child.stdout is not None
    for line in child.stdout:
        i, rev = map(int, line.split())
        acked.append((i, rev))
        if len(acked) == 300:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    m = SqliteMetaStore(db)
    kvs, rev = m.range("k/")
    assert len(kvs) >= 300
    by_key = {kv.key: kv for kv in kvs}
    for i, r in acked:
        kv = by_key[f"k/{i:06d}"]
        assert (kv.value, kv.mod_revision) == (str(i).encode(), r)
    assert rev >= acked[-1][1]
    m.close()


def test_watch_sees_other_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    m = SqliteMetaStore(db, poll_interval=0.05)
    w = m.watch("k/")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db)], stdout=subprocess.PIPE, text=True
    )
    try:
        got: list = []
        while len(got) < 20:
            got.extend(w.get(timeout=5))
        assert [e.key for e in got[:20]] == [f"k/{i:06d}" for i in range(20)]
        assert all(e.type == EventType.PUT for e in got)
    finally:
        child.kill()
        child.wait()
        w.cancel()
        m.close()
