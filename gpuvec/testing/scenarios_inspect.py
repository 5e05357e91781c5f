"""End-to-end inspection scenarios, runtime-independent, with pymilvus's result types:
``describe_replica`` (one replica over the collection's shards once loaded, none before),
the default resource group (``list_resource_groups``, ``describe_resource_group``),
``list_persistent_segments`` / ``list_loaded_segments`` (the flushed segments, with the
index serving them once built), ``alter_index_properties`` / ``drop_index_properties``
(``mmap.enabled`` shows in ``describe_index``; unknown keys and bad values refused) and the
server version.

Run it as :mod:`gpuvec.testing.scenarios_data` says (fixture ``milvus``)::

    class TestInspectScenarios(InspectScenarios):
        pass
"""

from __future__ import annotations

import time
from typing import Any

from gpuvec.testing.scenarios_support import DIM, raises_milvus_error, rows


class InspectScenarios:
    def test_replicas_segments_and_index_properties(self, milvus: Any) -> None:
        schema = milvus.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", _dtype("INT64"), is_primary=True)
        schema.add_field("vector", _dtype("FLOAT_VECTOR"), dim=DIM)
        index = milvus.prepare_index_params()
        index.add_index("vector", index_name="vi", index_type="FLAT", metric_type="COSINE")
        milvus.create_collection("ins", schema=schema, index_params=index, num_shards=2,
                                 consistency_level="Strong")  # fmt: skip
        milvus.insert("ins", rows(40))
        milvus.flush("ins")
        milvus.insert("ins", rows(30, start=40))
        milvus.flush("ins")
        cid = milvus.describe_collection("ins")["collection_id"]
        persisted = milvus.list_persistent_segments("ins")
        assert sum(s.num_rows for s in persisted) == 70 and len(persisted) >= 2
        assert all(s.collection_id == cid and s.insert_channel for s in persisted)
        (replica,) = milvus.describe_replica("ins")
        assert len(replica.shards) == 2 and all(s.channel_name for s in replica.shards)
        loaded = milvus.list_loaded_segments("ins")
        assert sorted(s.segment_id for s in loaded) == sorted(s.segment_id for s in persisted)
        assert milvus.list_resource_groups() == ["__default_resource_group"]
        group = milvus.describe_resource_group("__default_resource_group")
        assert group.name == replica.resource_group == "__default_resource_group"
        assert dict(group.num_loaded_replica).get("ins") == 1 and group.num_available_node >= 1
        with raises_milvus_error("resource group not found") as err:
            milvus.describe_resource_group("rg_nope")
        assert err.value.code == 300
        milvus.release_collection("ins")
        assert milvus.describe_replica("ins") == [] and milvus.list_loaded_segments("ins") == []
        milvus.alter_index_properties("ins", "vi", properties={"mmap.enabled": True})
        assert str(milvus.describe_index("ins", "vi")["mmap.enabled"]).lower() == "true"
        with raises_milvus_error("not a configable index property"):
            milvus.alter_index_properties("ins", "vi", properties={"nosuch": 1})
        with raises_milvus_error("mmap.enabled"):
            milvus.alter_index_properties("ins", "vi", properties={"mmap.enabled": "maybe"})
        milvus.drop_index_properties("ins", "vi", property_keys=["mmap.enabled"])
        assert "mmap.enabled" not in milvus.describe_index("ins", "vi")
        milvus.load_collection("ins")
        deadline = time.monotonic() + 30
        while len(milvus.list_loaded_segments("ins")) < len(persisted):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert isinstance(milvus.get_server_version(), str)


def _dtype(name: str) -> Any:
    from pymilvus import DataType

    return getattr(DataType, name)
