"""The leader's data-node duty loop, shared by both runtimes: one :meth:`Maintenance.run_once`
pass submits, for every collection, the index builds its sealed segments need (loaded or
not, as Milvus: ``create_index`` then ``load`` is the usual order), and every
``interval_s`` the compactions the automatic policy asks for (loaded collections only).

The embedded runtime's duty thread (:mod:`gpuvec.runtime.duties`) and the cluster
coordinator's loop (:mod:`gpuvec.cluster.coordinator`) each call it about once a second.
The decisions are :mod:`gpuvec.coord.planning`'s; submitting and committing are the
:class:`~gpuvec.coord.indexing.IndexBuilder`'s and :class:`~gpuvec.coord.compaction.
Compactor`'s. A failure of one collection (dropped meanwhile, data nodes unreachable) is
logged once until its reason changes and does not stop the others; exception types in
``fatal`` (a deposed leader's ``NotLeaderError``) propagate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from gpuvec.records import CollectionMeta

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self, indexer: Any, compactor: Any, interval_s: float,
        fatal: tuple[type[BaseException], ...] = (),
    ) -> None:  # fmt: skip
        self.indexer, self.compactor, self.interval_s = indexer, compactor, interval_s
        self.fatal = fatal
        self.last_compaction = time.monotonic()  # the first automatic pass one interval on
        self.reported: dict[int, str] = {}  # the last error per collection, logged once

    def run_once(
        self, metas: Iterable[CollectionMeta], loaded: Callable[[CollectionMeta], bool]
    ) -> None:
        """One pass over ``metas`` (``loaded(meta)``: whether its segments are served)."""
        compact = time.monotonic() - self.last_compaction >= self.interval_s
        if compact:
            self.last_compaction = time.monotonic()
        for meta in metas:
            try:
                self.indexer.schedule(meta)
                if compact and loaded(meta):
                    self.compactor.compact(meta)
                self.reported.pop(meta.id, None)
            except self.fatal:
                raise
            except Exception as e:  # dropped meanwhile, or the data nodes are unreachable
                why = f"{type(e).__name__}: {e}"
                if self.reported.get(meta.id) != why:
                    self.reported[meta.id] = why
                    log.warning("index/compaction of %s failed: %s", meta.name, why)
