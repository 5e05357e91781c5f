"""Engine configuration: one dataclass with every tunable, defaults for the embedded mode.

Values come, in increasing precedence, from the defaults here, ``GPUVEC_<NAME>`` environment
variables (e.g. ``GPUVEC_SEAL_ROWS=100000``; :meth:`Config.load`), a ``config=Config(...)``
passed to :class:`gpuvec.MilvusClient`, and keyword arguments of ``MilvusClient`` named
after a field (``MilvusClient("./db", seal_rows=100_000, dashboard_address=":8787")``;
:meth:`Config.for_client`). A keyword that is neither a field nor one of pymilvus's
connection keywords (:data:`CONNECTION_KEYWORDS`, meaningless in-process) is refused with
an error naming it. A cluster reads the ``[engine]`` table of its TOML file instead.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from gpuvec.errors import InvalidArgumentError


@dataclass(frozen=True)
class Config:
    seal_rows: int = 500_000  # seal a growing segment at this many rows ...
    seal_bytes: int = 512 << 20  # ... or this many bytes ...
    seal_idle_s: float = 60.0  # ... or after this long without writes
    wal_fsync: str = "group"  # "always" | "group" | "never" (local WAL)
    wal_group_commit_ms: float = 10.0
    default_shards: int = 1
    bounded_staleness_ms: int = 5000  # Bounded consistency reads lag at most this much
    time_tick_ms: float = 200.0  # each shard appends a TimeTick to its channel this often
    idle_wal_records: int = 4096  # ticks after the checkpoint before an idle WAL is released
    max_serviceable_wait_s: float = 10.0  # a read waits this long for its guarantee ts
    gpu_memory_budget: float = 0.8  # fraction of device memory sealed segments may use
    segment_chunk_rows: int = 8192
    scheduler_address: str = ""  # a Dask scheduler of data-node workers; "" = local cluster
    datanode_workers: int = 1  # worker processes of the embedded LocalCluster
    datanode_processes: bool = False  # True: `dask worker` programs (never re-run __main__)
    dashboard_address: str = ":0"  # the embedded cluster's Dask dashboard ("" or ":0": any port)
    index_min_rows: int = 1024  # smaller sealed segments are served by brute force
    import_chunk_rows: int = 100_000  # rows per bulk-import task (and per imported segment)
    compaction_small_rows: int = 100_000  # merge two or more sealed segments below this
    compaction_deleted_ratio: float = 0.2  # rewrite a segment with more rows deleted
    compaction_retention_s: float = 60.0  # rows deleted within this window are kept (MVCC)
    compaction_interval_s: float = 10.0  # how often the automatic policy looks

    @classmethod
    def load(cls, **overrides: Any) -> Config:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env = os.environ.get(f"GPUVEC_{f.name.upper()}")
            if env is not None:
                try:
                    if isinstance(f.default, bool):
                        if env.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                            raise ValueError(env)
                        values[f.name] = env.strip().lower() in ("1", "true", "yes")
                        continue
                    values[f.name] = type(f.default)(env)
                except ValueError:
                    raise InvalidArgumentError(
                        f"environment GPUVEC_{f.name.upper()}={env!r} is not a {f.type}"
                    ) from None
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InvalidArgumentError(f"unknown gpuvec config option(s): {sorted(unknown)}")
        values.update(overrides)
        return cls(**values)

    @classmethod
    def for_client(cls, config: Config | None, kwargs: dict[str, Any]) -> Config:
        """The engine config of ``MilvusClient(uri, config=..., **kwargs)``: ``config`` (else
        :meth:`load`'s) with every keyword named after a field, each checked against the
        field's type (``dashboard_address=":8787"``, ``seal_rows=100_000``). pymilvus's
        connection keywords are accepted and ignored; any other keyword raises
        ``InvalidArgumentError`` naming it (nothing is silently dropped)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in kwargs if k not in fields and k not in CONNECTION_KEYWORDS)
        if unknown:
            raise InvalidArgumentError(
                f"unknown MilvusClient keyword(s) {unknown}: neither a gpuvec config option "
                f"(gpuvec.config.Config: {', '.join(fields)}) nor a pymilvus connection keyword"
            )
        opts = {k: v for k, v in kwargs.items() if k in fields}
        for key, value in opts.items():
            _check_type(key, fields[key].default, value)
        if config is None:
            return cls.load(**opts)
        return dataclasses.replace(config, **opts) if opts else config


def _check_type(key: str, default: Any, value: Any) -> None:
    want = type(default)
    ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        example = "':8787'" if key == "dashboard_address" else repr(default)
        example += f", not {value!r}"
        article = "an" if want is int else "a"
        raise InvalidArgumentError(f"{key} must be {article} {want.__name__} such as {example}")


# pymilvus MilvusClient keywords about the network connection: meaningless in-process
CONNECTION_KEYWORDS = frozenset({
    "secure", "server_pem_path", "server_name", "client_pem_path", "client_key_path",
    "ca_pem_path", "keep_alive", "keep_alive_timeout", "alias", "grpc_options",
    "max_receive_message_length", "max_send_message_length",
})  # fmt: skip
