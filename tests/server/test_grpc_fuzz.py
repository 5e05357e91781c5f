"""Hostile gRPC against a real ``gpuvec serve`` subprocess: a seeded, bounded fuzz run.

Requests of three kinds go to the Milvus service over loopback, one at a time:

- ``bytes``: random bytes as the body of any method of the service;
- ``mutated``: a well-typed request's encoding with bytes flipped, cut, inserted or
  repeated;
- ``typed``: well-typed requests with hostile field values (names, huge and negative
  numbers, random JSON in params, random placeholder groups, unknown enum values) and
  insert/upsert requests whose columns do not match.

Every reply must be a Milvus status whose code is not 65535 ("unexpected": a server bug),
or, for undecodable bytes only, the gRPC error of a failed decode (INTERNAL,
INVALID_ARGUMENT) or UNIMPLEMENTED. Afterwards the server process is still running and
answers, and a collection filled with known rows before the run holds exactly those rows:
the fuzzer never writes to it except with inserts that must be refused. Filters are a
fixed handful (the filter language has its own fuzzing). ``GPUVEC_FUZZ_SEED`` and
``GPUVEC_FUZZ_REQUESTS`` change the run; the outcome breakdown is printed.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_requests import DIM, KEEP, KEEP_ROWS, RequestMaker  # type: ignore[import-not-found]
from google.protobuf import message_factory
from google.protobuf.message import Message
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2
from serve_process import spawn_serve  # type: ignore[import-not-found]

SEED = int(os.environ.get("GPUVEC_FUZZ_SEED", "20250611"))
REQUESTS = int(os.environ.get("GPUVEC_FUZZ_REQUESTS", "3000"))
UNEXPECTED = 65535
DECODE_ERRORS = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
}
SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
UNARY = sorted(m.name for m in SERVICE.methods if not m.client_streaming and not m.server_streaming)


def _status_of(method: str, raw: bytes) -> common_pb2.Status | None:
    """The Status inside a reply of ``method`` (None when its type carries none)."""
    out = message_factory.GetMessageClass(SERVICE.methods_by_name[method].output_type)
    msg = out.FromString(raw)
    if isinstance(msg, common_pb2.Status):
        return msg
    for _, value in msg.ListFields():
        if isinstance(value, common_pb2.Status):
            return value
    for fd in msg.DESCRIPTOR.fields:
        if fd.message_type is common_pb2.Status.DESCRIPTOR:
            return getattr(msg, fd.name)
    return None


class Wire:
    """Raw unary calls to every method of the service (bytes in, bytes out)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 256 << 20)]
        )
        self.calls = {
            name: self.channel.unary_unary(
                f"/milvus.proto.milvus.MilvusService/{name}",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            for name in UNARY
        }

    def outcome(self, method: str, body: bytes, metadata: list[tuple[str, str]]) -> tuple[str, str]:
        """("grpc:<CODE>" | "status:<code>", detail) of one call."""
        try:
            raw = self.calls[method](body, timeout=30, metadata=metadata or None)
        except grpc.RpcError as err:
            return f"grpc:{err.code().name}", str(err.details())[:300]
        status = _status_of(method, raw)
        if status is None:
            return "status:none", ""
        return f"status:{status.code}", status.reason[:300]


def _mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(data) + 1)
        if op < 0.35 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op < 0.55:
            del data[pos : pos + rng.randint(1, 16)]
        elif op < 0.8:
            data[pos:pos] = rng.randbytes(rng.randint(1, 12))
        else:
            data[pos:pos] = data[pos : pos + rng.randint(1, 64)] * rng.randint(1, 4)
    return bytes(data)


def _bad_insert_keeper(rng: random.Random, maker: RequestMaker) -> tuple[str, Message]:
    op = rng.choice(["Insert", "Upsert"])
    return op, maker.mismatched_write(KEEP, op)


