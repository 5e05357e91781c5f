"""Hostile but well-typed Milvus requests for the gRPC fuzz test (``test_grpc_fuzz``).

:class:`RequestMaker` draws everything from one ``random.Random``, so a seed replays a run.
Requests name the protected collection :data:`KEEP` only when they cannot change it (reads)
or must be refused (:meth:`RequestMaker.mismatched_write`); writes go to ``scratch`` or to
random names. Filters come from a fixed list: the filter language is fuzzed elsewhere.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.message import Message
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

DIM = 4
KEEP, SCRATCH = "keeper", "scratch"
KEEP_ROWS = [
    {"id": i, "vec": [float(i), float(i % 7), float(i % 3), 1.0], "tag": f"t{i % 3}", "j": {"k": i}}
    for i in range(50)
]
FILTERS = ["", "id >= 0", "id in [1, 2, 3]", 'tag == "t1"', 'id < 10 and tag != "t2"', 'j["k"] > 3']
FIELDS = ["id", "vec", "tag", "j", "*", "count(*)", "$meta", "nope", "", " id "]
DATA_TYPES = [1, 2, 3, 4, 5, 10, 11, 20, 21, 22, 23, 100, 101, 102, 103, 104, 0, 999, -7]
METRICS = ["L2", "IP", "COSINE", "HAMMING", "BM25", "bogus", "", "l2", "\x00"]
INDEXES = ["FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "AUTOINDEX", "GPU_CAGRA", "DISKANN"]
CONSISTENCY = [0, 1, 2, 3, 4, 5, 99, -1]
_JSON_KEYS = ["nprobe", "ef", "radius", "range_filter", "metric_type", "level", "nlist", "M"]


class RequestMaker:
    """Random requests of many RPCs; :meth:`typed` picks one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.makers: list[tuple[float, Callable[[], tuple[str, Message]]]] = [
            (14, self.search),
            (8, self.query),
            (10, lambda: self.write(self.rng.choice(["Insert", "Upsert"]))),
            (4, self.delete),
            (6, self.create_collection),
            (5, self.create_index),
            (10, self.read_admin),
            (8, self.write_admin),
            (3, self.users),
        ]

    # --- values ------------------------------------------------------------------------------
    def name(self, *, keeper: bool = False, scratch: bool = True) -> str:
        r = self.rng
        pool = [
            "",
            SCRATCH if scratch else "nope",
            "nope",
            "".join(r.choices(string.ascii_letters, k=r.randint(1, 12))),
            "_" + "".join(r.choices(string.ascii_lowercase + string.digits, k=5)),
            "数据" + str(r.randint(0, 9)),
            "a\x00b",
            "a" * r.choice([255, 256, 4000]),
            "".join(chr(r.randrange(1, 0x3000)) for _ in range(r.randint(1, 8))),
            "default",
        ]
        if keeper:
            pool += [KEEP, KEEP]
        return r.choice(pool)

    def int_text(self) -> str:
        r = self.rng
        huge = "9" * r.choice([20, 100, 4301, 6000])
        fixed = [str(2**63), str(-(2**63) - 1), huge, "1e3", "abc", "", " 7 ", "+-5", "NaN", "3.5"]
        return r.choice([str(r.randint(1, 20)), str(r.randint(-5, 0)), "16385", *fixed])

    def json_value(self, depth: int = 0) -> Any:
        r = self.rng
        k = r.random()
        if depth > 3 or k < 0.5:
            big, text = r.randint(-(2**70), 2**70), self.int_text()
            return r.choice([big, r.random() * 1e6, True, None, "x", 0, -1, text])
        if k < 0.75:
            return [self.json_value(depth + 1) for _ in range(r.randint(0, 3))]
        keys = r.sample(_JSON_KEYS, r.randint(0, 3))
        return {key: self.json_value(depth + 1) for key in keys}

    def json_text(self) -> str:
        r = self.rng
        k = r.random()
        if k < 0.45:
            value = self.json_value()
            return json.dumps(value if r.random() < 0.5 else {"params": value})
        n = r.choice([63, 64, 65, 200, 1500, 20000])
        return r.choice(
            [
                "[" * n + "]" * n,
                '{"a":' * n + "1" + "}" * n,
                '{"nprobe": ' + "9" * r.choice([19, 300, 4300, 4301, 9000]) + "}",
                '{"nprobe": NaN}',
                '{"radius": -Infinity}',
                '{"nprobe": 1e400}',
                '{"nprobe": ',
                "[" * n,
                r.randbytes(r.randint(1, 30)).decode("latin-1"),
                "[1, 2]",
                '"text"',
                "null",
            ]
        )

    def pairs(self, keys: list[str], value: Callable[[], str]) -> list[common_pb2.KeyValuePair]:
        chosen = [k for k in keys if self.rng.random() < 0.6]
        return [common_pb2.KeyValuePair(key=k, value=value()) for k in chosen]

    def vectors(self, nq: int, dim: int = DIM) -> list[bytes]:
        r = self.rng
        out = []
        for _ in range(nq):
            v = np.array([r.uniform(-10, 10) for _ in range(dim)], dtype="<f4")
            if r.random() < 0.05:
                v[0] = np.nan
            out.append(v.tobytes())
        return out

    def placeholder_group(self) -> bytes:
        r = self.rng
        k = r.random()
        if k < 0.5:
            group = common_pb2.PlaceholderGroup()
            group.placeholders.add(tag="$0", type=common_pb2.FloatVector, values=self.vectors(1))
            return group.SerializeToString()
        if k < 0.85:
            group = common_pb2.PlaceholderGroup()
            for _ in range(r.choice([0, 1, 1, 2])):
                ptype = r.choice([100, 101, 102, 103, 104, 21, 0, 999, -3, 2**31 - 1])
                values = [r.randbytes(r.choice([0, 3, 8, 16, 17])) for _ in range(r.randint(0, 3))]
                if r.random() < 0.5:
                    values = self.vectors(r.randint(1, 3), r.choice([DIM, DIM, 3, 5]))
                group.placeholders.add(tag="$0", type=ptype, values=values)
            return group.SerializeToString()
        return r.randbytes(r.randint(0, 40))

    def metadata(self) -> list[tuple[str, str]]:
        r = self.rng.random()
        if r < 0.08:  # a header value must be printable ASCII (the client checks)
            name = self.name()
            return [("dbname", name if name.isascii() and name.isprintable() else "nope")]
        if r < 0.12:
            return [("authorization", self.rng.choice(["%%%", "", "cm9vdDpNaWx2dXM=", "Zm9v"]))]
        return []

    def db(self) -> str:
        return self.name() if self.rng.random() < 0.1 else ""

    # --- requests ----------------------------------------------------------------------------
    def typed(self) -> tuple[str, Message]:
        weights = [w for w, _ in self.makers]
        make = self.rng.choices([m for _, m in self.makers], weights)[0]
        return make()

    def hostile(self) -> Callable[[Any, Callable[[], Any]], Any]:
        """A chooser for one request: each field keeps its valid value or, with this
        request's own probability (0: a fully valid request), takes a hostile one."""
        p = self.rng.choice([0.0, 0.1, 0.2, 0.35, 0.7])
        return lambda valid, bad: bad() if self.rng.random() < p else valid

    def search(self) -> tuple[str, Message]:
        r, h = self.rng, self.hostile()
        nq = r.randint(1, 3)
        group = common_pb2.PlaceholderGroup()
        group.placeholders.add(tag="$0", type=common_pb2.FloatVector, values=self.vectors(nq))
        inner = r.choice([{}, {"nprobe": 8}, {"ef": 32}, {"radius": 50.0, "range_filter": 0.0}])
        params = {
            "topk": str(r.randint(1, 10)),
            "metric_type": "L2",
            "params": json.dumps(inner),
            "offset": str(r.randint(0, 3)),
            "round_decimal": str(r.choice([-1, 2])),
            "anns_field": "vec",
        }
        pairs = [
            common_pb2.KeyValuePair(key=k, value=h(v, self.param_text))
            for k, v in params.items()
            if h(True, lambda: False) or k not in ("topk", "anns_field")
        ]
        return "Search", milvus_pb2.SearchRequest(
            db_name=h("", self.name),
            collection_name=h(KEEP, lambda: self.name(keeper=True)),
            partition_names=h([], lambda: [self.name()]),
            dsl=r.choice(FILTERS),
            dsl_type=h(common_pb2.BoolExprV1, lambda: r.choice([0, 7, -2])),
            placeholder_group=h(group.SerializeToString(), self.placeholder_group),
            output_fields=h(r.sample(["id", "tag", "j", "vec"], r.randint(0, 2)), self.fields),
            search_params=pairs,
            nq=h(nq, lambda: r.choice([0, nq + 1, -1, 2**40])),
            consistency_level=h(r.randint(0, 3), lambda: r.choice(CONSISTENCY)),
            use_default_consistency=r.random() < 0.5,
            guarantee_timestamp=h(0, lambda: r.choice([1, 2**63, 2**64 - 1])),
        )

    def param_text(self) -> str:
        r = self.rng
        return r.choice([self.int_text(), self.json_text(), r.choice(METRICS), "vec", ""])

    def fields(self) -> list[str]:
        return self.rng.sample(FIELDS, self.rng.randint(1, 3))

    def template(self) -> dict[str, schema_pb2.TemplateValue]:
        r = self.rng
        if r.random() < 0.8:
            return {}
        arr = schema_pb2.TemplateArrayValue()
        arr.json_data.data.extend(self.json_text().encode() for _ in range(r.randint(1, 2)))
        return {
            "x": r.choice(
                [
                    schema_pb2.TemplateValue(int64_val=r.randint(-(2**63), 2**63 - 1)),
                    schema_pb2.TemplateValue(string_val=self.name()),
                    schema_pb2.TemplateValue(array_val=arr),
                    schema_pb2.TemplateValue(),
                ]
            )
        }

    @staticmethod
    def id_list(ids: list[int]) -> schema_pb2.TemplateValue:
        value = schema_pb2.TemplateValue()
        value.array_val.long_data.data.extend(ids)
        return value

    def query(self) -> tuple[str, Message]:
        r, h = self.rng, self.hostile()
        params = {"limit": str(r.randint(1, 20)), "offset": str(r.randint(0, 5))}
        params |= {"iterator": "False", "reduce_stop_for_best": "False"}
        pairs = [
            common_pb2.KeyValuePair(key=k, value=h(v, lambda: r.choice([self.int_text(), "t"])))
            for k, v in params.items()
            if h(r.random() < 0.5, lambda: True)
        ]
        valid_fields = r.choice([["id"], ["count(*)"], ["*"], ["tag", "j"], []])
        return "Query", milvus_pb2.QueryRequest(
            db_name=h("", self.name),
            collection_name=h(KEEP, lambda: self.name(keeper=True)),
            expr=r.choice([*FILTERS, "id in {x}"]),
            output_fields=h(valid_fields, self.fields),
            partition_names=h([], lambda: [self.name()]),
            query_params=pairs,
            consistency_level=h(r.randint(0, 3), lambda: r.choice(CONSISTENCY)),
            use_default_consistency=r.random() < 0.5,
            expr_template_values=h({"x": self.id_list([3, 4])}, self.template),
        )

    def columns(self, n: int, h: Any = None) -> list[schema_pb2.FieldData]:
        """Matching columns of ``n`` rows (``id`` from 1000 up: never a KEEP_ROWS id); ``h``
        (a :meth:`hostile` chooser) may make values hostile."""
        r = self.rng
        h = h or self.hostile()
        ids = schema_pb2.FieldData(type=5, field_name="id")
        ids.scalars.long_data.data.extend(r.randint(1000, 10**6) for _ in range(n))
        vec = schema_pb2.FieldData(type=101, field_name="vec")
        vec.vectors.dim = DIM
        vec.vectors.float_vector.data.extend(r.uniform(-1, 1) for _ in range(n * DIM))
        tag = schema_pb2.FieldData(type=21, field_name="tag")
        tag.scalars.string_data.data.extend(h(f"t{i}", self.name) for i in range(n))
        js = schema_pb2.FieldData(type=23, field_name="j")
        js.scalars.json_data.data.extend(
            h(json.dumps(self.json_value()), self.json_text).encode() for _ in range(n)
        )
        meta = schema_pb2.FieldData(type=23, field_name="$meta", is_dynamic=True)
        meta.scalars.json_data.data.extend(
            h(r.choice(["{}", '{"extra": 1}']), self.json_text).encode() for _ in range(n)
        )
        return [ids, vec, tag, js, meta]

    def _break(self, cols: list[schema_pb2.FieldData], n: int) -> int:
        """Make the columns certainly invalid; returns the num_rows to send."""
        r = self.rng
        how = r.randrange(9)
        ids, vec = cols[0], cols[1]
        if how == 0:
            ids.scalars.long_data.data.append(7)  # one id too many
        elif how == 1:
            vec.vectors.float_vector.data.extend([0.5] * DIM)  # one vector too many
        elif how == 2:
            vec.vectors.dim = r.choice([0, -4, 3, 5, 2**40])
        elif how == 3:
            cols.remove(vec)  # the vector field is missing
        elif how == 4:
            ids.type = r.choice([4, 21, 101, 999])  # a type that is not the field's
        elif how == 5:
            cols.append(cols[2])  # a field sent twice
        elif how == 6:
            vec.vectors.ClearField("float_vector")
            vec.vectors.binary_vector = r.randbytes(r.randint(0, 9))
        elif how == 7:
            cols.append(schema_pb2.FieldData(type=5, field_name=r.choice(["nope", ""])))
            cols[-1].scalars.long_data.data.extend([1] * n)
        else:
            return n + r.choice([1, 7, 2**31])  # num_rows disagrees with the columns
        return r.choice([0, n]) if how != 1 else n

    def mismatched_write(self, collection: str, op: str) -> Message:
        """An Insert/Upsert whose columns cannot be accepted (for the protected collection)."""
        n = self.rng.randint(1, 4)
        cols = self.columns(n)
        num_rows = self._break(cols, n)
        cls = milvus_pb2.InsertRequest if op == "Insert" else milvus_pb2.UpsertRequest
        return cls(collection_name=collection, fields_data=cols, num_rows=num_rows)

    def write(self, op: str) -> tuple[str, Message]:
        r, h = self.rng, self.hostile()
        n = r.randint(1, 4)
        cols = self.columns(n, h)
        num_rows = h(r.choice([0, n]), lambda: self._break(cols, n))
        if h(False, lambda: True):
            r.shuffle(cols)
            cols = cols[: r.randint(0, len(cols))]
        cls = milvus_pb2.InsertRequest if op == "Insert" else milvus_pb2.UpsertRequest
        return op, cls(
            db_name=h("", self.name),
            collection_name=h(SCRATCH, self.name),
            partition_name=h("", self.name),
            fields_data=cols,
            num_rows=num_rows,
        )

    def delete(self) -> tuple[str, Message]:
        r = self.rng
        keys = ", ".join(r.choice(["1001", "-3", "9" * r.choice([19, 25, 5000])]) for _ in "ab")
        return "Delete", milvus_pb2.DeleteRequest(
            collection_name=r.choice([SCRATCH, self.name()]),
            expr=r.choice([*FILTERS[1:], f"id in [{keys}]", "id in {x}"]),
            partition_name=r.choice(["", self.name()]),
            expr_template_values=self.template(),
            consistency_level=r.choice(CONSISTENCY),
        )

    def field_schema(self, h: Any, base: schema_pb2.FieldSchema) -> schema_pb2.FieldSchema:
        """``base`` with some attributes made hostile by ``h``."""
        r = self.rng
        f = schema_pb2.FieldSchema()
        f.CopyFrom(base)
        f.name = h(f.name, self.name)
        f.data_type = h(f.data_type, lambda: r.choice(DATA_TYPES))
        f.is_primary_key = h(f.is_primary_key, lambda: not f.is_primary_key)
        f.autoID = h(f.autoID, lambda: True)
        f.element_type = h(f.element_type, lambda: r.choice(DATA_TYPES))
        f.nullable = h(f.nullable, lambda: True)
        f.is_dynamic = h(False, lambda: r.random() < 0.3)
        if h(False, lambda: True):
            keys = ["dim", "max_length", "max_capacity", "mmap.enabled"]
            del f.type_params[:]
            f.type_params.extend(self.pairs(keys, self.int_text))
        if h(False, lambda: True):
            f.default_value.CopyFrom(
                r.choice(
                    [
                        schema_pb2.ValueField(long_data=r.randint(-(2**63), 2**63 - 1)),
                        schema_pb2.ValueField(string_data=self.name()),
                        schema_pb2.ValueField(bytes_data=r.randbytes(3)),
                        schema_pb2.ValueField(float_data=float("nan")),
                    ]
                )
            )
        return f

    def create_collection(self) -> tuple[str, Message]:
        r, h = self.rng, self.hostile()
        kv = common_pb2.KeyValuePair
        base = [
            schema_pb2.FieldSchema(name="id", data_type=5, is_primary_key=True),
            schema_pb2.FieldSchema(name="v", data_type=101, type_params=[kv(key="dim", value="4")]),
            schema_pb2.FieldSchema(
                name="s", data_type=21, type_params=[kv(key="max_length", value="8")]
            ),
            schema_pb2.FieldSchema(
                name="a",
                data_type=22,
                element_type=5,
                type_params=[kv(key="max_capacity", value="4")],
            ),
        ]
        fields = [self.field_schema(h, f) for f in base[: h(r.randint(2, 4), lambda: 1)]]
        schema = schema_pb2.CollectionSchema(fields=fields, enable_dynamic_field=r.random() < 0.5)
        body = h(schema.SerializeToString(), lambda: r.randbytes(20))
        name = f"c{r.randrange(10**6)}"
        return "CreateCollection", milvus_pb2.CreateCollectionRequest(
            db_name=h("", self.name),
            collection_name=h(name, lambda: self.name() + "2"),
            schema=body,
            shards_num=h(1, lambda: r.choice([0, 2, -1, 17, 2**31 - 1])),
            consistency_level=h(r.randint(0, 3), lambda: r.choice(CONSISTENCY)),
            num_partitions=h(0, lambda: r.choice([1, -5, 2**40])),
            properties=h([], lambda: self.pairs(["collection.ttl.seconds", "x"], self.int_text)),
        )

    def create_index(self) -> tuple[str, Message]:
        r, h = self.rng, self.hostile()
        kv = common_pb2.KeyValuePair
        itype = r.choice(INDEXES)
        build = {"IVF_FLAT": {"nlist": "4"}, "IVF_SQ8": {"nlist": "4"}, "HNSW": {"M": "8"}}
        pairs = [kv(key="index_type", value=itype), kv(key="metric_type", value="L2")]
        pairs += [kv(key=k, value=h(v, self.int_text)) for k, v in build.get(itype, {}).items()]
        pairs = [
            p if h(True, lambda: False) else kv(key=p.key, value=self.param_text()) for p in pairs
        ]
        if h(False, lambda: True):
            pairs.append(kv(key=r.choice(["params", "nlist", "ef"]), value=self.json_text()))
        return "CreateIndex", milvus_pb2.CreateIndexRequest(
            db_name=h("", self.name),
            collection_name=h(SCRATCH, self.name),
            field_name=h("vec", lambda: r.choice(["id", "tag", "j", "nope", ""])),
            extra_params=pairs,
            index_name=h(r.choice(["", "idx"]), self.name),
        )

    def read_admin(self) -> tuple[str, Message]:
        r, m = self.rng, milvus_pb2
        coll, db = self.name(keeper=True), self.db()
        on = {"collection_name": coll}
        compaction = r.randint(-(2**63), 2**63 - 1)
        return r.choice(
            [
                ("DescribeCollection", m.DescribeCollectionRequest(**on)),
                ("HasCollection", m.HasCollectionRequest(**on, db_name=db)),
                ("GetLoadState", m.GetLoadStateRequest(**on)),
                ("GetLoadingProgress", m.GetLoadingProgressRequest(**on)),
                ("GetCollectionStatistics", m.GetCollectionStatisticsRequest(**on)),
                ("ShowPartitions", m.ShowPartitionsRequest(**on)),
                ("HasPartition", m.HasPartitionRequest(**on, partition_name=self.name())),
                ("DescribeIndex", m.DescribeIndexRequest(**on)),
                ("GetIndexState", m.GetIndexStateRequest(**on)),
                ("ShowCollections", m.ShowCollectionsRequest(db_name=db)),
                ("DescribeDatabase", m.DescribeDatabaseRequest(db_name=self.name())),
                ("ListAliases", m.ListAliasesRequest(**on)),
                ("DescribeAlias", m.DescribeAliasRequest(alias=self.name())),
                ("GetFlushState", m.GetFlushStateRequest(**on)),
                ("GetVersion", m.GetVersionRequest()),
                ("AllocTimestamp", m.AllocTimestampRequest()),
                ("GetCompactionState", m.GetCompactionStateRequest(compactionID=compaction)),
            ]
        )

    def write_admin(self) -> tuple[str, Message]:
        r, m = self.rng, milvus_pb2
        coll, other = r.choice([SCRATCH, self.name()]), self.name(scratch=False)
        props = self.pairs(["collection.ttl.seconds", "mmap.enabled", "x"], self.int_text)
        part = {"collection_name": coll, "partition_name": other}
        return r.choice(
            [
                ("LoadCollection", m.LoadCollectionRequest(collection_name=coll)),
                ("ReleaseCollection", m.ReleaseCollectionRequest(collection_name=coll)),
                ("CreatePartition", m.CreatePartitionRequest(**part)),
                ("DropPartition", m.DropPartitionRequest(**part)),
                ("LoadPartitions", m.LoadPartitionsRequest(collection_name=coll)),
                ("Flush", m.FlushRequest(collection_names=[coll, other])),
                ("ManualCompaction", m.ManualCompactionRequest(collection_name=coll)),
                (
                    "AlterCollection",
                    m.AlterCollectionRequest(collection_name=coll, properties=props),
                ),
                ("DropCollection", m.DropCollectionRequest(collection_name=other)),
                ("RenameCollection", m.RenameCollectionRequest(oldName=other, newName=self.name())),
                ("CreateAlias", m.CreateAliasRequest(collection_name=coll, alias=other)),
                ("DropAlias", m.DropAliasRequest(alias=other)),
                ("CreateDatabase", m.CreateDatabaseRequest(db_name=other)),
                ("DropDatabase", m.DropDatabaseRequest(db_name=other)),
                ("AlterDatabase", m.AlterDatabaseRequest(db_name=other, properties=props)),
                ("DropIndex", m.DropIndexRequest(collection_name=coll, index_name=other)),
            ]
        )

    def users(self) -> tuple[str, Message]:
        r, m = self.rng, milvus_pb2

        def password() -> str:
            raw = r.choice([b"Milvus", b"Milvus\x00", b"s3cret-pw", b"\xff\xfe", b"pw\n" * 3])
            return r.choice([base64.b64encode(raw).decode(), "%%%", ""])

        user = r.choice(["alice", "root", self.name()])
        update = {"username": user, "oldPassword": password(), "newPassword": password()}
        return r.choice(
            [
                ("CreateCredential", m.CreateCredentialRequest(username=user, password=password())),
                ("UpdateCredential", m.UpdateCredentialRequest(**update)),
                ("DeleteCredential", m.DeleteCredentialRequest(username=user)),
                ("ListCredUsers", m.ListCredUsersRequest()),
            ]
        )
