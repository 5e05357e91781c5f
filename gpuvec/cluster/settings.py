"""Cluster settings: where a node finds etcd, Kafka, the object store and Dask.

One TOML file (``--config`` or ``GPUVEC_CONFIG``) with a ``[cluster]`` table for the
shared services and an ``[engine]`` table of :class:`gpuvec.config.Config` overrides;
environment variables override the file (``GPUVEC_ETCD``, ``GPUVEC_ETCD_ROOT``,
``GPUVEC_KAFKA``, ``GPUVEC_TOPIC_PREFIX``, ``GPUVEC_OBJECTS``, ``GPUVEC_DASK_SCHEDULER``,
``GPUVEC_REPLICAS``; ``GPUVEC_<FIELD>`` for engine fields). Every role process opens its
storage layers through :class:`ClusterSettings`, so all of them agree on one cluster.
:func:`toml_value` / :func:`toml_table` write such a file (the local launcher does).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuvec.config import Config
from gpuvec.errors import InvalidArgumentError

_ENV = {
    "etcd": "GPUVEC_ETCD",
    "etcd_root": "GPUVEC_ETCD_ROOT",
    "kafka": "GPUVEC_KAFKA",
    "topic_prefix": "GPUVEC_TOPIC_PREFIX",
    "objects": "GPUVEC_OBJECTS",
    "dask_scheduler": "GPUVEC_DASK_SCHEDULER",
    "replicas": "GPUVEC_REPLICAS",
}


@dataclass(frozen=True)
class ClusterSettings:
    etcd: str = "127.0.0.1:2379"  # comma-separated endpoints (the first one is used)
    etcd_root: str = "gpuvec"  # key prefix of this cluster in etcd
    kafka: str = "127.0.0.1:9092"  # bootstrap servers
    topic_prefix: str = "gpuvec-"  # Kafka topics of this cluster
    objects: str = "./gpuvec-objects"  # shared directory or s3://bucket/prefix
    dask_scheduler: str = ""  # tcp://host:8786; "" = an in-process LocalCluster
    replicas: int = 1  # query nodes holding each sealed segment
    engine: Config = field(default_factory=Config)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> ClusterSettings:
        """Settings from ``path`` (or ``GPUVEC_CONFIG``), then env, then ``overrides``."""
        path = path or os.environ.get("GPUVEC_CONFIG")
        doc: dict[str, Any] = {}
        if path:
            try:
                doc = tomllib.loads(Path(path).read_text())
            except FileNotFoundError:
                raise InvalidArgumentError(f"cluster config file {str(path)!r} not found") from None
            except tomllib.TOMLDecodeError as e:
                raise InvalidArgumentError(f"cluster config file {str(path)!r}: {e}") from None
        unknown = set(doc) - {"cluster", "engine"}
        if unknown:
            raise InvalidArgumentError(f"unknown table(s) in {str(path)!r}: {sorted(unknown)}")
        values = dict(doc.get("cluster", {}))
        bad = set(values) - set(_ENV)
        if bad:
            raise InvalidArgumentError(
                f"unknown [cluster] key(s) in {str(path)!r}: {sorted(bad)}; known: {sorted(_ENV)}"
            )
        for key, env in _ENV.items():
            if env in os.environ:
                values[key] = os.environ[env]
        values.update({k: v for k, v in overrides.items() if k in _ENV})
        try:
            values["replicas"] = int(values.get("replicas", 1))
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"replicas must be an integer, got {values['replicas']!r}"
            ) from None
        if values["replicas"] < 1:
            raise InvalidArgumentError(f"replicas must be >= 1, got {values['replicas']}")
        engine = Config.load(**{**doc.get("engine", {}), **overrides.get("engine", {})})
        return cls(**values, engine=engine)

    # --- the storage layers ----------------------------------------------------------------
    @property
    def meta_root(self) -> str:
        root = self.etcd_root.strip("/")
        return f"{root}/" if root else ""

    def open_meta(self) -> Any:
        from gpuvec.storage.meta.etcd import EtcdMetaStore

        endpoint = self.etcd.split(",")[0].strip()
        return EtcdMetaStore(endpoint, root=self.meta_root)

    def open_wal(self) -> Any:
        from gpuvec.storage.wal.kafka import KafkaWAL

        return KafkaWAL(self.kafka, topic_prefix=self.topic_prefix)

    def open_store(self) -> Any:
        from gpuvec.storage.objects.stores import open_store

        if not self.objects.startswith("s3://"):
            Path(self.objects).mkdir(parents=True, exist_ok=True)
        return open_store(self.objects)

    def store_spec(self) -> Any:
        from gpuvec.pipelines.common import StoreSpec

        return StoreSpec(self.objects)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["engine"] = dataclasses.asdict(self.engine)
        return out


def toml_value(value: Any) -> str:
    """One TOML value: a bool, int, finite float, string or list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and value == value and abs(value) != float("inf"):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise InvalidArgumentError(f"cannot write {type(value).__name__} {value!r} to the TOML config")


def toml_table(name: str, items: Mapping[str, Any]) -> list[str]:
    """A TOML table: its header line and one ``key = value`` line per item."""
    keys = {k: k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in items}
    return [f"[{name}]", *(f"{keys[k]} = {toml_value(v)}" for k, v in items.items())]
