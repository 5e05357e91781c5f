"""``IndexParams``: what ``MilvusClient.prepare_index_params()`` returns, as in pymilvus."""

from __future__ import annotations

from typing import Any

from gpuvec.errors import InvalidArgumentError

METRICS = ("L2", "IP", "COSINE")
INDEX_TYPES = ("FLAT", "AUTOINDEX", "")


class IndexParams:
    def __init__(self, field_name: str = "", **kwargs: Any) -> None:
        self._indexes: list[dict[str, Any]] = []
        if field_name:
            self.add_index(field_name, **kwargs)

    def add_index(
        self, field_name: str, index_type: str = "", index_name: str = "", **kwargs: Any
    ) -> None:
        metric = str(kwargs.pop("metric_type", "") or "COSINE").upper()
        if metric not in METRICS:
            raise InvalidArgumentError(
                f"metric_type {metric!r} of field {field_name!r} is not one of {METRICS}"
            )
        itype = (index_type or "AUTOINDEX").upper()
        if itype not in INDEX_TYPES:
            raise InvalidArgumentError(
                f"index_type {itype!r} of field {field_name!r} is not supported yet "
                f"(supported: FLAT, AUTOINDEX; more index types come with the index issue)"
            )
        self._indexes.append(
            {
                "field_name": field_name,
                "index_type": itype,
                "index_name": index_name or field_name,
                "metric_type": metric,
                "params": dict(kwargs.pop("params", {}) or {}),
                **kwargs,
            }
        )

    def to_list(self) -> list[dict[str, Any]]:
        return [dict(i) for i in self._indexes]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.to_list())

    def __len__(self) -> int:
        return len(self._indexes)