def _plan(rng: random.Random, maker: RequestMaker) -> Iterator[tuple[str, str, bytes]]:
    """(kind, method, body) of each request, all drawn from ``rng``."""
    for _ in range(REQUESTS):
        r = rng.random()
        if r < 0.15:
            body = rng.randbytes(rng.choice([0, 1, 3, 8, 40, 200]))
            yield "bytes", rng.choice(UNARY), body
        elif r < 0.35:
            method, msg = maker.typed()
            yield "mutated", method, _mutate(rng, msg.SerializeToString())
        elif r < 0.45:
            method, msg = _bad_insert_keeper(rng, maker)
            yield "typed", method, msg.SerializeToString()
        else:
            method, msg = maker.typed()
            yield "typed", method, msg.SerializeToString()


def _keeper_ids(client: MilvusClient) -> list[int]:
    rows = client.query(KEEP, filter="id >= 0", output_fields=["id"], consistency_level="Strong")
    return sorted(int(r["id"]) for r in rows)


def _setup(client: MilvusClient) -> None:
    schema = MilvusClient.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    schema.add_field("j", DataType.JSON, nullable=True)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    for name in (KEEP, "scratch"):
        client.create_collection(name, schema=schema, index_params=index)
    client.insert(KEEP, KEEP_ROWS)
    client.insert("scratch", KEEP_ROWS[:5])
    assert _keeper_ids(client) == list(range(len(KEEP_ROWS)))


def test_fuzzed_grpc_requests_never_hit_unexpected(tmp_path: Path) -> None:
    proc, port = spawn_serve(tmp_path / "data", tmp_path / "serve.log")
    address = f"127.0.0.1:{port}"
    client = MilvusClient(uri=f"http://{address}", timeout=60)
    try:
        _setup(client)
        rng = random.Random(SEED)
        maker = RequestMaker(random.Random(SEED + 1))
        wire = Wire(address)
        counts: collections.Counter[str] = collections.Counter()
        by_kind: collections.Counter[tuple[str, str]] = collections.Counter()
        failures: list[str] = []
        t0 = time.perf_counter()
        for i, (kind, method, body) in enumerate(_plan(rng, maker)):
            outcome, detail = wire.outcome(method, body, maker.metadata())
            counts[outcome] += 1
            by_kind[(kind, outcome.split(":")[0])] += 1
            bad = outcome == f"status:{UNEXPECTED}"
            if outcome.startswith("grpc:"):  # only undecodable bytes may fail in gRPC
                bad = kind == "typed" or grpc.StatusCode[outcome[5:]] not in DECODE_ERRORS
            if bad:
                failures.append(f"#{i} {kind} {method}: {outcome} {detail}")
        elapsed = time.perf_counter() - t0
        total = sum(counts.values())
        print(f"\nfuzz: {total} requests in {elapsed:.1f} s (seed {SEED})")
        for outcome, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {outcome:<28} {n}")
        for (kind, family), n in sorted(by_kind.items()):
            print(f"  {kind:<8} {family:<7} {n}")
        wire.channel.close()
        assert total >= 2000
        assert not failures, f"{len(failures)} bad replies:\n" + "\n".join(failures[:20])
        assert proc.poll() is None, "gpuvec serve died during the fuzz run"
        # the server still answers, and the known collection holds exactly its rows
        assert KEEP in client.list_collections()
        count = client.query(
            KEEP, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        assert count[0]["count(*)"] == len(KEEP_ROWS)
        assert _keeper_ids(client) == list(range(len(KEEP_ROWS)))
        hits = client.search(KEEP, [KEEP_ROWS[7]["vec"]], limit=1, consistency_level="Strong")
        assert hits[0][0]["id"] == 7
        client.create_collection("after_fuzz", dimension=DIM, consistency_level="Strong")
        client.insert("after_fuzz", [{"id": 1, "vector": [0.5] * DIM}])
        assert client.query("after_fuzz", filter="id == 1", output_fields=["id"]) == [{"id": 1}]
    finally:
        client.close()
        _stop(proc, tmp_path / "serve.log")


def _stop(proc: Any, log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except Exception:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode not in (0, -signal.SIGTERM):
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        pytest.fail(f"gpuvec serve exited with {proc.returncode}:\n{tail}")
