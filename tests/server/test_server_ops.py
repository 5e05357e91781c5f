"""The endpoint as an operator runs it: authentication, TLS, malformed and oversized
requests, graceful shutdown and crash durability of ``gpuvec serve`` (a subprocess killed
with SIGKILL), all through unmodified pymilvus (or raw gRPC for malformed payloads)."""

from __future__ import annotations

import base64
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient, MilvusException

from gpuvec.config import Config
from gpuvec.server.app import Server

DIM = 4


def test_auth_rejects_wrong_credentials(tmp_path: Path, fast: dict) -> None:
    from gpuvec.server.app import ServerOptions, start_server

    srv = start_server(str(tmp_path / "d"), ServerOptions(port=0, auth=True), **fast)
    uri = f"http://{srv.address}"
    try:
        # pymilvus reports a refused Connect as a failed connection; the server's answer
        # underneath is UNAUTHENTICATED with Milvus's message (checked over raw gRPC)
        with pytest.raises(MilvusException):
            MilvusClient(uri=uri, user="root", password="wrong", timeout=5)
        with pytest.raises(MilvusException):
            MilvusClient(uri=uri, timeout=5)  # no credentials at all
        channel = grpc.insecure_channel(srv.address)
        connect = channel.unary_unary(
            "/milvus.proto.milvus.MilvusService/GetVersion",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        for header in (None, base64.b64encode(b"root:wrong").decode(), "%%%"):
            md = None if header is None else [("authorization", header)]
            with pytest.raises(grpc.RpcError) as err:
                connect(b"", metadata=md, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "auth check failure" in (err.value.details() or "")
        good = base64.b64encode(b"root:Milvus").decode()
        assert connect(b"", metadata=[("authorization", good)], timeout=5) is not None
        channel.close()
        root = MilvusClient(uri=uri, user="root", password="Milvus", timeout=10)
        try:
            root.create_user("alice", "s3cret-pw")
            assert sorted(root.list_users()) == ["alice", "root"]
            root.create_collection("c", dimension=DIM)
        finally:
            root.close()
        alice = MilvusClient(uri=uri, token="alice:s3cret-pw", timeout=10)
        try:
            assert alice.list_collections() == ["c"]
            alice.update_password("alice", "s3cret-pw", "n3w-password")
        finally:
            alice.close()
        with pytest.raises((MilvusException, grpc.RpcError), match=r"(?i)auth"):  # old password
            stale = MilvusClient(uri=uri, user="alice", password="s3cret-pw", timeout=5)
            stale.list_collections()
        ok = MilvusClient(uri=uri, user="alice", password="n3w-password", timeout=10)
        ok.close()
    finally:
        srv.stop(grace=1)


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path, fast: dict) -> None:
    from gpuvec.server.app import ServerOptions, start_server

    cert, key = _self_signed(tmp_path)
    opts = ServerOptions(port=0, tls_cert=str(cert), tls_key=str(key))
    srv = start_server(str(tmp_path / "d"), opts, **fast)
    try:
        with pytest.raises(MilvusException):  # plaintext against a TLS port fails cleanly
            MilvusClient(uri=f"http://127.0.0.1:{srv.port}", timeout=3)
        client = MilvusClient(
            uri=f"https://localhost:{srv.port}",
            server_pem_path=str(cert),
            server_name="localhost",
            timeout=10,
        )
        try:
            client.create_collection("c", dimension=DIM)
            assert client.list_collections() == ["c"]
        finally:
            client.close()
    finally:
        srv.stop(grace=1)


def test_malformed_and_oversized_requests(server: Server, milvus: MilvusClient) -> None:
    channel = grpc.insecure_channel(server.address)
    call = channel.unary_unary(
        "/milvus.proto.milvus.MilvusService/Insert",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as err:
        call(b"\xff\xff\xff\xff\x0f garbage that is not protobuf", timeout=5)
    assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    too_big = b"\x0a" + b"\xff" * (300 << 20)
    with pytest.raises(grpc.RpcError) as err:
        call(too_big, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    channel.close()
    milvus.create_collection("alive", dimension=DIM)  # the server still answers
    assert milvus.list_collections() == ["alive"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(data: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, GPUVEC_DASHBOARD_ADDRESS="", GPUVEC_DATANODE_PROCESSES="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpuvec", "serve", "--data", str(data), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"gpuvec serve exited: {out}") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gpuvec serve did not open its port within 60 s")


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data, port = tmp_path / "d", _free_port()
    proc = _spawn(data, port)
    rng = np.random.default_rng(0)
    acked = 0
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=20)
        client.create_collection("c", dimension=DIM, consistency_level="Strong")
        for b in range(10):
            rows = [{"id": b * 50 + i, "vector": rng.standard_normal(DIM).tolist()}
                    for i in range(50)]  # fmt: skip
            acked += client.insert("c", rows)["insert_count"]
        client.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = _spawn(data, port)
    try:
        client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=20)
        count = client.query("c", filter="", output_fields=["count(*)"])[0]["count(*)"]
        assert count == acked == 500
        client.close()
        proc.send_signal(signal.SIGTERM)  # graceful: flushes and exits 0
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    # the graceful stop flushed: every row is in committed sealed segments now
    import gpuvec

    embedded = gpuvec.MilvusClient(str(data), config=Config(dashboard_address=""))
    try:
        assert embedded.describe_index("c", "vector")["total_rows"] == 500
    finally:
        embedded.close()
